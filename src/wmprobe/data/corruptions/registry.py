"""The corruption types: one ``CorruptionType`` per name, registered by the module that defines its op.

A family module (noise.py, blur.py, weather.py, digital.py) declares each of its types with ``@corruption(...)``
on the op; ``wmprobe.data.corruptions`` imports every family module, so adding a type touches its family file
only (plus its test). ``TYPES`` is a ``wmprobe.registry.Registry``: a plugin adds a type with an entry point in
the group ``wmprobe.corruptions`` naming a ``CorruptionType`` (``"module:attr"``).

An op is ``op(x, param, rng) -> y`` on ``x: (M, 3, H, W)`` float32 in [0, 1] (one chunk of one clip, ``rng`` a
``ClipRng``) returning the same shape (clipped and rounded by the caller); a type whose pixels are computed on
8-bit values directly also gives ``u8(frames (n, H, W, 3) uint8, param) -> same`` with exactly the values of
its float op (the clip loop prefers it); a ``u8`` that also takes ``out=`` (a contiguous ``(n, H, W, 3)`` uint8
tensor) is called with it and writes its result there instead of returning a new tensor.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Optional

import torch

from wmprobe.errors import ConfigError
from wmprobe.registry import Registry, instance_of

SEVERITY_DEFAULT = 3

#: how a type's parameter is read: none (clean), a sigma > 0 (float), an odd kernel size, an ImageNet-C severity
ParamKind = Literal["none", "sigma", "kernel", "severity"]
_KIND_ORDER = {"none": 0, "sigma": 1, "kernel": 1, "severity": 2}

Op = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class CorruptionType:
    """One corruption name: its description (``wmprobe ls corruptions``), op, parameter and pixel version.

    ``version`` is bumped when the type's pixels change, so latent-cache keys never reuse stale shards.
    """

    name: str
    description: str
    op: Optional[Op] = None
    u8: Optional[Callable[..., torch.Tensor]] = None     # (frames, param[, out=]) -> frames
    param: ParamKind = "severity"
    default: float | int | None = SEVERITY_DEFAULT
    version: int = 1


TYPES: Registry[CorruptionType] = Registry("corruption", group="wmprobe.corruptions", error=ConfigError,
                                           check=instance_of(CorruptionType, "corruption", ConfigError))
TYPES.add("clean", CorruptionType("clean", "no corruption (identity)", param="none", default=None))
_found: dict[str, CorruptionType] = {}   # resolved types by name (a lookup per spec, without re-listing plugins)


def corruption(name: str, description: str, *, param: ParamKind = "severity",
               default: float | int | None = SEVERITY_DEFAULT, version: int = 1,
               u8: Optional[Callable[..., torch.Tensor]] = None) -> Callable[[Op], Op]:
    """Decorator registering ``op`` as corruption ``name`` (a name is registered once)."""
    def deco(op: Op) -> Op:
        TYPES.add(name, CorruptionType(name, description, op, u8, param, default, version))
        _found.pop(name, None)
        return op
    return deco


def types() -> dict[str, CorruptionType]:
    """Every registered type: clean, then the paper's noise and blur, then the ImageNet-C types in the order
    their family modules register them (the order of ``wmprobe ls corruptions`` and ``list_specs``), then
    plugins."""
    found = {name: TYPES.get(name) for name in TYPES.names()}
    return dict(sorted(found.items(), key=lambda kv: _KIND_ORDER[kv[1].param]))


def lookup(name: str) -> CorruptionType | None:
    """The type named ``name`` or None (resolved once per name)."""
    if name not in _found:
        if name not in TYPES:
            return None
        _found[name] = TYPES.get(name)
    return _found[name]
