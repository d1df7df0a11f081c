"""Study configs: one YAML names encoders, datasets, split, corruptions, layers, probes, k, seeds (docs/study.md).

``load_config(path_or_dict) -> StudyConfig`` resolves a preset (``tiny`` / ``demo`` / ``paper``, the same
sizes as ``wmprobe demo --preset``), overlays the file and checks every field; ``validate(path)`` returns
every problem at once, each with its location (``study.yaml:12: encoders[2].name: ...``), instead of
stopping at the first. A StudyConfig round-trips through ``to_dict()`` (it is saved with the records).
"""
from __future__ import annotations

import copy
import difflib
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from wmprobe.errors import ConfigError
from wmprobe.study.checks import (MAX_SEED, check_device, check_encoder, check_encoder_arg, check_executor_numbers,
                                  check_name, check_probe_options, check_store_splits, check_unique, episode_length,
                                  resolve_device, study_layers_apply)

EXECUTORS = ("local", "submitit", "ray")
SUBMITIT_CLUSTERS = ("slurm", "local", "debug")


@dataclass(frozen=True)
class Problem:
    where: str          # "encoders[2].name"
    message: str
    line: int | None = None
    file: str | None = None

    def __str__(self) -> str:
        loc = f"{self.file}:{self.line}: " if self.file and self.line else (f"{self.file}: " if self.file else "")
        return f"{loc}{self.where}: {self.message}" if self.where else f"{loc}{self.message}"


@dataclass(frozen=True)
class EncoderCfg:
    name: str                                # registry name, e.g. "pixels:8", "dinov2:/ckpt/dir"
    options: dict[str, Any] = field(default_factory=dict)
    layers: tuple[str, ...] | None = None    # None: the study's `layers`, else the encoder's default
    label: str | None = None                 # name shown in records (default: ``name``)
    id_weight: float = 0.0

    @property
    def shown(self) -> str:
        return self.label or self.name


@dataclass(frozen=True)
class DatasetCfg:
    name: str
    sim: str | None = None       # embedded simulator suite (generated into the cache)
    path: str | None = None      # an EpisodeStore on disk (`wmprobe data import` makes one)
    episodes: int = 48
    steps: int | None = None
    size: int = 64
    camera: str | None = None    # None: the suite's default (oblique; metaworld corner)
    tasks: str | int | tuple[str, ...] | None = None   # which of the suite's tasks (all | N | names; docs/data.md)
    action_groups: dict[str, list[int]] | None = None  # overrides the store's groups ({} = none; docs/study.md)
    wrist: str | None = None     # pybullet suites: fixed (None, the default) or free (7-dim actions)
    allow_symlinks_out: bool = False   # a `path:` store whose files link outside it is read (docs/data.md)


@dataclass(frozen=True)
class ZooCfg:
    families: tuple[str, ...] = ()
    id_weights: tuple[float, ...] = (0.0, 1.0)
    preset: str = "demo"
    objective: str = "l1"
    objectives: tuple[str, ...] = ()    # the objective ablation: one +ID model per objective (default: objective)
    ceiling: bool = True                # also train the `ceiling` (the trunk trained by +ID alone)
    id_groups: tuple[str, ...] | None = None   # action groups +ID trains on (None: the headline groups)

    @property
    def all_objectives(self) -> tuple[str, ...]:
        return self.objectives or (self.objective,)


@dataclass(frozen=True)
class ExecutorCfg:
    kind: str = "local"
    max_retries: int = 2
    workers: int = 0                                          # local: processes (0 = auto)
    submitit: dict[str, Any] = field(default_factory=dict)   # cluster, folder, partition, gpus_per_node, ...
    ray: dict[str, Any] = field(default_factory=dict)        # address, num_cpus, num_gpus_per_task, ...


