"""What every task of a worker process shares: the per-process memo of encoders and stores, the cached latent
shards, the per-cell lock, and JSON-able rows. ``study.tasks`` (the task runners) and ``study.control`` (the
closed-loop task) both build on it.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from wmprobe.study.cache import Cache

_ENCODERS: "OrderedDict[tuple, Any]" = OrderedDict()  # per-process memo, bounded (models can be large)
_STORES: dict[str, Any] = {}
_MAX_ENCODERS = 2


def load_encoder_ref(ref: Any, device: str = "cpu") -> Any:
    """The encoder of a plan's ``EncoderRef`` (memoised per process; EncoderError when its spec key changed)."""
    from wmprobe.encoders.registry import load_encoder
    from wmprobe.errors import EncoderError
    memo = (ref.name, ref.options, device)
    if memo in _ENCODERS:
        _ENCODERS.move_to_end(memo)
        return _ENCODERS[memo]
    enc = load_encoder(ref.name, device=device, **dict(ref.options))
    if enc.spec.key() != ref.key:
        raise EncoderError(f"encoder {ref.label} ({ref.name}) changed since the study was planned: spec key "
                           f"{enc.spec.key()} != {ref.key} (weights or preprocessing differ); re-run the study")
    _ENCODERS[memo] = enc
    while len(_ENCODERS) > _MAX_ENCODERS:
        _ENCODERS.popitem(last=False)
    return enc


def load_store(path: str) -> Any:
    """The ``EpisodeStore`` at ``path`` (memoised per process)."""
    from wmprobe.data.store import EpisodeStore
    if path not in _STORES:
        _STORES[path] = EpisodeStore.load(path, allow_symlinks_out=True)  # the driver checked its links
    return _STORES[path]


def shards(cache: Cache, keys: tuple[str, ...], tokens: bool = True) -> Any:
    """The shards' features concatenated in memory; ``tokens=False`` leaves the patch tokens (kept for the
    decoder probe or attentive probes) on disk, so a pooled-feature probe's memory is only the pooled rows."""
    from wmprobe.errors import StoreError
    from wmprobe.extract import StepFeatures
    parts = []
    for k in keys:
        f = cache.load_latents(k)
        if f is None:
            raise StoreError(f"latent shard {k} is missing from the cache {cache.root} (deleted or corrupt "
                             "after extraction); re-run the study to recompute it")
        parts.append(f if tokens else StepFeatures(f.pooled, f.step_frame, f.step_episode, {}, f.spec))
    return StepFeatures.concat(parts)


def locked_cell(cache: Cache, key: str, compute: Any) -> list[dict[str, Any]]:
    """The cell's cached rows, else ``compute()`` (which stores them) under the cell's file lock: of two
    processes (or hosts) sharing a cache, the second waits for the first and reuses its rows."""
    rows = cache.load_cell(key)
    if rows is not None:
        return rows
    with cache.lock(f"cell-{key}"):
        rows = cache.load_cell(key)   # written by another process while we waited
        return rows if rows is not None else compute()


def cell_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A computed cell's rows as the cache returns them: stamped with where and with what code they were
    measured (``records.stamp``), numpy values as Python ones, through JSON (so a fresh and a cached cell
    give equal rows)."""
    import json

    from wmprobe.records import stamp
    out: list[dict[str, Any]] = json.loads(json.dumps([jsonable(r) for r in stamp(rows)], default=str))
    return out


def jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in row.items():
        if isinstance(v, np.generic):
            v = v.item()
        elif isinstance(v, np.ndarray):
            v = v.tolist()
        out[k] = v
    return out
