"""The content-addressed cache: latent shards, probe-cell results, zoo checkpoints and generated datasets.

Root: ``--cache DIR`` > ``$WMPROBE_CACHE`` > ``~/.cache/wmprobe`` (``default_cache_dir``). Layout::

    ROOT/data/sim-SUITE-KEY/        generated EpisodeStores (wmprobe.data.sim.cached_generate)
    ROOT/zoo/FAMILY-...-KEY/        mini-zoo checkpoints (wmprobe.zoo.train)
    ROOT/latents/KEY/               one latent shard: StepFeatures arrays + features.json + entry.json
    ROOT/cells/KEY.json             the rows of one finished probe / fidelity cell
    ROOT/frames/KEY/                one episode's resized frames, shared by encoders (wmprobe.frames_cache)
    ROOT/locks/KEY.lock             file locks (one writer per key, across processes and hosts)

A latent shard's key hashes the encoder spec (its ``key()``: weights hash, preprocessing), the layers, the
dataset fingerprint, the shard's episodes, the corruption and the token options, so the same latents are never
computed twice and a changed input never reuses stale ones. Writes go to a temporary directory beside the
entry and are renamed into place atomically; ``entry.json`` (written last, inside the temporary directory)
carries a BLAKE2 checksum per file. A shard whose files do not match their checksums is dropped and
recomputed, never used. Reads are memory-mapped. Every use touches ``entry.json``'s ``used`` file so
``cache gc`` keeps what recent studies use.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from wmprobe._fs import mark_used
from wmprobe._hashing import json_hash
from wmprobe.errors import WmprobeError

CACHE_VERSION = 1
_CHUNK = 1 << 20
_VERIFIED: set = set()  # shards this process has checked, with the size and mtime of each file


class CacheError(WmprobeError):
    """The cache cannot be written (disk full, permissions) or an entry is unusable."""


def default_cache_dir(cache: str | os.PathLike | None = None) -> Path:
    """``cache`` > ``$WMPROBE_CACHE`` > ``~/.cache/wmprobe``."""
    root = cache or os.environ.get("WMPROBE_CACHE") or Path.home() / ".cache" / "wmprobe"
    return Path(root).expanduser()


def claim_cache(root: Path) -> None:
    """Make ``root`` a cache root, or refuse it: a missing or empty directory is created with the cache marker
    (``wmprobe._dest``); a cache (marker, or the layout of one written before markers) gets the marker if it
    lacks it; anything else raises ``DestinationError`` (exit 2) and is left untouched."""
    from wmprobe._dest import check_dest, claim
    check_dest(root, "cache", merge=True)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CacheError(f"cannot create the cache directory {root}: {exc.strerror}; point --cache or "
                         "WMPROBE_CACHE elsewhere") from None
    claim(root, "cache")


def content_key(obj: Any) -> str:
    """A stable 20-hex-digit hash of a JSON-able description."""
    return json_hash({"v": CACHE_VERSION, "obj": obj}, 20, default=str)


def file_checksum(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _disk_error(exc: OSError, what: str, where: Path) -> CacheError:
    from wmprobe.errors import disk_full
    if disk_full(exc):
        return CacheError(f"disk full while writing {what} to {where}: free space or point --cache / "
                          "WMPROBE_CACHE at a larger disk (the cache was left consistent; rerun to resume)")
    return CacheError(f"cannot write {what} to {where}: {exc}")


class Cache:
    """One cache root. Safe for concurrent use by several processes (file locks + atomic renames)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = default_cache_dir(root)
        claim_cache(self.root)

    # ---- paths -----------------------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def zoo_dir(self) -> Path:
        return self.root / "zoo"

    @property
    def frames_dir(self) -> Path:
        """Resized frames shared between encoders (``wmprobe.frames_cache``)."""
        return self.root / "frames"

    def latent_path(self, key: str) -> Path:
        return self.root / "latents" / key

    def cell_path(self, key: str) -> Path:
        return self.root / "cells" / f"{key}.json"

    @contextmanager
    def lock(self, key: str, timeout: float = -1) -> Iterator[None]:
        from filelock import FileLock
        d = self.root / "locks"
        d.mkdir(parents=True, exist_ok=True)
        with FileLock(str(d / f"{key}.lock"), timeout=timeout):
            yield

    # ---- latent shards ---------------------------------------------------------------------------
    def has_latents(self, key: str) -> bool:
        return (self.latent_path(key) / "entry.json").exists()

    def verify_latents(self, key: str) -> bool:
        """True when the shard is complete and every file matches its checksum (checked once per process
        while the files are unchanged)."""
        path = self.latent_path(key)
        try:
            stamp = (str(path), tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                                            for p in path.iterdir() if p.name != "used")))
            if stamp in _VERIFIED:
                return True
            entry = json.loads((path / "entry.json").read_text())
            files = entry["checksums"]
            ok = all(file_checksum(path / name) == digest for name, digest in files.items())
        except (OSError, ValueError, KeyError, TypeError):
            return False
        if ok:
            _VERIFIED.add(stamp)
        return ok

    def load_latents(self, key: str, verify: bool = True):
        """The StepFeatures of a shard (memory-mapped), or None when absent or corrupt (then it is removed)."""
        from wmprobe.extract import StepFeatures
        path = self.latent_path(key)
        if not (path / "entry.json").exists():
            return None
        if verify and not self.verify_latents(key):
            warnings.warn(f"latent shard {path} is corrupt (checksum mismatch or truncated): recomputing it",
                          stacklevel=2)
            self._drop(path)
            return None
        mark_used(path)
        return StepFeatures.load(path)

    def put_latents(self, key: str, feats: Any, info: dict[str, Any]) -> Path:
        """Write a shard atomically: temp dir -> arrays -> entry.json (checksums) -> rename."""
        dest = self.latent_path(key)

        def write(tmp: Path) -> None:
            feats.save(tmp)
            sums = {p.name: file_checksum(p) for p in sorted(tmp.iterdir())}
            (tmp / "entry.json").write_text(json.dumps({"key": key, "kind": "latents", "checksums": sums,
                                                        "created": time.time(), **info}, sort_keys=True,
                                                       default=str))
        self._atomic_dir(dest, write, f"latent shard {key}")
        return dest

    def latents(self, key: str, compute: Callable[[], Any], info: dict[str, Any]):
        """Return the cached shard for ``key``, computing and storing it under a lock when missing or bad."""
        feats = self.load_latents(key)
        if feats is not None:
            return feats, False
        with self.lock(key):
            feats = self.load_latents(key)  # another process may have written it while we waited
            if feats is not None:
                return feats, False
            self.put_latents(key, compute(), info)
        return self.load_latents(key, verify=False), True

    # ---- probe cells -----------------------------------------------------------------------------
    def load_cell(self, key: str) -> list[dict[str, Any]] | None:
        path = self.cell_path(key)
        try:
            doc = json.loads(path.read_text())
            rows = doc["rows"]
            if doc.get("checksum") != content_key(rows):
                raise ValueError("checksum mismatch")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            warnings.warn(f"cell result {path} is corrupt: recomputing it", stacklevel=2)
            path.unlink(missing_ok=True)
            return None
        os.utime(path)
        return rows

    def put_cell(self, key: str, rows: list[dict[str, Any]], info: dict[str, Any]) -> Path:
        path = self.cell_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps({"key": key, "kind": "cell", "rows": rows, "checksum": content_key(rows),
                                       **info}, sort_keys=True, default=str))
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise _disk_error(exc, f"cell {key}", path) from None
        return path

    # ---- helpers ---------------------------------------------------------------------------------
    def _atomic_dir(self, dest: Path, write: Callable[[Path], None], what: str) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".{dest.name}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir()
            write(tmp)
            if dest.exists():  # a corrupt leftover (a good one would have been returned before)
                self._drop(dest)
            os.rename(tmp, dest)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise _disk_error(exc, what, dest) from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    @staticmethod
    def _drop(path: Path) -> None:
        trash = path.parent / f".{path.name}.{os.getpid()}.trash"
        try:
            os.rename(path, trash)
        except OSError:
            return
        shutil.rmtree(trash, ignore_errors=True)



