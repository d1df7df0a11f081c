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

``PRESETS`` is their registry (``wmprobe.registry.Registry``, like encoders, probes and corruptions): its
built-in entries are this package's files, found, read and checked on first use, in ``order``; an entry's
target is the file's mapping, its ``meta`` the ``description``, ``order`` and ``file``. ``names()`` lists the
presets, ``read(name)`` gives a copy of one file's mapping and ``section(key, cls)`` builds
``{name: cls(**values)}`` for every preset that has that section. Adding a preset is adding one file here.
A file that breaks these rules is a ConfigError naming the file and the key.
"""
from __future__ import annotations

import copy
import dataclasses
from importlib import resources
from typing import Any, Callable, Iterator, TypeVar

import yaml

from wmprobe.errors import ConfigError
from wmprobe.registry import Registry

T = TypeVar("T")
KEYS = {"description", "order", "study", "zoo", "decoder"}
REQUIRED = ("description", "order", "study", "zoo")


def _read_files() -> Iterator[tuple[str, Any]]:
    """``(name, parsed YAML)`` of every ``*.yaml`` in this package."""
    for f in resources.files(__name__).iterdir():
        if f.name.endswith(".yaml"):
            try:
                doc = yaml.safe_load(f.read_text(encoding="utf-8"))
            except yaml.YAMLError as exc:
                raise ConfigError(f"preset file wmprobe/presets/{f.name}: not valid YAML: {exc}") from None
            yield f.name[:-len(".yaml")], doc


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


def _found(registry: Registry[dict[str, Any]]) -> None:
    """Add every preset file of this package, checked, smallest first (``order``, then name)."""
    docs = [(name, _check(name, doc)) for name, doc in _read_files()]
    for name, doc in sorted(docs, key=lambda kv: (kv[1]["order"], kv[0])):
        registry.add(name, doc, description=str(doc["description"]), order=doc["order"],
                     file=f"wmprobe/presets/{name}.yaml")


#: preset name -> its file's mapping (read on first use: ``_found``)
PRESETS: Registry[dict[str, Any]] = Registry("preset", error=ConfigError, discover=_found)


def names() -> list[str]:
    """Every preset name, smallest first (``order``)."""
    return PRESETS.names()


def read(name: str) -> dict[str, Any]:
    """The parsed file of preset ``name`` (a fresh copy); ConfigError listing the presets when unknown."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}': choose one of {sorted(PRESETS.names())}")
    return copy.deepcopy(PRESETS.get(name))


def section(key: str, cls: Callable[..., T]) -> dict[str, T]:
    """``{name: cls(**file[key])}`` for every preset whose file has section ``key``, in ``order``; the section
    must give exactly the dataclass ``cls``'s fields."""
    fields = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    out = {}
    for name in PRESETS.names():
        doc = PRESETS.get(name)
        if key not in doc:
            continue
        values = doc[key]
        if not isinstance(values, dict) or set(values) != set(fields):
            got = sorted(values) if isinstance(values, dict) else type(values).__name__
            raise ConfigError(f"preset file wmprobe/presets/{name}.yaml: `{key}` must give exactly {fields}, "
                              f"got {got}")
        out[name] = cls(**values)
    return out
