"""The two sections a rule cannot check alone: ``datasets`` and ``encoders`` (shorthands, files on disk).

``check_datasets`` and ``check_encoders`` run the generic checker on each entry (study/checker.py: unknown
keys, the rules of ``DatasetCfg`` / ``EncoderCfg``) and then what depends on the entry as a whole: exactly one
of ``sim:`` / ``path:``, the store on disk, the simulator's parameters as generation checks them, the action
groups, an encoder's name in the registry and its options and layers. What they learn (episode lengths,
action groups, stores) goes into ``Facts`` for the cross-field checks (study/crosschecks.py).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from wmprobe.errors import ConfigError
from wmprobe.study.checker import Checker, build, check_section, check_unique
from wmprobe.study.checks import check_encoder, check_encoder_arg, episode_length
from wmprobe.study.schema import DatasetCfg, EncoderCfg


@dataclass
class Facts:
    """What the datasets and encoders sections found, for the cross-field checks and the config."""

    datasets: list[DatasetCfg] = field(default_factory=list)
    encoders: list[EncoderCfg] = field(default_factory=list)
    lengths: dict[str, int | None] = field(default_factory=dict)       # longest episode, where knowable
    groups_of: dict[str, list[str] | None] = field(default_factory=dict)   # action groups, where knowable
    stores: dict[str, tuple[str, str, bool] | None] = field(default_factory=dict)   # datasets[i] -> store


def _entries(c: Checker, raw: list[Any], key: str, section: type, spell: Callable[[str], dict[str, Any]],
             what: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, mapping)`` of each entry of the list ``key`` that is a mapping once its string shorthand is
    spelt out (``spell``) and passed ``section``'s generic checks; an entry of another type is reported."""
    for i, entry in enumerate(raw):
        where = f"{key}[{i}]"
        if isinstance(entry, str):
            entry = spell(entry)
        if not c.typed(entry, dict, where, what):
            continue
        check_section(c, entry, section, where)
        yield where, entry


def check_datasets(c: Checker, raw: Any, seed: Any, base_dir: Path | None, facts: Facts) -> None:
    """The ``datasets:`` list; a string is a suite name or a store path."""
    from wmprobe.data.sim import SUITES
    raw = raw or []
    if not raw:
        c.bad("datasets", "name at least one dataset (a simulator suite `sim: dynamic` or `path: STORE`)")
    if not c.typed(raw, list, "datasets", "a list"):
        return
    seen: set[str] = set()
    for w, d in _entries(c, raw, "datasets", DatasetCfg,
                         lambda s: {"name": s, "sim": s} if s in SUITES else {"name": Path(s).name, "path": s},
                         "a mapping or a suite name / store path"):
        sim, path = d.get("sim"), d.get("path")
        if (sim is None) == (path is None):
            c.bad(w, "give exactly one of `sim: SUITE` or `path: STORE`")
        if path is not None:
            p = Path(path).expanduser()
            if not p.is_absolute() and base_dir is not None:
                p = base_dir / p
            if not (p / "meta.json").exists():
                c.bad(f"{w}.path", f"{p} is not an EpisodeStore (no meta.json); convert a LeRobot/CALVIN/"
                                   "LIBERO dataset with `wmprobe data import SRC DEST`")
            path = str(p)
        tasks = d.get("tasks")
        if tasks is not None:
            if isinstance(tasks, list):
                tasks = tuple(str(t) for t in tasks)
            if sim is None:
                c.bad(f"{w}.tasks", "only simulator suites (`sim:`) choose tasks; a store has its own")
            elif sim in SUITES:
                from wmprobe.data.sim.generate import check_params
                try:
                    check_params(sim, 1, tasks=tasks)
                except ConfigError as exc:
                    c.bad(f"{w}.tasks", str(exc))
        if sim is None and d.get("wrist") is not None:
            c.bad(f"{w}.wrist", "only simulator suites (`sim:`) choose a wrist mode; a store has its actions")
        groups = _check_groups(c, d, w, sim, path)
        links_ok = d.get("allow_symlinks_out") is True
        escapes: list[str] = []
        if path is not None and (Path(path) / "meta.json").exists() and not links_ok:
            from wmprobe.data.store import links_out
            escapes = links_out(Path(path))   # what loading the store would refuse (and nothing is read)
            for problem in escapes[:1]:
                c.bad(f"{w}.path", problem)
        params = _sim_params(c, w, sim, d, seed) if sim in SUITES else None
        dname = str(d.get("name") or sim or Path(str(path)).name)
        if not escapes:
            facts.lengths[dname] = episode_length(sim, path, params)
        facts.stores[w] = (dname, str(path), links_ok) if sim is None and path and not escapes else None
        facts.groups_of[dname] = _declared_groups(sim, path, groups, params)
        if dname in seen:
            c.bad(f"{w}.name", f"duplicate dataset name '{dname}'")
        seen.add(dname)
        facts.datasets.append(build(DatasetCfg, d, name=dname, sim=sim, path=path, action_groups=groups,
                                    tasks=tasks))


