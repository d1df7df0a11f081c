"""The planner: a resolved study -> idempotent tasks, each named by the content key of what it computes.

- ``ExtractTask``: one (encoder, dataset shard, corruption) -> a latent shard in the cache. Clean shards cover
  every episode; corrupted shards cover only the test episodes (corruption is applied at test time: the probe
  is fit on clean train features and scored on corrupted test features, as in the paper). With
  ``corrupt_train: true`` corrupted shards of the train episodes are extracted too.
- ``ProbeTask``: one cell (encoder, dataset, split, corruption, layer, probe, k) with all its seeds -> rows.
  With ``corrupt_train``, one more task per (cell, corruption c != clean) fits on the train latents under c
  and scores the test latents under c (rows with ``train_corruption = c``).
  For zoo world models (``IMAGINING_FAMILIES``) and encoders with an ``imagine`` method one more task per (layer, k,
  mlp | ridge) probes
  ``g(z_t, z_hat_t+k)`` with the model's own k-step rollout from the clean tokens (rows with
  ``latents = imagined``; ``wmprobe.probes.imagined``).
- ``FidelityTask``: the decoder probe of one (encoder, dataset) on clean tokens -> PSNR/SSIM.
- ``StateTask``: the state ceiling of one (dataset, probe, k): the same probe on the dataset's proprioceptive
  state of each frame (no encoder), rows ``encoder = family = layer = state``, clean only. Planned for every
  dataset with states and every ``mlp`` / ``ridge`` probe of the study.

A task's key hashes its inputs (encoder spec key incl. weights, dataset fingerprint, episodes, corruption,
layers, probe config, code version), so re-running a study recomputes nothing that is in the cache, and a
killed run resumes with only the unfinished tasks. ``describe_study`` prints the plan without running it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from wmprobe.probes.spec import ProbeSpec, probe_spec
from wmprobe.study.cache import content_key

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

    @property
    def kind(self) -> str:
        return "extract"

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

    @property
    def kind(self) -> str:
        return "train"

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

    @property
    def kind(self) -> str:
        return "probe"

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

    @property
    def kind(self) -> str:
        return "fidelity"

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

    @property
    def kind(self) -> str:
        return "state"

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


def shards(episodes: Sequence[int], size: int) -> list[tuple[int, ...]]:
    eps = list(episodes)
    return [tuple(eps[i:i + size]) for i in range(0, len(eps), size)]


def extract_key(enc: EncoderRef, ds: DatasetRef, episodes: Sequence[int], corruption: str, keep_tokens: bool,
                corruption_seed: int = 0) -> str:
    from wmprobe.data.corruptions import parse_corruption
    key = {"task": "extract", "v": TASK_VERSION, "encoder": enc.key, "layers": list(enc.layers),
           "dataset": ds.fingerprint, "episodes": list(episodes), "corruption": corruption,
           "corruption_seed": corruption_seed, "tokens": keep_tokens}
    version = parse_corruption(corruption).version
    if version > 1:   # only a changed corruption changes its keys: every other shard stays valid
        key["corruption_version"] = version
    return content_key(key)


def _imagines(enc: EncoderRef) -> bool:
    """Whether ``enc`` gets imagined-latent probe cells: a zoo world model, or an encoder with ``imagine``."""
    return (enc.family in IMAGINING_FAMILIES or getattr(enc, "imagines", False)) and enc.frames_per_step == 1


def _extract_shards(plan: Plan, cfg: Any, enc: EncoderRef, ds: DatasetRef, episodes: Sequence[int],
                    corruption: str, tokens: bool) -> tuple[str, ...]:
    """Append one ExtractTask per shard of ``episodes`` under ``corruption``; returns the shards' keys."""
    keys = []
    for eps in shards(episodes, cfg.shard_episodes):
        key = extract_key(enc, ds, eps, corruption, tokens)
        plan.extract.append(ExtractTask(key, enc, ds, eps, corruption, tokens, cfg.device))
        keys.append(key)
    return tuple(keys)