@dataclass(frozen=True)
class StudyConfig:
    name: str = "study"
    preset: str | None = None
    seed: int = 0
    datasets: tuple[DatasetCfg, ...] = ()
    encoders: tuple[EncoderCfg, ...] = ()
    zoo: ZooCfg = ZooCfg()
    split: str = "task"
    test_frac: float = 0.25
    corruptions: tuple[str, ...] = ("clean",)
    corrupt_datasets: tuple[str, ...] | None = None   # None: every dataset
    corrupt_train: bool = False   # also fit each probe on the train latents under each corruption (augmentation)
    layers: tuple[str, ...] | None = None
    probes: tuple[str, ...] = ("mlp", "ridge", "mlp-shuffled")
    ks: tuple[int, ...] = (1,)
    seeds: tuple[int, ...] = (0, 1, 2)
    probe: dict[str, Any] = field(default_factory=dict)     # MLP probe options: steps, batch_size, lrs, ...
    n_boot: int = 1000
    fidelity: bool = False
    fidelity_preset: str = "demo"
    fidelity_datasets: tuple[str, ...] | None = None  # None: every dataset
    shard_episodes: int = 16
    device: str = "cpu"
    threads: int = 1                                          # torch CPU threads per task (results depend on it)
    executor: ExecutorCfg = ExecutorCfg()
    control: dict[str, Any] | None = None      # closed-loop control (wmprobe.study.control); None: off
    # the groups the headline r2 averages: [groups] for every dataset or {dataset: [groups]}; None: the audit's
    headline_groups: tuple[str, ...] | dict[str, tuple[str, ...]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


# ---- presets: the same sizes as `wmprobe demo --preset` ------------------------------------------
def preset_dict(name: str) -> dict[str, Any]:
    """The study config that ``preset: NAME`` stands for (``wmprobe/presets/NAME.yaml``, study/presets.py)."""
    from wmprobe.study.presets import study_preset
    return study_preset(name).study_dict()


# ---- loading and checking ------------------------------------------------------------------------
_TOP = {f.name for f in StudyConfig.__dataclass_fields__.values()}
_DATASET = {f.name for f in DatasetCfg.__dataclass_fields__.values()}
_ENCODER = {f.name for f in EncoderCfg.__dataclass_fields__.values()}
_ZOO = {f.name for f in ZooCfg.__dataclass_fields__.values()}
_EXEC = {f.name for f in ExecutorCfg.__dataclass_fields__.values()}
_SUBMITIT = {"cluster", "folder", "partition", "gpus_per_node", "cpus_per_task", "mem_gb", "timeout_min",
             "array_parallelism", "tasks_per_job", "account", "qos", "constraint", "additional_parameters"}
_RAY = {"address", "num_cpus", "num_cpus_per_task", "num_gpus_per_task", "runtime_env"}


class _Checker:
    def __init__(self, file: str | None, lines: dict[str, int], overrides: dict[str, int] | None = None):
        self.file, self.lines, self.problems = file, lines, []
        self.overrides = overrides or {}   # config path -> command-line override number (study/overrides.py)

    def bad(self, where: str, message: str) -> None:
        probe = where
        while probe:  # a problem under an overridden path is the override's, not the file's
            if probe in self.overrides:
                self.problems.append(Problem(where, message, None, f"override {self.overrides[probe]}"))
                return
            probe = probe.rpartition(".")[0] if "." in probe else probe.rpartition("[")[0]
        line = self.lines.get(where)
        probe = where
        while line is None and probe:  # fall back to the closest enclosing node that has a line
            probe = probe.rpartition(".")[0] if "." in probe else probe.rpartition("[")[0]
            line = self.lines.get(probe)
        self.problems.append(Problem(where, message, line, self.file))

    def keys(self, d: dict, allowed: set[str], where: str) -> None:
        for k in d:
            if k not in allowed:
                close = difflib.get_close_matches(str(k), sorted(allowed), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(sorted(allowed))})"
                self.bad(f"{where}.{k}" if where else str(k), f"unknown key{hint}")

    def typed(self, value: Any, kind: type | tuple, where: str, what: str) -> bool:
        ok = isinstance(value, kind) and not (kind in (int, float, (int, float)) and isinstance(value, bool))
        if not ok:
            self.bad(where, f"expected {what}, got {type(value).__name__} {value!r}")
        return ok