def _check_groups(c: Checker, d: dict[str, Any], w: str, sim: Any, path: Any) -> dict[str, list[int]] | None:
    """A dataset's ``action_groups:`` (a mapping, ``GROUP=I,J`` items or ``none``), checked against the store's
    action dim when the store is readable (a simulator suite has 7 dims)."""
    if d.get("action_groups") is None:
        return None
    from wmprobe.data.formats.groups import parse_groups
    from wmprobe.errors import StoreError
    dim = 7 if sim is not None else None
    if path is not None:
        try:
            dim = len(json.loads((Path(path) / "meta.json").read_text())["action_names"])
        except (OSError, ValueError, KeyError, TypeError):
            dim = None
    try:
        groups: dict[str, list[int]] = parse_groups(d["action_groups"], dim, where="action_groups")
        return groups
    except StoreError as exc:
        c.bad(f"{w}.action_groups", str(exc).removeprefix("action_groups: "))
        return None


def _declared_groups(sim: Any, path: Any, groups: dict[str, list[int]] | None,
                     params: dict[str, Any] | None) -> list[str] | None:
    """The action groups a dataset will have (its ``action_groups:``, the store's meta.json, or the simulator
    suite's), None when not knowable here (an unreadable store: reported elsewhere)."""
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


def _sim_params(c: Checker, w: str, sim: str, d: dict[str, Any], seed: Any) -> dict[str, Any] | None:
    """A simulator dataset's generation parameters checked as generation checks them (episodes, size, steps,
    camera, tasks, wrist); None when they are unusable (the problem is reported)."""
    from wmprobe.data.sim.generate import check_params
    kw = {k: d[k] for k in ("episodes", "size", "steps", "camera", "tasks", "wrist") if d.get(k) is not None}
    if any(not isinstance(kw.get(k, 1), int) or isinstance(kw.get(k), bool) for k in ("episodes", "size", "steps")):
        return None   # a type problem, reported above
    try:
        params: dict[str, Any] = check_params(sim, kw.pop("episodes", DatasetCfg.episodes),
                                              seed=seed if isinstance(seed, int) else 0, **kw)
        return params
    except ConfigError as exc:
        key = "camera" if "camera" in str(exc) else "wrist" if "wrist" in str(exc) else \
            ("tasks" if "task" in str(exc) else None)
        if key != "tasks":   # task problems are reported above
            c.bad(f"{w}.{key}" if key else w, str(exc))
        return None


def check_encoders(c: Checker, raw: Any, seed: Any, facts: Facts) -> None:
    """The ``encoders:`` list; a string is a registry name (``pixels:8``), a hub id or a checkpoint directory.
    ``{seed}`` in a name is the study seed."""
    from wmprobe.encoders.registry import list_encoders, split_name
    known = list_encoders()
    raw = raw or []
    if not c.typed(raw, list, "encoders", "a list"):
        return
    labels: set[str] = set()
    for w, e in _entries(c, raw, "encoders", EncoderCfg, lambda s: {"name": s},
                         "a registry name or a mapping with `name`"):
        ename = e.get("name")
        if not isinstance(ename, str) or not ename:
            c.bad(f"{w}.name", "missing encoder name")
            continue
        ename = ename.replace("{seed}", str(seed))
        base, arg = split_name(ename)
        if ":" not in ename and _bare_checkpoint(c, ename, f"{w}.name"):
            pass  # a hub id or checkpoint directory: its family comes from its config.json
        elif base not in known and not ("." in base and arg):
            import difflib
            close = difflib.get_close_matches(base, list(known), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            c.bad(f"{w}.name", f"unknown encoder '{ename}'{hint} (`wmprobe ls encoders`)")
        opts = e.get("options") or {}
        layers = e.get("layers")
        if isinstance(layers, list):
            layers = tuple(str(x) for x in layers)
        if isinstance(opts, dict) and (layers is None or isinstance(layers, tuple)):
            check_encoder(c.bad, w, ename, opts, layers)
            check_encoder_arg(c.bad, w, ename, opts)
        if not isinstance(e.get("id_weight", 0.0), (int, float)):
            continue
        label = e.get("label") or ename
        if label in labels:
            c.bad(w, f"encoder '{label}' listed twice: give one of them a `label`")
        labels.add(label)
        facts.encoders.append(build(EncoderCfg, e, name=ename, options=dict(opts) if isinstance(opts, dict) else {},
                                    layers=layers))


def _bare_checkpoint(c: Checker, name: str, where: str) -> bool:
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


__all__ = ["Facts", "check_datasets", "check_encoders", "check_unique"]