def _probe_key(cfg: Any, enc: EncoderRef, ds: DatasetRef, layer: str, k: int, probe: str,
               pcfg: tuple, fit: dict[str, Any], scored: Sequence[tuple[str, tuple[str, ...]]]) -> str:
    """Content key of one probe task; ``fit``: what it is fit on (``{"clean": keys}`` for the paper's protocol,
    whose keys predate ``corrupt_train`` and must not change)."""
    return content_key({"task": "probe", "v": TASK_VERSION, **fit,
                        "tests": [[c, list(t)] for c, t in scored], "layer": layer, "k": k,
                        "probe": probe, "seeds": list(cfg.seeds), "cfg": list(pcfg), "n_boot": cfg.n_boot,
                        "split": [ds.split_kind, list(ds.train), list(ds.test)],
                        "headline": list(ds.headline) or "every-group",   # r2 = mean of these groups' R2
                        **probe_spec(probe).cache_version(),
                        "label": [enc.label, enc.family, enc.id_weight, ds.name]})


def _options(cfg: Any, spec: ProbeSpec) -> tuple[tuple[str, Any], ...]:
    """The probe's options from the study config block its spec names (``probe:`` for mlp), sorted; () when it
    takes none. They enter the probe's cache key."""
    if spec.config_section is None:
        return ()
    return tuple(sorted(getattr(cfg, spec.config_section).items()))


def _probe_tasks(plan: Plan, cfg: Any, enc: EncoderRef, ds: DatasetRef, clean: tuple[str, ...],
                 tests: list[tuple[str, tuple[str, ...]]],
                 augment: list[tuple[str, tuple[str, ...], tuple[str, ...]]]) -> None:
    """Append the probe tasks of one (encoder, dataset): one clean fit per (layer, k, probe) scored on every
    ``tests`` entry, and per ``augment`` entry ``(corruption, train keys, test keys)`` one fit on the corrupted
    train latents scored on the corrupted test latents (never for the -shuffled / -single controls)."""
    for layer in enc.layers:
        for k in cfg.ks:
            for probe in cfg.probes:
                spec = probe_spec(probe)
                control = spec.is_control   # controls (shuffled/single pairs) are measured on clean features only
                scored = tuple(tests) if not control else (("clean", ()),)
                pcfg = _options(cfg, spec)
                key = _probe_key(cfg, enc, ds, layer, k, probe, pcfg, {"clean": list(clean)}, scored)
                plan.probe.append(ProbeTask(key, enc, ds, layer, probe, int(k), tuple(cfg.seeds), pcfg,
                                            cfg.n_boot, clean, scored))
                if _imagines(enc) and spec.on_imagined:   # imagined z_t+k, clean only
                    key = _probe_key(cfg, enc, ds, layer, k, probe, pcfg,
                                     {"clean": list(clean), "latents": "imagined"}, (("clean", ()),))
                    plan.probe.append(ProbeTask(key, enc, ds, layer, probe, int(k), tuple(cfg.seeds), pcfg,
                                                cfg.n_boot, clean, latents="imagined"))
                for corr, train_keys, test_keys in (augment if not control else ()):
                    one = ((corr, test_keys),)
                    key = _probe_key(cfg, enc, ds, layer, k, probe, pcfg,
                                     {"train_corruption": corr, "train": list(train_keys)}, one)
                    plan.probe.append(ProbeTask(key, enc, ds, layer, probe, int(k), tuple(cfg.seeds), pcfg,
                                                cfg.n_boot, (), one, corr, train_keys))


def _state_tasks(plan: Plan, cfg: Any, ds: DatasetRef) -> None:
    """Append the state-ceiling tasks of one dataset (none when it has no states)."""
    if not ds.has_states:
        return
    for k in cfg.ks:
        for probe in cfg.probes:
            spec = probe_spec(probe)
            if not spec.on_states:
                continue
            pcfg = _options(cfg, spec)
            key = content_key({"task": "state", "v": TASK_VERSION, "dataset": ds.fingerprint, "k": int(k),
                               "probe": probe, "seeds": list(cfg.seeds), "cfg": list(pcfg), "n_boot": cfg.n_boot,
                               "split": [ds.split_kind, list(ds.train), list(ds.test)],
                               "headline": list(ds.headline) or "every-group", "name": ds.name,
                               **spec.cache_version()})
            plan.state.append(StateTask(key, ds, probe, int(k), tuple(cfg.seeds), pcfg, cfg.n_boot))


