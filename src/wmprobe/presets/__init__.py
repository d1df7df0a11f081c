"""Presets as data: one YAML file per preset shipped in this package (``tiny.yaml``, ``demo.yaml``...).

A preset file has these top-level keys:

- ``description``: one line (``wmprobe ls presets`` prints it beside the sizes);
- ``order``: its place in listings (smallest first);
- ``study``: a study config (docs/study.md keys): what ``preset: NAME`` fills into a study and what
  ``wmprobe demo --preset NAME`` runs (``zoo.families: all`` stands for every zoo family);
- ``zoo``: the zoo training preset of that name (``wmprobe zoo train --preset NAME``, a study's
  ``zoo.preset``): the fields of ``wmprobe.zoo.presets.Preset``;
- ``decoder`` (optional): the decoder probe preset of that name (a study's ``fidelity_preset``): the fields of
  ``wmprobe.fidelity.decoder.DecoderPreset``.

``names()`` lists the presets, ``read(name)`` gives one file's mapping and ``section(key, cls)`` builds
``{name: cls(**values)}`` for every preset that has that section. Adding a preset is adding one file here.
A file that breaks these rules is a ConfigError naming the file and the key.
"""
from __future__ import annotations

import dataclasses
import functools
from importlib import resources
from typing import Any, Callable, TypeVar

import yaml

from wmprobe.errors import ConfigError

T = TypeVar("T")
KEYS = {"description", "order", "study", "zoo", "decoder"}
REQUIRED = ("description", "order", "study", "zoo")


@functools.lru_cache(maxsize=None)
def _files() -> dict[str, Any]:
    """``{name: parsed file}`` of every ``*.yaml`` in this package, in ``order``."""
    found = {}
    for f in resources.files(__name__).iterdir():
        if f.name.endswith(".yaml"):
            name = f.name[:-len(".yaml")]
            try:
                doc = yaml.safe_load(f.read_text(encoding="utf-8"))
            except yaml.YAMLError as exc:
                raise ConfigError(f"preset file wmprobe/presets/{f.name}: not valid YAML: {exc}") from None
            found[name] = _check(name, doc)
    return dict(sorted(found.items(), key=lambda kv: (kv[1]["order"], kv[0])))


def _check(name: str, doc: Any) -> dict[str, Any]:
    where = f"preset file wmprobe/presets/{name}.yaml"
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(doc).__name__}")
    unknown = sorted(set(doc) - KEYS)
    missing = [k for k in REQUIRED if k not in doc]
    if unknown or missing:
        wrong = "; ".join(w for w in (f"unknown keys {unknown}" if unknown else "",
                                       f"missing keys {missing}" if missing else "") if w)
        raise ConfigError(f"{where}: {wrong} (keys: {sorted(KEYS)})")
    if not isinstance(doc["study"], dict) or doc["study"].get("preset") != name:
        raise ConfigError(f"{where}: `study` must be a study mapping with `preset: {name}`")
    return doc


def names() -> list[str]:
    """Every preset name, smallest first (``order``)."""
    return list(_files())


def read(name: str) -> dict[str, Any]:
    """The parsed file of preset ``name`` (a fresh copy); ConfigError listing the presets when unknown."""
    import copy
    files = _files()
    if name not in files:
        raise ConfigError(f"unknown preset '{name}': choose one of {sorted(files)}")
    return copy.deepcopy(files[name])


def section(key: str, cls: Callable[..., T]) -> dict[str, T]:
    """``{name: cls(**file[key])}`` for every preset whose file has section ``key``, in ``order``; the section
    must give exactly the dataclass ``cls``'s fields."""
    fields = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    out = {}
    for name, doc in _files().items():
        if key not in doc:
            continue
        values = doc[key]
        if not isinstance(values, dict) or set(values) != set(fields):
            got = sorted(values) if isinstance(values, dict) else type(values).__name__
            raise ConfigError(f"preset file wmprobe/presets/{name}.yaml: `{key}` must give exactly {fields}, "
                              f"got {got}")
        out[name] = cls(**values)
    return out
