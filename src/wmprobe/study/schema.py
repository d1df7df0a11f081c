"""The study config's sections, each a dataclass whose fields carry their type, default and rule (docs/study.md).

Each default is written here once: ``load_config`` fills absent keys from these fields, ``check`` walks the YAML
against their rules (study/checker.py), and ``StudyConfig.to_dict()`` is what config.yaml saves. A field with
no rule is checked by its section's own function (study/sections.py: datasets and encoders, which have
shorthands and depend on the disk) or is a cross-field check (study/crosschecks.py). Choices are read from
the registries when a config is checked: executors (``study.executor_registry.EXECUTORS``), zoo families
(``zoo.families.REGISTRY``, plugins included), +ID objectives, splits, suites, presets.

Adding an option: add a field with ``setting(DEFAULT, RULE)`` to its section below, read it where it is used,
and document it in docs/study.md; ``check`` reports its problems with file:line without more code.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

from wmprobe._plain import plain as plain   # re-exported: the study config writes through it
from wmprobe.study.fields import (Constraint, NoneMode, Rule, at_least, at_most, between, boolean, choice, expects,
                                  inside, integer, is_finite, is_int, is_num, listing, mapping, not_empty, number,
                                  one_of, parses, setting, wants)

MAX_SEED = 2**32 - 1       # numpy and torch generators take seeds up to this
SUBMITIT_CLUSTERS = ("slurm", "local", "debug")


# ---- the choices: each read from its registry when a config is checked ---------------------------------
def executors() -> list[str]:
    from wmprobe.study.executor_registry import EXECUTORS
    return EXECUTORS.names()


def zoo_families() -> list[str]:
    """The pretraining families of the zoo registry, plugins included (the ceiling is not one)."""
    from wmprobe.zoo.families import pretraining_families
    return pretraining_families()


def objectives() -> list[str]:
    from wmprobe.zoo.objective_names import OBJECTIVES
    return list(OBJECTIVES)


def zoo_presets() -> list[str]:
    from wmprobe.zoo.presets import PRESETS
    return list(PRESETS)


def decoder_presets() -> list[str]:
    from wmprobe.fidelity import PRESETS
    return list(PRESETS)


def splits() -> list[str]:
    from wmprobe.data.splits import SPLITS
    return list(SPLITS)


def suites() -> list[str]:
    from wmprobe.data.sim import SUITES
    return sorted(SUITES)


def _corruption(name: Any) -> None:
    from wmprobe.data.corruptions import parse_corruption
    parse_corruption(str(name))


def _probe(name: Any) -> None:
    from wmprobe.probes import parse_probe_name
    parse_probe_name(name)


def _control_task(name: Any) -> None:
    if isinstance(name, str):   # a list with a non-name in it is reported once, as a whole
        from wmprobe.control.policy import task_descriptor
        task_descriptor(name)


def _path_component(name: Any) -> str | None:
    """A study name names files (``NAME-results``, the submitit folder): one plain path component."""
    if any(ch in name for ch in "/\\\0") or name in (".", "..") or name.startswith("."):
        return f"'{name}' names files and folders (NAME-results): no '/', no leading '.'"
    return None


def _group_names(v: Any) -> str | None:
    return None if v and all(isinstance(g, str) and g for g in v) else \
        "name at least one action group (e.g. [translation])"


def _distinct(v: Any) -> str | None:
    return None if len(set(map(repr, v))) == len(v) else f"lists a value twice: {v!r}"


def _finite_list(rule: str, ok: Callable[[Any], bool]) -> Rule:
    return Rule(want=f"a non-empty list of numbers {rule}", ok=lambda v: isinstance(v, list) and bool(v),
                checks=(Constraint(_distinct),),
                items=wants(f"a finite number {rule}", lambda x: is_finite(x) and ok(x)))


def _count(lo: int, integer_only: bool = True, none: NoneMode = "value") -> Rule:
    kind = "an integer" if integer_only else "a number"
    return wants(f"{kind} >= {lo}", lambda v: (is_int(v) if integer_only else is_num(v)) and v >= lo, none=none)


# ---- the sections ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EncoderCfg:
    name: str = setting(doc='registry name, e.g. "pixels:8", "dinov2:/ckpt/dir" (study/sections.py)')
    options: dict[str, Any] = setting({}, mapping("a mapping of factory options"))
    layers: tuple[str, ...] | None = setting(None, listing("a list of layer names", unique=True, none="ok"),
                                             doc="None: the study's `layers`, else the encoder's default")
    label: str | None = setting(None, wants("a non-empty string", lambda v: isinstance(v, str) and bool(v.strip()),
                                            none="ok"), doc="name shown in records (null or absent: ``name``)")
    id_weight: float = setting(0.0, number(at_least(0)))

    @property
    def shown(self) -> str:
        return self.label or self.name


@dataclass(frozen=True)
class DatasetCfg:
    name: str = setting(doc="default: the suite, or the store directory's name")
    sim: str | None = setting(None, Rule(checks=(one_of(suites, "unknown simulator suite '{value}' (known: "
                                                                "{known})"),), none="ok"),
                              doc="embedded simulator suite (generated into the cache)")
    path: str | None = setting(None, doc="an EpisodeStore on disk (`wmprobe data import` makes one)")
    episodes: int = setting(48, integer(at_least(1)))
    steps: int | None = setting(None, integer(none="ok"))
    size: int = setting(64, integer(at_least(1)))
    camera: str | None = setting(None, doc="None: the suite's default (oblique; metaworld corner)")
    tasks: str | int | tuple[str, ...] | None = setting(None, doc="which of the suite's tasks (all | N | names)")
    action_groups: dict[str, list[int]] | None = setting(None, doc="overrides the store's groups ({} = none)")
    wrist: str | None = setting(None, doc="pybullet suites: fixed (None, the default) or free (7-dim actions)")
    allow_symlinks_out: bool = setting(False, boolean(), doc="a `path:` store whose files link outside it is read")


@dataclass(frozen=True)
class ZooCfg:
    families: tuple[str, ...] = setting((), listing(
        "a list of family names or all", none="default",
        items=choice(zoo_families, "unknown zoo family '{value}' (known: {known})")),
        doc="`all`: every pretraining family of the zoo registry")
    id_weights: tuple[float, ...] = setting((0.0, 1.0), listing("a list of numbers", items=number(at_least(0))))
    preset: str = setting("demo", choice(zoo_presets, "unknown zoo preset '{value}' (known: {known})"))
    objective: str = setting("l1", choice(objectives, "unknown +ID objective '{value}' (known: {known})"))
    objectives: tuple[str, ...] = setting((), listing(
        "a list of +ID objectives", none="default",
        items=choice(objectives, "unknown +ID objective '{value}' (known: {known})")),
        doc="the objective ablation: one +ID model per objective (default: objective)")
    ceiling: bool = setting(True, boolean(), doc="also train the `ceiling` (the trunk trained by +ID alone)")
    replicates: int = setting(1, integer(at_least(1), at_most(16)),
                              doc="training seeds per zoo model: replicate r > 0 is labelled `zoo:FAMILY#r` and "
                                  "trains with zoo seed `seed + 1000 r` (docs/zoo.md \"Training-seed replicates\")")
    replicate_weights: tuple[float, ...] | None = setting(
        None, listing("a list of numbers (id_weights of this zoo)", items=number(at_least(0)), none="ok"),
        doc="the id_weights whose models get the `replicates` (None: every model; [0]: only the frozen ones, "
            "whose order is the one a training seed moves: docs/zoo.md \"Training-seed replicates\")")
    id_groups: tuple[str, ...] | None = setting(None, listing("a list of action group names",
                                                              Constraint(_group_names), none="ok"),
                                                doc="action groups +ID trains on (None: the headline groups)")

    @property
    def all_objectives(self) -> tuple[str, ...]:
        return self.objectives or (self.objective,)

    def replicates_of(self, id_weight: float) -> int:
        """Training seeds of the models at ``id_weight``: ``replicates``, or 1 for a weight that
        ``replicate_weights`` leaves out."""
        if self.replicate_weights is None or id_weight in self.replicate_weights:   # 0 == 0.0: ints match
            return self.replicates
        return 1


#: the keys of ``executor.submitit`` (the others are passed to submitit as they are)
SUBMITIT_OPTIONS: dict[str, Rule] = {
    "cluster": Rule(checks=(one_of(lambda: SUBMITIT_CLUSTERS, "choose one of {known}"),)),
    "folder": Rule(), "partition": Rule(), "account": Rule(), "qos": Rule(), "constraint": Rule(),
    "additional_parameters": Rule(),
    "gpus_per_node": _count(0), "cpus_per_task": _count(1), "mem_gb": _count(0, integer_only=False),
    "timeout_min": _count(1), "array_parallelism": _count(1), "tasks_per_job": _count(1),
}
RAY_OPTIONS: dict[str, Rule] = {
    "address": Rule(), "runtime_env": Rule(), "num_cpus": _count(1, False, "ok"),
    "num_cpus_per_task": _count(0, False, "ok"), "num_gpus_per_task": _count(0, False, "ok"),
}
#: the MLP probe options of a study's ``probe:`` (their defaults are ``probes.mlp.MLPProbe``'s; ``seeds`` is
#: the study's)
PROBE_OPTIONS: dict[str, Rule] = {
    "steps": wants("an integer > 0", lambda v: is_int(v) and v > 0),
    "batch_size": wants("an integer > 0", lambda v: is_int(v) and v > 0),
    "hidden": wants("a non-empty list of layer widths > 0 (e.g. [256, 128]; ridge is the linear probe)",
                    lambda v: isinstance(v, list) and bool(v) and all(is_int(x) and x > 0 for x in v)),
    "lrs": _finite_list("> 0", lambda x: x > 0),
    "weight_decays": _finite_list(">= 0", lambda x: x >= 0),
    "val_frac": wants("a number in (0, 1)", lambda v: is_num(v) and 0 < v < 1),
    "loss": wants("l1 or l2", lambda v: v in ("l1", "l2")),
    "use_diff": wants("true or false", lambda v: isinstance(v, bool)),
    "ensemble": wants("an integer >= 1 (heads averaged per probe seed)", lambda v: is_int(v) and v >= 1),
}


@dataclass(frozen=True)
class ExecutorCfg:
    kind: str = setting("local", choice(executors, "unknown executor '{value}' (known: {known})"))
    max_retries: int = setting(2, integer(at_least(0)))
    workers: int = setting(0, integer(at_least(0), what="an integer (0 = one per core)"),
                           doc="local: processes (0 = auto)")
    submitit: dict[str, Any] = setting({}, mapping("a mapping", SUBMITIT_OPTIONS),
                                       doc="cluster, folder, partition, gpus_per_node, ...")
    ray: dict[str, Any] = setting({}, mapping("a mapping", RAY_OPTIONS),
                                  doc="address, num_cpus, num_gpus_per_task, ...")


def _executor_what() -> str:
    from wmprobe.study.executor_registry import EXECUTORS
    return f"a mapping (kind: {'|'.join(EXECUTORS.builtin_names())}, ...)"


def _names(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, str) for x in v)


_ONE_OR_MORE = wants("an integer >= 1", lambda v: is_int(v) and v >= 1)


def _control_heads() -> tuple[str, ...]:
    from wmprobe.control.heads import HEADS
    return HEADS


@dataclass(frozen=True)
class ControlCfg:
    """``control:`` (closed-loop behaviour cloning, study/control.py); the study keeps it as a mapping with
    every key (``study.control.resolved``). ``datasets`` must name the study's (study/crosschecks.py)."""

    rollouts: int = setting(4, _ONE_OR_MORE, doc="rollouts per task")
    horizon: int = setting(80, _ONE_OR_MORE, doc="steps per rollout")
    tasks: tuple[str, ...] | None = setting(None, expects("a non-empty list of task names", _names, shown=False,
                                                          none="ok", items=Rule(checks=(parses(_control_task),))),
                                            doc="None: every task of the dataset")
    policy_steps: int = setting(4000, _ONE_OR_MORE)
    seeds: tuple[int, ...] | None = setting(None, expects(
        "a non-empty list of distinct integers >= 0", lambda v: isinstance(v, list) and bool(v)
        and len(set(map(str, v))) == len(v) and all(is_int(x) and x >= 0 for x in v), none="ok"),
        doc="None: the study's seeds")
    datasets: tuple[str, ...] | None = setting(None, expects("a non-empty list of dataset names", _names, none="ok"),
                                               doc="None: every embedded pybullet dataset")
    demos: int = setting(16, wants("an integer >= 1", lambda v: is_int(v) and v >= 0),
                         doc="fresh expert demonstrations per train task (0: the store's episodes only)")
    chunk: int = setting(4, _ONE_OR_MORE, doc="action chunk length")
    state: bool = setting(True, wants("true or false", lambda v: isinstance(v, bool)),
                          doc="also the privileged-state ceiling")
    head: str = setting("mean", choice(_control_heads, "unknown control head '{value}' (known: {known})"),
                        doc="mean: the mean-pooled features; spatial | flat: heads over the patch tokens")
    augment: int = setting(0, wants("an integer >= 0", lambda v: is_int(v) and v >= 0),
                           doc="randomly shifted copies of every training frame (token heads)")
    replan: int = setting(1, _ONE_OR_MORE, doc="steps between policy queries: 1 every step, temporal ensembling; "
                          "N <= chunk: receding horizon, each chunk's first N actions open loop (1/N frames rendered)")