def plan_study(cfg: Any, encoders: Sequence[EncoderRef], datasets: Sequence[DatasetRef]) -> Plan:
    """Expand a resolved study (see runner.resolve) into its tasks, in a deterministic order."""
    plan = Plan()
    for ds in datasets:
        _state_tasks(plan, cfg, ds)
    attentive = any(probe_spec(p).needs_tokens for p in cfg.probes)   # e.g. attentive probes read tokens
    corrupt_sets = set(cfg.corrupt_datasets) if cfg.corrupt_datasets is not None else {d.name for d in datasets}
    for ds in datasets:
        fidelity = cfg.fidelity and (cfg.fidelity_datasets is None or ds.name in cfg.fidelity_datasets)
        for enc in encoders:
            imagine = _imagines(enc)   # imagined probes roll out from the clean tokens
            clean = _extract_shards(plan, cfg, enc, ds, range(ds.n_episodes), "clean", fidelity or attentive or imagine)
            corruptions = cfg.corruptions if ds.name in corrupt_sets else ("clean",)
            tests = [(corr, _extract_shards(plan, cfg, enc, ds, ds.test, corr, attentive) if corr != "clean" else ())
                     for corr in dict.fromkeys(("clean", *corruptions))]
            augment = [(corr, _extract_shards(plan, cfg, enc, ds, ds.train, corr, attentive), keys)
                       for corr, keys in tests if corr != "clean" and getattr(cfg, "corrupt_train", False)]
            _probe_tasks(plan, cfg, enc, ds, clean, tests, augment)
            if fidelity:
                key = content_key({"task": "fidelity", "v": TASK_VERSION, "clean": list(clean),
                                   "preset": cfg.fidelity_preset, "split": list(ds.test), "seed": 0})
                plan.fidelity.append(FidelityTask(key, enc, ds, clean, cfg.fidelity_preset))
            if getattr(cfg, "control", None):
                from wmprobe.study.control import plan_control
                ct = plan_control(cfg, enc, ds, clean)
                if ct is not None:
                    plan.control.append(ct)
    return plan