# ---- `wmprobe cache ls / gc` ---------------------------------------------------------------------
def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _last_used(path: Path) -> float:
    cands = [path / "used", path / "entry.json", path / "recipe.json", path / "meta.json", path]
    return max(p.stat().st_mtime for p in cands if p.exists())


def _entries(root: Path) -> Iterator[tuple[str, Path, dict[str, Any]]]:
    for kind, sub in (("data", "data"), ("zoo", "zoo"), ("latents", "latents"), ("cells", "cells"),
                      ("frames", "frames")):
        d = root / sub
        if not d.is_dir():
            continue
        for p in sorted(d.iterdir()):
            if p.name.startswith(".") or p.suffix == ".lock":
                continue
            info: dict[str, Any] = {}
            try:
                if kind in ("latents", "frames"):
                    info = json.loads((p / "entry.json").read_text())
                elif kind == "cells":
                    info = json.loads(p.read_text())
                elif kind == "zoo":
                    info = json.loads((p / "recipe.json").read_text())
                elif kind == "data":
                    info = {"dataset": p.name}
            except (OSError, ValueError):
                info = {"incomplete": True}
            yield kind, p, info


def cache_ls(root: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Size and entry count per (kind, encoder, dataset), largest first."""
    root = default_cache_dir(root)
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for kind, path, info in _entries(root):
        enc = str(info.get("encoder") or info.get("recipe", {}).get("family") or info.get("family") or "-")
        data = str(info.get("dataset") or "-")
        g = groups.setdefault((kind, enc, data), {"kind": kind, "encoder": enc, "dataset": data, "entries": 0,
                                                  "bytes": 0, "last_used": 0.0})
        g["entries"] += 1
        g["bytes"] += _size(path)
        g["last_used"] = max(g["last_used"], _last_used(path))
    out = sorted(groups.values(), key=lambda g: -g["bytes"])
    for g in out:
        g["size"] = f"{g['bytes'] / 2**20:.1f}MiB"
        g["last_used"] = time.strftime("%Y-%m-%d", time.localtime(g["last_used"]))
    return out


def cache_gc(root: str | os.PathLike | None = None, keep_days: float = 30.0) -> str:
    """Drop entries no study used in the last ``keep_days`` days, and stale temporaries; returns a summary.

    ``root`` must be a cache (the ``.wmprobe.json`` cache marker, or the layout of a cache written before
    markers existed): any other directory raises ``DestinationError`` and nothing is deleted. A negative or
    non-finite ``keep_days`` is a ConfigError."""
    import math
    from wmprobe._dest import DestinationError, claim, dir_kind, read_marker
    from wmprobe.errors import ConfigError
    try:
        keep_days = float(keep_days)
    except (TypeError, ValueError):
        raise ConfigError(f"keep_days must be a number of days >= 0, got {keep_days!r}") from None
    if not math.isfinite(keep_days) or keep_days < 0:
        raise ConfigError(f"--keep-days must be a number of days >= 0, got {keep_days:g}")
    root = default_cache_dir(root)
    if not root.exists():
        return "0 entries, 0.0 MiB (no cache at this path yet)"
    if not root.is_dir():
        raise DestinationError(f"{root} is a file, not a wmprobe cache; refusing to delete it")
    kind = dir_kind(root)
    if kind != "cache":
        why = "it has no .wmprobe.json cache marker and is not laid out as a cache" if kind is None else \
            f"its .wmprobe.json marker says '{kind}'" if read_marker(root) else f"it looks like a {kind} directory"
        raise DestinationError(f"{root} is not a wmprobe cache ({why}); refusing to delete anything in it")
    claim(root, "cache")
    cutoff = time.time() - keep_days * 86400
    n, freed = 0, 0
    for kind, path, _ in list(_entries(root)):
        if _last_used(path) < cutoff:
            freed += _size(path)
            n += 1
            if path.is_dir():
                Cache._drop(path)
            else:
                path.unlink(missing_ok=True)
    for sub in ("latents", "cells", "data", "zoo", "frames"):  # temporaries of killed writers older than a day
        d = root / sub
        for p in d.glob(".*") if d.is_dir() else ():
            if p.stat().st_mtime < time.time() - 86400:
                freed += _size(p)
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    return f"{n} entries, {freed / 2**20:.1f} MiB"