def _read(src: str | os.PathLike | dict) -> tuple[dict[str, Any], str | None, dict[str, int], Path | None]:
    if isinstance(src, dict):
        return copy.deepcopy(src), None, {}, None
    path = Path(src)
    if not path.exists():
        raise ConfigError(f"study config {path} does not exist")
    if not path.is_file():
        raise ConfigError(f"study config {path} is not a file")
    from wmprobe.study.checks import read_yaml
    doc, lines = read_yaml(path)   # bounded size and alias expansion, duplicate keys refused
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: a study config is a mapping of keys (name, encoders, datasets, ...), "
                          f"got {type(doc).__name__}")
    return doc, str(path), lines, path.parent


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _preset_for(base: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    """A preset's keys that name its own datasets (``corrupt_datasets``, ``fidelity_datasets``: its first
    suite) follow the user's ``datasets`` when the user replaces them: they name the user's first dataset."""
    base = dict(base)
    raw = user.get("datasets")
    if isinstance(raw, list) and raw:
        first = raw[0]
        if isinstance(first, dict):
            name = first.get("name") or first.get("sim") or (Path(str(first["path"])).name if first.get("path") else None)
        else:
            from wmprobe.data.sim import SUITES
            name = first if first in SUITES else Path(str(first)).name
        for key in ("corrupt_datasets", "fidelity_datasets"):
            if key not in user:
                base[key] = [str(name)] if name else None
    return base


def check(src: str | os.PathLike | dict, overrides: Sequence[str] = ()) -> tuple[StudyConfig | None, list[Problem]]:
    """Parse and check a study config; returns the config (None when unusable) and every problem found.
    ``overrides``: dotted ``KEY=VALUE`` strings applied on top of the file and its preset (study/overrides.py);
    their problems are located at ``override N``."""
    try:
        doc, file, lines, base_dir = _read(src)
    except ConfigError as exc:
        return None, [Problem("", str(exc))]
    from wmprobe.study.overrides import apply_overrides
    preset_over = [o for o in overrides if str(o).partition("=")[0].strip() == "preset"]
    doc = apply_overrides(doc, preset_over)[0]
    c = _Checker(file, lines)
    preset = doc.get("preset")
    if preset is not None:
        try:
            doc = _merge(_preset_for(preset_dict(str(preset)), doc), doc)
        except ConfigError as exc:
            c.bad("preset", str(exc))
    if overrides:
        doc, c.overrides, bad_overrides = apply_overrides(doc, overrides)
        for n, where, message in bad_overrides:
            c.problems.append(Problem(where, message, None, f"override {n}"))
    c.keys(doc, _TOP, "")
    seed = doc.get("seed", 0)
    if c.typed(seed, int, "seed", "an integer") and not 0 <= seed <= MAX_SEED:
        c.bad("seed", f"must be in 0..{MAX_SEED}, got {seed}")
    name = doc.get("name", Path(file).stem if file else "study")
    check_name(c.bad, name)
    name = str(name)

    # datasets
    datasets = []
    lengths: dict[str, int | None] = {}   # longest episode per dataset, where knowable (k is checked on it)
    groups_of: dict[str, list[str] | None] = {}   # each dataset's action groups, where knowable
    store_paths: dict[str, Any] = {}      # datasets[i] -> (name, store path), None for a simulator suite
    from wmprobe.data.sim import SUITES
    raw = doc.get("datasets") or []
    if not raw:
        c.bad("datasets", "name at least one dataset (a simulator suite `sim: dynamic` or `path: STORE`)")
    if c.typed(raw, list, "datasets", "a list"):
        seen: set[str] = set()
        for i, d in enumerate(raw):
            w = f"datasets[{i}]"
            if isinstance(d, str):
                d = {"name": d, "sim": d} if d in SUITES else {"name": Path(d).name, "path": d}
            if not c.typed(d, dict, w, "a mapping or a suite name / store path"):
                continue
            c.keys(d, _DATASET, w)
            sim, path = d.get("sim"), d.get("path")
            if (sim is None) == (path is None):
                c.bad(w, "give exactly one of `sim: SUITE` or `path: STORE`")
            if sim is not None and sim not in SUITES:
                c.bad(f"{w}.sim", f"unknown simulator suite '{sim}' (known: {', '.join(sorted(SUITES))})")
            if path is not None:
                p = Path(path).expanduser()
                if not p.is_absolute() and base_dir is not None:
                    p = base_dir / p
                if not (p / "meta.json").exists():
                    c.bad(f"{w}.path", f"{p} is not an EpisodeStore (no meta.json); convert a LeRobot/CALVIN/"
                                       "LIBERO dataset with `wmprobe data import SRC DEST`")
                path = str(p)
            for key in ("episodes", "size"):
                if key in d and c.typed(d[key], int, f"{w}.{key}", "an integer") and d[key] < 1:
                    c.bad(f"{w}.{key}", "must be >= 1")
            if d.get("steps") is not None:
                c.typed(d["steps"], int, f"{w}.steps", "an integer")
            if d.get("tasks") is not None:
                if isinstance(d["tasks"], list):
                    d = {**d, "tasks": tuple(str(t) for t in d["tasks"])}
                if sim is None:
                    c.bad(f"{w}.tasks", "only simulator suites (`sim:`) choose tasks; a store has its own")
                elif sim in SUITES:
                    from wmprobe.data.sim.generate import check_params
                    try:
                        check_params(sim, 1, tasks=d["tasks"])
                    except ConfigError as exc:
                        c.bad(f"{w}.tasks", str(exc))
            if sim is None and d.get("wrist") is not None:
                c.bad(f"{w}.wrist", "only simulator suites (`sim:`) choose a wrist mode; a store has its actions")
            groups = _check_groups(c, d, w, sim, path)
            if "allow_symlinks_out" in d:
                c.typed(d["allow_symlinks_out"], bool, f"{w}.allow_symlinks_out", "true or false")
            escapes: list[str] = []
            if path is not None and (Path(path) / "meta.json").exists() and d.get("allow_symlinks_out") is not True:
                from wmprobe.data.store import links_out
                escapes = links_out(Path(path))   # what loading the store would refuse (and nothing is read)
                for problem in escapes[:1]:
                    c.bad(f"{w}.path", problem)
            params = _sim_params(c, w, sim, d, seed) if sim in SUITES else None
            if not escapes:
                lengths[str(d.get("name") or sim or Path(str(path)).name)] = episode_length(sim, path, params)
            store_paths[w] = ((str(d.get("name") or Path(str(path)).name), path, d.get("allow_symlinks_out") is True)
                              if sim is None and path and not escapes else None)
            dname = str(d.get("name") or sim or Path(str(path)).name)
            groups_of[dname] = _declared_groups(sim, path, groups, params)
            if dname in seen:
                c.bad(f"{w}.name", f"duplicate dataset name '{dname}'")
            seen.add(dname)
            try:
                datasets.append(DatasetCfg(name=dname, sim=sim, path=path,
                                           action_groups=groups,
                                           **{k: d[k] for k in ("episodes", "steps", "size", "camera", "tasks",
                                                                "wrist", "allow_symlinks_out") if k in d}))
            except TypeError as exc:
                c.bad(w, str(exc))

    # encoders
    from wmprobe.encoders.registry import list_encoders, split_name
    known = list_encoders()
    encoders = []
    raw = doc.get("encoders") or []
    zoo_raw = doc.get("zoo") or {}
    if not raw and not (isinstance(zoo_raw, dict) and zoo_raw.get("families")):
        c.bad("encoders", "name at least one encoder (or zoo families)")
    if c.typed(raw, list, "encoders", "a list"):
        labels: set[str] = set()
        for i, e in enumerate(raw):
            w = f"encoders[{i}]"
            if isinstance(e, str):
                e = {"name": e}
            if not c.typed(e, dict, w, "a registry name or a mapping with `name`"):
                continue
            c.keys(e, _ENCODER, w)
            ename = e.get("name")
            if not isinstance(ename, str) or not ename:
                c.bad(f"{w}.name", "missing encoder name")
                continue
            ename = ename.replace("{seed}", str(seed))
            base, arg = split_name(ename)
            if ":" not in ename and _bare_checkpoint(c, ename, f"{w}.name"):
                pass  # a hub id or checkpoint directory: its family comes from its config.json
            elif base not in known and not ("." in base and arg):
                close = difflib.get_close_matches(base, list(known), n=3, cutoff=0.5)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                c.bad(f"{w}.name", f"unknown encoder '{ename}'{hint} (`wmprobe ls encoders`)")
            opts = e.get("options") or {}
            c.typed(opts, dict, f"{w}.options", "a mapping of factory options")
            layers = e.get("layers")
            if layers is not None and c.typed(layers, list, f"{w}.layers", "a list of layer names"):
                layers = tuple(str(x) for x in layers)
                check_unique(c.bad, list(layers), f"{w}.layers")
            if isinstance(opts, dict) and (layers is None or isinstance(layers, tuple)):
                check_encoder(c.bad, w, ename, opts, layers)
                check_encoder_arg(c.bad, w, ename, opts)
            if "label" in e and not (isinstance(e["label"], str) and e["label"].strip()):
                c.bad(f"{w}.label", f"must be a non-empty string, got {e['label']!r}")
            if "id_weight" in e and c.typed(e["id_weight"], (int, float), f"{w}.id_weight", "a number") \
                    and e["id_weight"] < 0:
                c.bad(f"{w}.id_weight", "must be >= 0")
            if not isinstance(e.get("id_weight", 0.0), (int, float)):
                continue
            label = e.get("label") or ename
            if label in labels:
                c.bad(w, f"encoder '{label}' listed twice: give one of them a `label`")
            labels.add(label)
            encoders.append(EncoderCfg(ename, dict(opts) if isinstance(opts, dict) else {}, layers,
                                       e.get("label"), float(e.get("id_weight", 0.0))))

    # zoo
    zoo = ZooCfg()
    if c.typed(zoo_raw, dict, "zoo", "a mapping"):
        c.keys(zoo_raw, _ZOO, "zoo")
        from wmprobe import zoo as zoo_mod
        fams = zoo_raw.get("families") or []
        for i, f in enumerate(fams if isinstance(fams, list) else []):
            if f not in zoo_mod.FAMILIES:
                c.bad(f"zoo.families[{i}]", f"unknown zoo family '{f}' (known: {', '.join(zoo_mod.FAMILIES)})")
        if not isinstance(fams, list):
            c.bad("zoo.families", "expected a list of family names")
        zp = zoo_raw.get("preset", "demo")
        if zp not in zoo_mod.PRESETS:
            c.bad("zoo.preset", f"unknown zoo preset '{zp}' (known: {', '.join(zoo_mod.PRESETS)})")
        ws = zoo_raw.get("id_weights", [0.0, 1.0])
        if c.typed(ws, list, "zoo.id_weights", "a list of numbers"):
            for i, x in enumerate(ws):
                if c.typed(x, (int, float), f"zoo.id_weights[{i}]", "a number") and x < 0:
                    c.bad(f"zoo.id_weights[{i}]", "must be >= 0")
        from wmprobe.zoo.objectives import OBJECTIVES
        objs = [zoo_raw.get("objective", "l1")] + list(zoo_raw.get("objectives") or [])
        for i, o in enumerate(objs):
            if o not in OBJECTIVES:
                where = "zoo.objective" if i == 0 else f"zoo.objectives[{i - 1}]"
                c.bad(where, f"unknown +ID objective '{o}' (known: {', '.join(OBJECTIVES)})")
        ceil = zoo_raw.get("ceiling", True)
        c.typed(ceil, bool, "zoo.ceiling", "true or false")
        groups = zoo_raw.get("id_groups")
        if groups is not None and c.typed(groups, list, "zoo.id_groups", "a list of action group names") \
                and (not groups or not all(isinstance(g, str) and g for g in groups)):
            c.bad("zoo.id_groups", "name at least one action group (e.g. [translation])")
        if isinstance(fams, list) and isinstance(ws, list):
            zoo = ZooCfg(tuple(fams), tuple(float(x) for x in ws if isinstance(x, (int, float))), str(zp),
                         str(objs[0]), tuple(str(o) for o in objs[1:]), ceiling=ceil is not False,
                         id_groups=tuple(str(g) for g in groups) if isinstance(groups, list) else None)

    # split, corruptions, probes, k, seeds
    split = doc.get("split", "task")
    from wmprobe.data.splits import SPLITS
    if split not in SPLITS:
        c.bad("split", f"unknown split '{split}' (known: {', '.join(SPLITS)})")
    tf = doc.get("test_frac", 0.25)
    if c.typed(tf, (int, float), "test_frac", "a number") and not 0 < tf < 1:
        c.bad("test_frac", "must be in (0, 1)")
    if store_paths and all(store_paths.values()) and not c.problems:
        check_store_splits(c.bad, store_paths, split, tf, seed)
    from wmprobe.data.corruptions import parse_corruption
    corr = doc.get("corruptions", ["clean"])
    if c.typed(corr, list, "corruptions", "a list"):
        check_unique(c.bad, corr, "corruptions")
        for i, s in enumerate(corr):
            try:
                parse_corruption(str(s))
            except Exception as exc:  # noqa: BLE001 - parse errors are reported as problems
                c.bad(f"corruptions[{i}]", str(exc))
    cds, fds = doc.get("corrupt_datasets"), doc.get("fidelity_datasets")
    for key, val in (("corrupt_datasets", cds), ("fidelity_datasets", fds)):
        if val is not None and c.typed(val, list, key, "a list of dataset names"):
            for i, n in enumerate(val):
                if n not in {d.name for d in datasets}:
                    c.bad(f"{key}[{i}]", f"'{n}' is not one of the study's datasets")
    _check_corrupt_train(c, doc.get("corrupt_train", False), corr, cds)
    from wmprobe.probes import parse_probe_name
    probes = doc.get("probes", ["mlp", "ridge", "mlp-shuffled"])
    if c.typed(probes, list, "probes", "a list"):
        check_unique(c.bad, probes, "probes")
        for i, pr in enumerate(probes):
            try:
                parse_probe_name(pr)
            except Exception as exc:  # noqa: BLE001
                c.bad(f"probes[{i}]", str(exc))
    for key, lo in (("ks", 1), ("seeds", 0)):
        vals = doc.get(key, [1] if key == "ks" else [0, 1, 2])
        if c.typed(vals, list, key, "a list of integers"):
            if not vals:
                c.bad(key, "must not be empty")
            check_unique(c.bad, vals, key)
            for i, v in enumerate(vals):
                if c.typed(v, int, f"{key}[{i}]", "an integer") and v < lo:
                    c.bad(f"{key}[{i}]", f"must be >= {lo}")
                elif key == "seeds" and isinstance(v, int) and v > MAX_SEED:
                    c.bad(f"{key}[{i}]", f"must be <= {MAX_SEED}")
                elif key == "ks" and isinstance(v, int):
                    for dname, longest in lengths.items():
                        if longest is not None and v >= longest:
                            c.bad(f"ks[{i}]", f"k={v} needs episodes longer than {v} steps, but the longest "
                                              f"episode of dataset '{dname}' has {longest}")
    layers = doc.get("layers")
    if layers is not None and c.typed(layers, list, "layers", "a list of layer names"):
        check_unique(c.bad, layers, "layers")
        study_layers_apply(c.bad, [e.name for e in encoders if e.layers is None], tuple(map(str, layers)))
    probe_cfg = doc.get("probe", {}) or {}
    if c.typed(probe_cfg, dict, "probe", "a mapping of MLP probe options (steps, batch_size, lrs, ...)"):
        import inspect
        from wmprobe.probes.mlp import MLPProbe
        allowed = {n for n in inspect.signature(MLPProbe).parameters if n != "unknown"}
        c.keys(probe_cfg, allowed - {"seeds"}, "probe")
        check_probe_options(c.bad, probe_cfg)
    for key, lo, default in (("n_boot", 0, 1000), ("shard_episodes", 1, 16), ("threads", 1, 1)):
        v = doc.get(key, default)
        if c.typed(v, int, key, "an integer") and v < lo:
            c.bad(key, f"must be >= {lo}")
    c.typed(doc.get("fidelity", False), bool, "fidelity", "true or false")
    ex_kind = doc.get("executor", {}).get("kind") if isinstance(doc.get("executor"), dict) else doc.get("executor")
    check_device(c.bad, doc.get("device", "cpu"), here=ex_kind in (None, "local"))  # cluster nodes have their own
    from wmprobe.fidelity import PRESETS as DECODER_PRESETS
    if doc.get("fidelity_preset", "demo") not in DECODER_PRESETS:
        c.bad("fidelity_preset", f"unknown decoder-probe preset '{doc.get('fidelity_preset')}' "
                                 f"(known: {', '.join(DECODER_PRESETS)})")

    from wmprobe.probes.headline import check_config as check_headline
    heads = doc.get("headline_groups")
    check_headline(c.bad, heads, groups_of)

    # executor
    ex = doc.get("executor", {}) or {}
    if isinstance(ex, str):
        ex = {"kind": ex}
    execfg = ExecutorCfg()
    if c.typed(ex, dict, "executor", "a mapping (kind: local|submitit|ray, ...)"):
        c.keys(ex, _EXEC, "executor")
        kind = ex.get("kind", "local")
        if kind not in EXECUTORS:
            c.bad("executor.kind", f"unknown executor '{kind}' (known: {', '.join(EXECUTORS)})")
        wk = ex.get("workers", 0)
        if c.typed(wk, int, "executor.workers", "an integer (0 = one per core)") and wk < 0:
            c.bad("executor.workers", "must be >= 0")
        mr = ex.get("max_retries", 2)
        if c.typed(mr, int, "executor.max_retries", "an integer") and mr < 0:
            c.bad("executor.max_retries", "must be >= 0")
        sub = ex.get("submitit", {}) or {}
        if c.typed(sub, dict, "executor.submitit", "a mapping"):
            c.keys(sub, _SUBMITIT, "executor.submitit")
            if sub.get("cluster", "slurm") not in SUBMITIT_CLUSTERS:
                c.bad("executor.submitit.cluster", f"choose one of {', '.join(SUBMITIT_CLUSTERS)}")
        rc = ex.get("ray", {}) or {}
        if c.typed(rc, dict, "executor.ray", "a mapping"):
            c.keys(rc, _RAY, "executor.ray")
        if isinstance(sub, dict) and isinstance(rc, dict):
            check_executor_numbers(c.bad, sub, rc)
        execfg = ExecutorCfg(str(kind), int(mr) if isinstance(mr, int) else 2, int(wk) if isinstance(wk, int) else 0,
                             dict(sub) if isinstance(sub, dict) else {}, dict(rc) if isinstance(rc, dict) else {})

    from wmprobe.study.control import check_control
    control = check_control(c.bad, doc.get("control"), [d.name for d in datasets])
    if c.problems:
        return None, c.problems
    cfg = StudyConfig(
        name=name, preset=preset, seed=seed, datasets=tuple(datasets), encoders=tuple(encoders), zoo=zoo,
        split=split, test_frac=float(tf), corruptions=tuple(str(s) for s in corr),
        corrupt_datasets=tuple(cds) if cds is not None else None,
        corrupt_train=bool(doc.get("corrupt_train", False)),
        layers=tuple(str(x) for x in layers) if layers else None, probes=tuple(probes),
        ks=tuple(int(k) for k in doc.get("ks", [1])), seeds=tuple(int(s) for s in doc.get("seeds", [0, 1, 2])),
        probe=dict(probe_cfg), n_boot=int(doc.get("n_boot", 1000)), fidelity=bool(doc.get("fidelity", False)),
        fidelity_preset=str(doc.get("fidelity_preset", "demo")),
        fidelity_datasets=tuple(fds) if isinstance(fds, list) else None, shard_episodes=int(doc.get("shard_episodes", 16)),
        device=resolve_device(str(doc.get("device", "cpu"))), threads=int(doc.get("threads", 1)), executor=execfg,
        control=control,
        headline_groups=None if heads is None else ({str(d): tuple(v) for d, v in heads.items()}
                                                     if isinstance(heads, dict) else tuple(heads)))
    return cfg, []


def _check_groups(c: _Checker, d: dict, w: str, sim: Any, path: Any) -> dict[str, list[int]] | None:
    """A dataset's ``action_groups:`` (a mapping, ``GROUP=I,J`` items or ``none``), checked against the store's
    action dim when the store is readable (a simulator suite has 7 dims)."""
    if d.get("action_groups") is None:
        return None
    import json
    from wmprobe.data.formats.groups import parse_groups
    from wmprobe.errors import StoreError
    dim = 7 if sim is not None else None
    if path is not None:
        try:
            dim = len(json.loads((Path(path) / "meta.json").read_text())["action_names"])
        except (OSError, ValueError, KeyError, TypeError):
            dim = None
    try:
        return parse_groups(d["action_groups"], dim, where="action_groups")
    except StoreError as exc:
        c.bad(f"{w}.action_groups", str(exc).removeprefix("action_groups: "))
        return None


def _declared_groups(sim: Any, path: Any, groups: dict[str, list[int]] | None,
                     params: dict[str, Any] | None) -> list[str] | None:
    """The action groups a dataset will have (its ``action_groups:``, the store's meta.json, or the simulator
    suite's), None when not knowable here (an unreadable store: reported elsewhere)."""
    import json
    from wmprobe.probes.headline import declared
    if groups is not None:
        return declared(groups)
    if path is not None:
        try:
            return declared(json.loads((Path(path) / "meta.json").read_text())["action_groups"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
    if sim == "metaworld":
        from wmprobe.data.sim.metaworld import ACTION_GROUPS
        return declared(ACTION_GROUPS)
    from wmprobe.data.sim import SUITES, action_space
    if sim in SUITES:
        from wmprobe.data.sim.generate import DEFAULT_WRIST
        return declared(action_space(params.get("wrist") or DEFAULT_WRIST)[1]) if params is not None else None
    return None


def _sim_params(c: _Checker, w: str, sim: str, d: dict[str, Any], seed: Any) -> dict[str, Any] | None:
    """A simulator dataset's generation parameters checked as generation checks them (episodes, size, steps,
    camera, tasks, wrist); None when they are unusable (the problem is reported)."""
    from wmprobe.data.sim.generate import check_params
    kw = {k: d[k] for k in ("episodes", "size", "steps", "camera", "tasks", "wrist") if d.get(k) is not None}
    if any(not isinstance(kw.get(k, 1), int) or isinstance(kw.get(k), bool) for k in ("episodes", "size", "steps")):
        return None   # a type problem, reported above
    try:
        return check_params(sim, kw.pop("episodes", 48), seed=seed if isinstance(seed, int) else 0, **kw)
    except ConfigError as exc:
        key = "camera" if "camera" in str(exc) else "wrist" if "wrist" in str(exc) else \
            ("tasks" if "task" in str(exc) else None)
        if key != "tasks":   # task problems are reported above
            c.bad(f"{w}.{key}" if key else w, str(exc))
        return None


def _bare_checkpoint(c: _Checker, name: str, where: str) -> bool:
    """True when ``name`` is a bare hub id or checkpoint directory; when it is already on disk (a directory or
    the Hugging Face cache: nothing is downloaded to validate) its family must be detectable."""
    from wmprobe.encoders.detect import detect_family, looks_like_checkpoint
    from wmprobe.errors import EncoderError
    if not looks_like_checkpoint(name):
        return False
    try:
        detect_family(name, local_only=True)
    except EncoderError as exc:
        c.bad(where, str(exc))
    except ImportError:  # no huggingface_hub: the run will say what to install
        pass
    return True


def _check_corrupt_train(c: _Checker, value: Any, corruptions: Any, corrupt_datasets: Any) -> None:
    """``corrupt_train`` is a bool, and when true there is a corruption other than clean on some dataset."""
    if not c.typed(value, bool, "corrupt_train", "true or false") or not value:
        return
    if isinstance(corruptions, list) and all(str(s) == "clean" for s in corruptions):
        c.bad("corrupt_train", "is true but `corruptions` names only clean: there is nothing to fit the probe "
                               "on (add a corruption such as noise:0.15, or drop corrupt_train)")
    elif corrupt_datasets == []:
        c.bad("corrupt_train", "is true but `corrupt_datasets` is empty: no dataset is corrupted, so there is "
                               "nothing to fit the probe on")


def validate(src: str | os.PathLike | dict, overrides: Sequence[str] = ()) -> list[Problem]:
    """Every problem of a study config (empty when it is fine); `wmprobe validate` prints them."""
    return check(src, overrides)[1]


def load_config(src: str | os.PathLike | dict | StudyConfig, overrides: Sequence[str] = ()) -> StudyConfig:
    """A checked StudyConfig, or one ConfigError listing every problem."""
    if isinstance(src, StudyConfig):
        if overrides:
            return load_config(src.to_dict(), overrides)
        return src
    cfg, problems = check(src, overrides)
    if problems or cfg is None:
        listing = "\n  ".join(str(p) for p in problems)
        raise ConfigError(f"study config has {len(problems)} problem(s):\n  {listing}")
    return cfg


def dump_config(cfg: StudyConfig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    return path


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x
