"""The plan's task types: what a worker is told to compute, as frozen dataclasses that travel to workers
(registry names and content keys, never a pickled model), and the ``Plan`` that lists them.

``EncoderRef`` / ``DatasetRef``: how a worker rebuilds an encoder / opens a dataset; ``ExtractTask`` (a latent
shard), ``TrainTask`` (a zoo model), ``ProbeTask`` (a probe cell, all seeds, every corruption it scores),
``FidelityTask`` (the decoder probe), ``StateTask`` (the state ceiling); study/control.py adds ControlTask.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

TASK_VERSION = 3     # 2: one probe task scores clean and every corruption; 3: own-decoder fidelity
IMAGINING_FAMILIES = ("dynamics", "dynamics-actin")   # zoo world models: one more probe cell on imagined latents
# (and any per-frame encoder that has ``imagine``: EncoderRef.imagines, set when the study resolves encoders)


@dataclass(frozen=True)
class EncoderRef:
    """How a worker rebuilds the encoder: registry name + options (never a pickled model)."""
    label: str                   # shown in records (e.g. "zoo:vae")
    name: str                    # registry name (e.g. "zoo:/cache/zoo/vae-demo-id1-...")
    options: tuple[tuple[str, Any], ...]
    layers: tuple[str, ...]
    family: str
    id_weight: float
    key: str                     # EncoderSpec.key(): weights hash + preprocessing
    frames_per_step: int = 1
    own_decoder: bool = False    # has decode_latents (fidelity also scores its own decoder)
    imagines: bool = False       # has imagine(tokens_t, actions) (a plugin world model): imagined probe cells


@dataclass(frozen=True)
class DatasetRef:
    name: str
    path: str
    fingerprint: str
    n_episodes: int
    split_kind: str
    train: tuple[int, ...]
    test: tuple[int, ...]
    headline: tuple[str, ...] = ()   # the action groups the headline r2 averages (empty: every group it has)
    has_states: bool = False         # the store has proprioceptive states (state ceiling rows)


@dataclass(frozen=True)
class ExtractTask:
    key: str
    encoder: EncoderRef
    dataset: DatasetRef
    episodes: tuple[int, ...]
    corruption: str
    keep_tokens: bool
    device: str = "cpu"
    corruption_seed: int = 0

    kind: ClassVar[str] = "extract"

    def describe(self) -> str:
        return (f"extract {self.encoder.label} on {self.dataset.name} episodes {self.episodes[0]}.."
                f"{self.episodes[-1]} [{self.corruption}]")


@dataclass(frozen=True)
class TrainTask:
    """Train (or reuse) one mini-zoo model on the pretraining pool (train episodes of every dataset)."""
    key: str
    family: str
    id_weight: float
    preset: str
    objective: str
    seed: int
    pool_path: str
    device: str = "cpu"
    id_groups: tuple[str, ...] | None = None     # the action groups +ID trains on (zoo.train id_groups)

    kind: ClassVar[str] = "train"

    def describe(self) -> str:
        return f"train zoo {self.family} (id_weight {self.id_weight:g}, preset {self.preset})"


@dataclass(frozen=True)
class ProbeTask:
    """One probe fit (encoder, dataset, layer, probe, k, all seeds) on clean train features, scored on the clean
    test episodes and on each corruption of them: ``tests = (("clean", ()), (corruption, test shard keys),
    ...)``. Fitting once per corruption set would refit the same probe on the same clean train data."""
    key: str
    encoder: EncoderRef
    dataset: DatasetRef
    layer: str
    probe: str
    k: int
    seeds: tuple[int, ...]
    probe_cfg: tuple[tuple[str, Any], ...]
    n_boot: int
    clean_shards: tuple[str, ...]
    tests: tuple[tuple[str, tuple[str, ...]], ...] = (("clean", ()),)
    train_corruption: str = "clean"     # else: fit on ``train_shards`` (train episodes under it), no clean shard
    train_shards: tuple[str, ...] = ()
    latents: str = "real"     # "imagined": the partner z_t+k is the world model's own rollout (probes.imagined)

    kind: ClassVar[str] = "probe"

    @property
    def augmented(self) -> bool:
        """Fit on corrupted train latents (``corrupt_train``) instead of clean ones."""
        return self.train_corruption != "clean"

    @property
    def required_shards(self) -> tuple[str, ...]:
        """The shards without which no row of this task can be computed (a lost test shard of a clean-fit task
        only costs that corruption's rows; an augmented task has one corruption, so it needs them all)."""
        return self.clean_shards + self.train_shards + (self.test_shards if self.augmented else ())

    @property
    def corruptions(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.tests)

    @property
    def test_shards(self) -> tuple[str, ...]:
        """Every corrupted test-episode shard this task reads (empty when it scores clean data only)."""
        return tuple(k for _, keys in self.tests for k in keys)

    def describe(self) -> str:
        fit = f" fit on {self.train_corruption}" if self.augmented else ""
        fit += " on imagined latents" if self.latents != "real" else ""
        return (f"probe {self.probe} k={self.k} on {self.encoder.label}/{self.layer} {self.dataset.name} "
                f"[{', '.join(self.corruptions)}]{fit}")


@dataclass(frozen=True)
class FidelityTask:
    key: str
    encoder: EncoderRef
    dataset: DatasetRef
    shards: tuple[str, ...]
    preset: str
    seed: int = 0

    kind: ClassVar[str] = "fidelity"

    @property
    def required_shards(self) -> tuple[str, ...]:
        return self.shards

    def describe(self) -> str:
        return f"fidelity (decoder probe) of {self.encoder.label} on {self.dataset.name}"


@dataclass(frozen=True)
class StateTask:
    """The state ceiling of one (dataset, probe, k): the probe fit on the store's per-frame state features
    (``wmprobe.data.audit.state_features``) instead of an encoder's latents, all seeds, clean frames."""
    key: str
    dataset: DatasetRef
    probe: str
    k: int
    seeds: tuple[int, ...]
    probe_cfg: tuple[tuple[str, Any], ...]
    n_boot: int

    kind: ClassVar[str] = "state"
    required_shards: ClassVar[tuple[str, ...]] = ()    # the store's states, no latents

    def describe(self) -> str:
        return f"state ceiling {self.probe} k={self.k} on {self.dataset.name}"


@dataclass
class Plan:
    extract: list[ExtractTask] = field(default_factory=list)
    probe: list[ProbeTask] = field(default_factory=list)
    fidelity: list[FidelityTask] = field(default_factory=list)
    control: list[Any] = field(default_factory=list)     # study.control.ControlTask (study `control:`)
    state: list[StateTask] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        out = {"extract": len(self.extract), "probe": len(self.probe), "fidelity": len(self.fidelity)}
        # only when planned: old plans print as before
        extra = {"state": len(self.state), "control": len(self.control)}
        return {**out, **{k: n for k, n in extra.items() if n}}
