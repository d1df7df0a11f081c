"""Write destinations: never delete or write into what wmprobe did not write (docs/reliability.md, "Destinations").

Every directory wmprobe writes carries a small marker, ``.wmprobe.json`` (``{"kind": KIND, "version": 1}``):

    store       an EpisodeStore (`data gen`, `data import`, cached simulator data and pretraining pools)
    lerobot     a LeRobot v3.0 dataset written by `data export`
    features    a features directory written by `wmprobe extract --out`
    zoo         a mini-zoo checkpoint (CACHE/zoo/...)
    results     a results directory (records, config.yaml, report)
    cache       a cache root (--cache, $WMPROBE_CACHE, ~/.cache/wmprobe)

Directories written before the markers existed are recognised by their layout (``legacy_kind``), so data
users already have keeps working; the marker is added the next time wmprobe writes there.

``check_dest(dest, kind)`` is called before any work: a missing or EMPTY directory is fine; a directory of
another kind, or without a marker and a recognisable layout, is refused (``DestinationError``, exit 2) and left
untouched; a directory of the right kind is replaced (after the new content is complete: ``replacing_dir``)
only if every top-level entry in it is one wmprobe writes, else the entries it would lose are named. Kinds
that are merged into rather than replaced (``results``, ``cache``) pass ``merge=True``: nothing is deleted.
"""
from __future__ import annotations

import contextlib
import fnmatch
import json
import os
from pathlib import Path
from typing import Any, Iterator

from wmprobe.errors import StoreError

MARKER = ".wmprobe.json"
MARKER_VERSION = 1
DESCRIBE = {
    "store": "an EpisodeStore",
    "lerobot": "a LeRobot dataset written by `wmprobe data export`",
    "features": "a features directory written by `wmprobe extract`",
    "zoo": "a zoo checkpoint",
    "results": "a wmprobe results directory",
    "cache": "a wmprobe cache",
}
# top-level names wmprobe writes in a directory of each kind (fnmatch patterns); anything else is the user's
OWNED = {
    "store": ("*.npy", "meta.json", "checksums.json", "used", MARKER),
    "lerobot": ("meta", "data", "videos", MARKER),
    "features": ("*.npy", "features.json", MARKER),
    "zoo": ("model.safetensors", "recipe.json", "*.json", "used", MARKER),
    "results": (),
    "cache": (),
}
CACHE_DIRS = ("data", "zoo", "latents", "cells", "locks", "submitit", "frames")


class DestinationError(StoreError):
    """A write destination is not wmprobe's to write (or replace); nothing was changed."""


def read_marker(path: str | os.PathLike) -> dict[str, Any] | None:
    """The marker of directory ``path`` as a dict, or None when it has none (or an unreadable one)."""
    try:
        doc = json.loads((Path(path) / MARKER).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("kind"), str) else None


def write_marker(path: str | os.PathLike, kind: str) -> None:
    """Write ``path/.wmprobe.json`` for ``kind`` (``path`` exists), atomically (processes may race)."""
    from wmprobe import __version__
    tmp = Path(path) / f"{MARKER}.{os.getpid()}.tmp"
    try:
        tmp.write_text(json.dumps({"kind": kind, "version": MARKER_VERSION, "wmprobe": __version__}) + "\n")
        os.replace(tmp, Path(path) / MARKER)
    finally:
        tmp.unlink(missing_ok=True)


