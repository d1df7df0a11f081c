"""Study configs: one YAML names encoders, datasets, split, corruptions, layers, probes, k, seeds (docs/study.md).

``load_config(path_or_dict) -> StudyConfig`` resolves a preset (``tiny`` / ``demo`` / ``paper``, the same
sizes as ``wmprobe demo --preset``), overlays the file and the command-line overrides and checks every field;
``validate(path)`` returns every problem at once, each with its location (``study.yaml:12: encoders[2].name:
...``), instead of stopping at the first. A StudyConfig round-trips through ``to_dict()`` (it is saved with the
records).

This module loads and merges; the rest of the config lives beside it, one job each:
study/schema.py (the sections, their defaults and rules), study/fields.py (the rule vocabulary),
study/checker.py (the one generic checker), study/sections.py (datasets and encoders), study/crosschecks.py
(checks across keys), study/checks.py (devices, encoders, stores), study/yamlfile.py (the bounded reader),
study/overrides.py (``KEY=VALUE``).
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Sequence

import yaml

from wmprobe.errors import ConfigError
from wmprobe.study.checker import Checker, Problem, build, check_section
from wmprobe.study.checks import resolve_device
from wmprobe.study.crosschecks import cross_check
from wmprobe.study.schema import (MAX_SEED, SUBMITIT_CLUSTERS, DatasetCfg, EncoderCfg, ExecutorCfg, StudyConfig,
                                  ZooCfg, plain, zoo_families)
from wmprobe.study.sections import Facts, check_datasets, check_encoders


# ---- presets: the same sizes as `wmprobe demo --preset` ------------------------------------------
def preset_dict(name: str) -> dict[str, Any]:
    """The study config that ``preset: NAME`` stands for (``wmprobe/presets/NAME.yaml``, study/presets.py)."""
    from wmprobe.study.presets import study_preset
    return study_preset(name).study_dict()


# ---- loading -------------------------------------------------------------------------------------
def _read(src: str | os.PathLike[str] | dict[str, Any]) -> tuple[dict[str, Any], str | None, dict[str, int],
                                                                  Path | None]:
    if isinstance(src, dict):
        return copy.deepcopy(src), None, {}, None
    path = Path(src)
    if not path.exists():
        raise ConfigError(f"study config {path} does not exist")
    if not path.is_file():
        raise ConfigError(f"study config {path} is not a file")
    from wmprobe.study.yamlfile import read_yaml
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
    suite) follow the user's ``datasets`` when the user replaces them: they name the user's first dataset. Its
    ``test_tasks`` (tasks of the embedded suites) are kept only when every dataset of the user's is embedded;
    with the user's own stores the task split draws its held-out tasks with the seed unless the user names
    them."""
    base = dict(base)
    raw = user.get("datasets")
    if isinstance(raw, list) and raw:
        first = raw[0]
        if isinstance(first, dict):
            name = first.get("name") or first.get("sim") or (Path(str(first["path"])).name if first.get("path")
                                                             else None)
        else:
            from wmprobe.data.sim import SUITES
            name = first if first in SUITES else Path(str(first)).name
        for key in ("corrupt_datasets", "fidelity_datasets"):
            if key not in user:
                base[key] = [str(name)] if name else None
        if "test_tasks" not in user and not all(_is_embedded(d) for d in raw):
            base.pop("test_tasks", None)    # the preset's task names are its suites' tasks, not the user's data's
    return base


def _is_embedded(entry: Any) -> bool:
    """A ``datasets`` entry that the embedded simulator generates (a suite name or ``{sim: ...}`` without a
    ``path``)."""
    if isinstance(entry, dict):
        return "sim" in entry and not entry.get("path")
    from wmprobe.data.sim import SUITES
    return entry in SUITES


def check(src: str | os.PathLike[str] | dict[str, Any],
          overrides: Sequence[str] = ()) -> tuple[StudyConfig | None, list[Problem]]:
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
    c = Checker(file, lines)
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
    _shorthands(doc, file)
    facts = Facts()
    seed = doc.get("seed", StudyConfig.seed)
    check_section(c, doc, StudyConfig, "", hooks={
        "datasets": lambda raw: check_datasets(c, raw, seed, base_dir, facts),
        "encoders": lambda raw: check_encoders(c, raw, seed, facts)})
    control = cross_check(c, doc, facts)
    if c.problems:
        return None, c.problems
    heads = doc.get("headline_groups")
    cfg = build(StudyConfig, doc, preset=preset, datasets=tuple(facts.datasets), encoders=tuple(facts.encoders),
                layers=tuple(str(x) for x in doc["layers"]) if doc.get("layers") else None,
                device=resolve_device(str(doc.get("device", StudyConfig.device))), control=control,
                headline_groups=None if heads is None else ({str(d): tuple(v) for d, v in heads.items()}
                                                             if isinstance(heads, dict) else tuple(heads)))
    return cfg, []


def _shorthands(doc: dict[str, Any], file: str | None) -> None:
    """Spell out the shorthands in place: the name defaults to the file's stem, ``executor: KIND`` is
    ``executor: {kind: KIND}``, ``zoo.families: all`` is every pretraining family of the zoo registry."""
    doc.setdefault("name", Path(file).stem if file else StudyConfig.name)
    if isinstance(doc.get("executor"), str):
        doc["executor"] = {"kind": doc["executor"]}
    zoo = doc.get("zoo")
    if isinstance(zoo, dict) and zoo.get("families") == "all":
        doc["zoo"] = {**zoo, "families": zoo_families()}


def validate(src: str | os.PathLike[str] | dict[str, Any], overrides: Sequence[str] = ()) -> list[Problem]:
    """Every problem of a study config (empty when it is fine); `wmprobe validate` prints them."""
    return check(src, overrides)[1]


def load_config(src: str | os.PathLike[str] | dict[str, Any] | StudyConfig,
                overrides: Sequence[str] = ()) -> StudyConfig:
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


def dump_config(cfg: StudyConfig, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    return path



__all__ = ["MAX_SEED", "SUBMITIT_CLUSTERS", "DatasetCfg", "EncoderCfg", "ExecutorCfg", "Problem", "StudyConfig",
           "ZooCfg", "check", "dump_config", "load_config", "plain", "preset_dict", "validate"]