# ---- `wmprobe run --dry-run` -----------------------------------------------------------------------
def estimate(cfg: Any) -> dict[str, Any]:
    """Work of a study from its config alone (no data generated, no model loaded)."""
    from wmprobe.data.store import EpisodeStore
    per_family = len({(w, o if w else "l1") for w in cfg.zoo.id_weights for o in cfg.zoo.all_objectives})
    zoo_models = len(cfg.zoo.families) * per_family + int(bool(cfg.zoo.families) and cfg.zoo.ceiling)
    encoders = len(cfg.encoders) + zoo_models
    world_models = len([f for f in cfg.zoo.families if f in IMAGINING_FAMILIES]) * per_family   # imagined cells
    specs = [probe_spec(p) for p in cfg.probes]
    imagined = [s for s in specs if s.on_imagined]
    rows = []
    for d in cfg.datasets:
        if d.path:
            st = EpisodeStore.load(d.path, allow_symlinks_out=d.allow_symlinks_out)
            n_eps, n_frames = st.n_episodes, st.n_frames
        else:
            from wmprobe.data.sim import DEFAULT_STEPS
            from wmprobe.data.sim.metaworld import DEFAULT_STEPS as METAWORLD_STEPS
            default = METAWORLD_STEPS if d.sim == "metaworld" else DEFAULT_STEPS
            n_eps, n_frames = d.episodes, d.episodes * (d.steps or default)   # one frame per control step
        corr = cfg.corruptions if cfg.corrupt_datasets is None or d.name in cfg.corrupt_datasets else ("clean",)
        n_corr = len([c for c in corr if c != "clean"])
        test_frac = cfg.test_frac
        n_shards = -(-n_eps // cfg.shard_episodes)
        n_test_shards = -(-max(1, round(n_eps * test_frac)) // cfg.shard_episodes)
        layers = len(cfg.layers) if cfg.layers else 1
        n_ctrl = len([s for s in specs if s.is_control])
        cells = encoders * layers * len(cfg.ks) * (len(corr) * (len(cfg.probes) - n_ctrl) + n_ctrl)
        fits = sum(len(s.fit_seeds(cfg.seeds)) for s in specs)  # one fit scores every corruption
        n_aug = n_corr if cfg.corrupt_train else 0   # probe-train corruption: train shards + fits per corruption
        n_train_shards = -(-max(0, n_eps - max(1, round(n_eps * test_frac))) // cfg.shard_episodes)
        aug_fits = sum(len(s.fit_seeds(cfg.seeds)) for s in specs if not s.is_control)
        # the state ceiling: stores with states.npy, and the pybullet suites (Meta-World stores have none)
        has_states = (Path(d.path) / "states.npy").is_file() if d.path else d.sim != "metaworld"
        rows.append({"dataset": d.name, "episodes": n_eps, "frames": n_frames,
                     "state_cells": len(cfg.ks) * len([s for s in specs if s.on_states]) * has_states,
                     "extract_tasks": encoders * (n_shards + n_corr * n_test_shards + n_aug * n_train_shards),
                     "frames_encoded": encoders * int(n_frames * (1 + n_corr * test_frac + n_aug * (1 - test_frac))),
                     "probe_cells": cells + encoders * layers * len(cfg.ks) * n_aug * (len(cfg.probes) - n_ctrl)
                     + world_models * layers * len(cfg.ks) * len(imagined),
                     "probe_fits": encoders * layers * len(cfg.ks) * (fits + n_aug * aug_fits)
                     + world_models * layers * len(cfg.ks) * sum(len(s.fit_seeds(cfg.seeds)) for s in imagined),
                     "fidelity_tasks": encoders if cfg.fidelity and (cfg.fidelity_datasets is None
                                                                     or d.name in cfg.fidelity_datasets) else 0})
    return {"encoders": encoders, "zoo_models": zoo_models, "datasets": rows}


def describe_study(src: str | os.PathLike | dict, cache: str | os.PathLike | None = None,
                   overrides: Sequence[str] = ()) -> str:
    """The plan of a study config (with dotted ``overrides``) as text: what runs, how much, where results and
    cache go."""
    from wmprobe.study.cache import default_cache_dir
    from wmprobe.study.config import load_config
    cfg = load_config(src, overrides)
    est = estimate(cfg)
    lines = [f"study '{cfg.name}'" + (f" (preset {cfg.preset})" if cfg.preset else ""),
             f"  encoders: {', '.join(e.shown for e in cfg.encoders) or '-'}"
             + (f"; zoo {', '.join(cfg.zoo.families)} x id_weight {list(cfg.zoo.id_weights)}"
                + (f" x objectives {list(cfg.zoo.all_objectives)} " if cfg.zoo.objectives else " ")
                +
                f"({est['zoo_models']} models{' incl. the ceiling' if cfg.zoo.ceiling else ''}, "
                f"zoo preset {cfg.zoo.preset})" if cfg.zoo.families else ""),
             f"  split {cfg.split}; corruptions {', '.join(cfg.corruptions)}; probes {', '.join(cfg.probes)}; "
             f"k {list(cfg.ks)}; seeds {list(cfg.seeds)}; fidelity {'on' if cfg.fidelity else 'off'}"
             + ("; probes also fit on corrupted train latents (corrupt_train)" if cfg.corrupt_train else ""),
             "  headline groups: " + (str(cfg.headline_groups) if cfg.headline_groups is not None else
                                      "chosen per dataset by the action-space audit at run time"),
             f"  executor {cfg.executor.kind} (max_retries {cfg.executor.max_retries}); "
             f"cache {default_cache_dir(cache)}"]
    tot = {"extract_tasks": 0, "frames_encoded": 0, "probe_cells": 0, "probe_fits": 0, "fidelity_tasks": 0,
           "state_cells": 0}
    cols = [("dataset", "dataset"), ("episodes", "episodes"), ("frames", "frames"), ("extract tasks", "extract_tasks"),
            ("frames encoded", "frames_encoded"), ("probe cells", "probe_cells"), ("probe fits", "probe_fits"),
            ("decoder probes", "fidelity_tasks"), ("state-ceiling cells", "state_cells")]
    table = [[str(r[k]) for _, k in cols] for r in est["datasets"]]
    for r in est["datasets"]:
        for k in tot:
            tot[k] += r[k]
    table.append(["total", "", "", *(str(tot[k]) for _, k in cols[3:])])
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, (h, _) in enumerate(cols)]
    lines.append("  " + "  ".join(h.rjust(w) if i else h.ljust(w) for i, ((h, _), w) in enumerate(zip(cols, widths))))
    for row in table:
        lines.append("  " + "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(row, widths))))
    lines.append("  (tasks already in the cache are skipped)")
    return "\n".join(lines)