def _control_mapping(v: Any) -> str | None:
    return None if isinstance(v, dict) else ("expected a mapping: {rollouts: N, horizon: T, tasks: [...], "
                                             "policy_steps: S, seeds: [...], datasets: [...]}")


@dataclass(frozen=True)
class StudyConfig:
    name: str = setting("study", Rule(want="a non-empty string", ok=lambda v: isinstance(v, str) and bool(v.strip()),
                                      checks=(Constraint(_path_component),)),
                        doc="names NAME-results (default: the file's stem)")
    preset: str | None = setting(None, doc="tiny | demo | compare | paper: merged below the file (study/config.py)")
    seed: int = setting(0, integer(between(0, MAX_SEED)))
    datasets: tuple[DatasetCfg, ...] = setting((), doc="study/sections.py")
    encoders: tuple[EncoderCfg, ...] = setting((), doc="study/sections.py")
    zoo: ZooCfg = setting(ZooCfg(), mapping("a mapping", ZooCfg))
    split: str = setting("task", choice(splits, "unknown split '{value}' (known: {known})"))
    test_frac: float = setting(0.25, number(inside(0, 1)))
    test_tasks: tuple[str, ...] | None = setting(None, listing("a list of task names", not_empty(), unique=True,
                                                               none="ok"),
                                                 doc="task split: the task names held out in every dataset "
                                                     "(None: drawn with the seed)")
    corruptions: tuple[str, ...] = setting(("clean",), listing("a list", unique=True, items=Rule(
        checks=(parses(_corruption),))))
    corrupt_datasets: tuple[str, ...] | None = setting(None, listing("a list of dataset names", none="ok"),
                                                       doc="None: every dataset")
    corrupt_train: bool = setting(False, boolean(),
                                  doc="also fit each probe on the train latents under each corruption")
    layers: tuple[str, ...] | None = setting(None, listing("a list of layer names", unique=True, none="ok"))
    probes: tuple[str, ...] = setting(("mlp", "ridge", "mlp-shuffled"), listing("a list", unique=True, items=Rule(
        checks=(parses(_probe),))))
    ks: tuple[int, ...] = setting((1,), listing("a list of integers", not_empty(), unique=True,
                                                items=integer(at_least(1))))
    seeds: tuple[int, ...] = setting((0, 1, 2), listing("a list of integers", not_empty(), unique=True,
                                                        items=integer(at_least(0), at_most(MAX_SEED))))
    probe: dict[str, Any] = setting({}, mapping("a mapping of MLP probe options (steps, batch_size, lrs, ...)",
                                                PROBE_OPTIONS), doc="MLP probe options")
    n_boot: int = setting(1000, integer(at_least(0)))
    fidelity: bool = setting(False, boolean())
    fidelity_preset: str = setting("demo", choice(decoder_presets,
                                                  "unknown decoder-probe preset '{value}' (known: {known})"))
    fidelity_datasets: tuple[str, ...] | None = setting(None, listing("a list of dataset names", none="ok"),
                                                        doc="None: every dataset")
    shard_episodes: int = setting(16, integer(at_least(1)))
    device: str = setting("cpu", doc="cpu | cuda | cuda:N | mps | auto (study/checks.py check_device)")
    threads: int = setting(1, integer(at_least(1)), doc="torch CPU threads per task (results depend on it)")
    executor: ExecutorCfg = setting(ExecutorCfg(), mapping(_executor_what(), ExecutorCfg))
    control: dict[str, Any] | None = setting(None, Rule(checks=(Constraint(_control_mapping),), section=ControlCfg,
                                                        none="ok"),
                                             doc="closed-loop control (ControlCfg, study/control.py); None: off")
    headline_groups: tuple[str, ...] | dict[str, tuple[str, ...]] | None = setting(
        None, doc="[groups] for every dataset or {dataset: [groups]}; None: the audit's (probes/headline.py)")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = plain(asdict(self))
        return out