def claim(path: str | os.PathLike, kind: str) -> None:
    """Add the marker to a directory recognised as ``kind`` that lacks it (best effort: a read-only directory
    stays usable)."""
    m = read_marker(path)
    if m is None or m.get("kind") != kind:
        with contextlib.suppress(OSError):
            write_marker(path, kind)


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def legacy_kind(path: str | os.PathLike) -> str | None:
    """The kind of a directory written by a wmprobe without markers, from its layout (None: not recognised).

    store: ``meta.json`` with ``"format": "wmprobe-episodes"``; lerobot: ``meta/info.json`` with the
    ``"wmprobe"`` key the exporter writes; features: ``features.json`` with ``layers`` and ``spec``; zoo:
    ``recipe.json`` + ``model.safetensors``; results: ``records.parquet`` or ``records.csv``; cache: only
    the cache's own subdirectories (data, zoo, latents, cells, locks, submitit) and at least one of them."""
    p = Path(path)
    meta = _json(p / "meta.json")
    if isinstance(meta, dict) and meta.get("format") == "wmprobe-episodes":
        return "store"
    info = _json(p / "meta" / "info.json")
    if isinstance(info, dict) and "wmprobe" in info and "codebase_version" in info:
        return "lerobot"
    feats = _json(p / "features.json")
    if isinstance(feats, dict) and "layers" in feats and "spec" in feats:
        return "features"
    if (p / "recipe.json").is_file() and (p / "model.safetensors").is_file():
        return "zoo"
    if (p / "records.parquet").is_file() or (p / "records.csv").is_file():
        return "results"
    names = [e.name for e in p.iterdir() if not e.name.startswith(".")] if p.is_dir() else []
    if names and all(n in CACHE_DIRS and (p / n).is_dir() for n in names):
        return "cache"
    return None


def dir_kind(path: str | os.PathLike) -> str | None:
    """The marker's kind, else ``legacy_kind``."""
    m = read_marker(path)
    return m["kind"] if m is not None else legacy_kind(path)


def foreign_entries(path: str | os.PathLike, kind: str) -> list[str]:
    """Top-level entries of ``path`` that wmprobe does not write in a directory of ``kind`` (sorted)."""
    pats = OWNED.get(kind, ())
    return sorted(e.name for e in Path(path).iterdir()
                  if not any(fnmatch.fnmatchcase(e.name, pat) for pat in pats))


def check_dest(dest: str | os.PathLike, kind: str, *, merge: bool = False) -> Path:
    """Raise ``DestinationError`` unless wmprobe may write ``kind`` to ``dest`` (see the module doc); with
    ``merge`` the directory is written into, never replaced. Returns ``dest`` as a Path."""
    dest = Path(dest)
    what = DESCRIBE[kind]
    if not dest.exists():
        if dest.is_symlink():
            raise DestinationError(f"destination {dest} is a broken symbolic link; remove it or choose another "
                                   "directory")
        return dest
    if not dest.is_dir():
        raise DestinationError(f"destination {dest} exists and is a file, not a directory; refusing to "
                               "overwrite it (nothing was changed): choose a new or empty directory")
    try:
        empty = all(e.name.startswith(MARKER) for e in dest.iterdir())  # a marker being written: still empty
    except OSError as exc:
        raise DestinationError(f"destination {dest} cannot be read ({exc.strerror}); choose another "
                               "directory") from None
    if empty:
        return dest
    found = dir_kind(dest)
    if found != kind:
        why = (f"it is {DESCRIBE[found]}" if found in DESCRIBE else
               f"it has no {MARKER} marker and is not laid out as one, so wmprobe did not write it")
        raise DestinationError(f"destination {dest} exists and is not {what}: {why}; refusing to write into it "
                               "(nothing was changed): choose a new or empty directory")
    if not merge:
        extra = foreign_entries(dest, kind)
        if extra:
            shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
            raise DestinationError(f"destination {dest} is {what} but also holds entries wmprobe did not write "
                                   f"({shown}); replacing it would delete them (nothing was changed): move them "
                                   "away or choose another directory")
    return dest


def real_dest(dest: str | os.PathLike) -> Path:
    """``dest``, or where it points when it is a symbolic link to a directory: a store at ``data/dyn ->
    /scratch/dyn`` is replaced at /scratch/dyn (on that disk) and the link keeps working."""
    dest = Path(dest)
    return dest.resolve() if dest.is_symlink() and dest.is_dir() else dest


@contextlib.contextmanager
def replacing_dir(dest: str | os.PathLike, kind: str, prefix: str | None = None) -> Iterator[Path]:
    """``check_dest(dest, kind)``, then yield an empty temp directory beside ``dest``; when the block completes
    the marker is added and the temp directory replaces ``dest`` (``wmprobe._fs.swap_dir``); on any error it is
    deleted and ``dest`` is left as it was."""
    from wmprobe._fs import atomic_dir
    dest = real_dest(check_dest(dest, kind))
    with atomic_dir(dest, prefix=prefix or f".{dest.name}.tmp-") as tmp:
        yield tmp
        write_marker(tmp, kind)
