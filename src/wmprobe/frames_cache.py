"""Content-addressed cache of resized frames, shared by every encoder with the same resize.

Extraction's per-frame work besides the model is reading the store, corrupting and resizing; for a small
model the resize costs as much as the forward pass. ``FramesCache`` keeps the output of
``Encoder.resize_frames`` for one episode, ``(T, 3, h, w)`` (uint8 where the adapter resizes in uint8, float32
in [0, 1] otherwise), under a key of everything it depends on:

    store fingerprint, episode, corruption (canonical spec, version, seed), and the encoder's ``resize_key()``:
    the resize implementation, input size, interpolation, short-side rule and device type.

Normalisation (mean / std) is applied on read (one fused multiply-add; extraction runs it once per episode into
a float32 buffer reused across episodes, see ``extract._EpisodeNormaliser``), so encoders that share an input
size and interpolation but not a normalisation (V-JEPA 2 and VideoMAE at 224, DINOv2 and SigLIP at 224 with a
bicubic resize) share the entry too; the latents are bit-identical to extraction without the cache.

Layout: ``ROOT/KEY/frames.npy`` (or ``frames_nhwc.npy``: the frames as ``(T, h, w, 3)`` where the resize gave
channels-last strides, kept so the model sees the same layout) + ``entry.json`` (what the key hashes, for
``wmprobe cache ls``, and the frames file's BLAKE2b checksum, size and mtime), written atomically (temp dir +
rename), ``used`` touched on every hit (``wmprobe cache gc`` keeps used entries). A hit checks the file's size
and mtime against the record and re-hashes it only when they changed (the store's rule): hashing every read
cost a tiny model ~10% of its forward pass; the parsed ``entry.json`` is kept in the process while its inode,
size and mtime stay the same (a hit then costs a ``stat`` of it, not a read and parse). A missing, partial,
edited or unreadable entry is recomputed and rewritten; a read-only cache is used as far as it goes.
Frames that need no resize (store frames already at the input size) are not cached: reading the store is as
cheap as reading the cache. An encoder that replaces ``Encoder.encode`` (on its class or the instance) is not
cached either: extraction must call its own ``encode``.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from wmprobe._fs import atomic_dir, mark_used
from wmprobe.data.store import file_digest

FORMAT = 1
_SLOT = "\x00episode\x00"
_NP_DTYPES = {"torch.uint8": np.uint8, "torch.float32": np.float32}


class FramesCache:
    """Resized frames of ``store``'s episodes for ``encoder`` under ``root`` (see the module doc)."""

    def __init__(self, root: str | os.PathLike, encoder: Any, store: Any, corruption: Any = None,
                 corruption_seed: int = 0) -> None:
        self.root = Path(root)
        self.encoder = encoder
        key = encoder.resize_key()
        frame_hw = tuple(store.frames.shape[1:3])
        needs_resize = key is not None and (frame_hw != tuple(encoder.spec.input_size)
                                            or key.get("resize_short") is not None)
        # only where extraction's ``encode_resized`` computes what ``encode`` would: an encoder (a plugin) that
        # replaces ``encode`` itself must be called through it, or its own code would be skipped
        from wmprobe.encoders.base import Encoder
        own_encode = "encode" in vars(encoder) or getattr(type(encoder), "encode", None) is not Encoder.encode
        self.enabled = bool(needs_resize) and not own_encode
        self.base = {"format": FORMAT, "store": store.fingerprint, "frame_size": list(frame_hw), "resize": key,
                     "corruption": getattr(corruption, "spec", "clean"),
                     "corruption_version": getattr(corruption, "version", 0),
                     "corruption_seed": int(corruption_seed) if corruption is not None else 0}

        # the key's JSON around the episode number, serialised once (a JSON int is ``str(int)``)
        parts = json.dumps({**self.base, "episode": _SLOT}, sort_keys=True, default=str).split(json.dumps(_SLOT))
        self._key_parts = tuple(parts) if len(parts) == 2 else None

    def key(self, episode: int) -> str:
        """sha256 of ``json.dumps({**base, "episode": episode}, sort_keys=True)``, first 32 hex digits."""
        episode = int(episode)
        if self._key_parts is None:
            blob = json.dumps({**self.base, "episode": episode}, sort_keys=True, default=str)
            return hashlib.sha256(blob.encode()).hexdigest()[:32]
        memo = (self._key_parts, episode)                     # every extract call builds a FramesCache: the
        key = _KEYS.get(memo)                                 # keys of the episodes it has seen are kept
        if key is None:
            if len(_KEYS) >= _RECORDS_MAX:
                _KEYS.clear()
            blob = f"{self._key_parts[0]}{episode}{self._key_parts[1]}"
            _KEYS[memo] = key = hashlib.sha256(blob.encode()).hexdigest()[:32]
        return key

    def episode(self, episode: int, frames: Callable[[], torch.Tensor]) -> torch.Tensor:
        """``(T, 3, h, w)`` resized frames of ``episode``: from the cache, else ``resize_frames(frames())``
        (``frames()`` gives the episode's, possibly corrupted, ``(T, H, W, 3) uint8`` frames), then stored."""
        entry = self.root / self.key(episode)
        record = _record(entry)
        for name, nhwc in (("frames.npy", False), ("frames_nhwc.npy", True)):
            if name in record.get("checksums", {}) or (not record and (entry / name).is_file()):
                try:
                    arr = _read(entry, name, record, nhwc)
                    if arr is None:                               # bit flips, truncation: recompute
                        break
                    mark_used(entry)
                    arr = torch.from_numpy(arr)
                    return arr.permute(0, 3, 1, 2) if nhwc else arr
                except (OSError, ValueError, EOFError):
                    break                                     # unreadable: recompute
        with torch.inference_mode():
            x = self.encoder.resize_frames(frames()[None])[0].cpu()
        # keep the memory layout resize_frames gave (torch's uint8 resize returns channels-last): the model sees
        # the same strides as without the cache, so its kernels (and last bits) are the same
        nhwc = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
        x = x if nhwc else x.contiguous()
        with contextlib.suppress(OSError):                    # a full or read-only disk only costs the reuse
            with atomic_dir(entry) as tmp:
                name = "frames_nhwc.npy" if nhwc else "frames.npy"
                np.save(tmp / name, x.permute(0, 2, 3, 1).numpy() if nhwc else x.numpy())
                st = (tmp / name).stat()                      # the rename below keeps size and mtime
                (tmp / "entry.json").write_text(json.dumps({**self.base, "episode": int(episode),
                                                            "shape": list(x.shape), "dtype": str(x.dtype),
                                                            "checksums": {name: file_digest(tmp / name)},
                                                            "stamps": {name: {"size": st.st_size,
                                                                              "mtime_ns": st.st_mtime_ns}}},
                                                           default=str))
        return x


_KEYS: dict[tuple[tuple[str, ...], int], str] = {}   # (the key's JSON around the episode, episode) -> key
_RECORDS: dict[str, tuple[tuple[int, int, int], dict]] = {}   # entry.json path -> (inode, size, mtime), record
_RECORDS_MAX = 4096


def _record(entry: Path) -> dict:
    """``entry/entry.json`` as written (empty when missing or unreadable: the entry is then recomputed). Parsed
    records are kept in this process by path and reused while the file's inode, size and mtime are unchanged
    (it is only ever replaced by a rename): one ``stat`` instead of an open, read and JSON parse per hit."""
    path = os.path.join(entry, "entry.json")
    try:
        st = os.stat(path)
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        known = _RECORDS.get(path)
        if known is not None and known[0] == stamp:
            return dict(known[1])
        with open(path, "rb") as f:
            rec = json.loads(f.read())
        if not isinstance(rec, dict):
            return {}
        if len(_RECORDS) >= _RECORDS_MAX:
            _RECORDS.clear()
        _RECORDS[path] = (stamp, rec)
        return dict(rec)
    except (OSError, ValueError):
        return {}


def _stamped(st: os.stat_result, record: dict, name: str) -> bool:
    """True when the file's size and mtime are those recorded when the entry was written."""
    stamps = record.get("stamps")
    stamp = stamps.get(name) if isinstance(stamps, dict) else None
    return isinstance(stamp, dict) and st.st_size == stamp.get("size") and st.st_mtime_ns == stamp.get("mtime_ns")


def _read(entry: Path, name: str, record: dict, nhwc: bool) -> np.ndarray | None:
    """The frames array of ``entry/name``, or None when the file is not what was written. A file as stamped
    whose ``.npy`` header names the recorded shape and dtype is read in one pass into a new array (no
    ``np.load`` header parse; the header is checked once per file version in this process, see ``_HEADERS``);
    any other goes through ``_intact`` (the checksum) and ``np.load``."""
    path = os.path.join(entry, name)
    st = os.stat(path)
    if not _stamped(st, record, name):
        if not _intact(entry, name, record):
            return None
        _restamp(entry, name, record, st)                     # intact: the next read takes the fast path
        return np.load(path, allow_pickle=False)
    dtype, shape = _NP_DTYPES.get(record.get("dtype")), record.get("shape")
    if dtype is not None and isinstance(shape, list) and len(shape) == 4 \
            and all(isinstance(n, int) and n >= 0 for n in shape):
        shape = (shape[0], shape[2], shape[3], shape[1]) if nhwc else tuple(shape)
        arr = np.empty(shape, dtype)
        offset = st.st_size - arr.nbytes                      # np.save writes the C-order data last
        if 10 <= offset <= 4096:
            with open(path, "rb", buffering=0) as f:
                version = ((st.st_ino, st.st_size, st.st_mtime_ns), arr.dtype.str, shape)
                if _HEADERS.get(path) != version:
                    head = f.read(offset).decode("latin1")
                    if not (head.startswith("\x93NUMPY") and f"'descr': '{arr.dtype.str}'" in head
                            and "'fortran_order': False" in head and f"'shape': {shape!r}" in head):
                        return np.load(path, allow_pickle=False)
                    if len(_HEADERS) >= _RECORDS_MAX:
                        _HEADERS.clear()
                    _HEADERS[path] = version
                if _read_into(f, offset, memoryview(arr).cast("B")):
                    return arr
    return np.load(path, allow_pickle=False)


# frames file path -> (inode, size, mtime), dtype, shape of the version whose ``.npy`` header was checked: a file
# is only ever replaced whole (a rename), so the same inode, size and mtime mean the same header
_HEADERS: dict[str, tuple] = {}


def _read_into(f: Any, offset: int, buf: memoryview) -> bool:
    """Fill ``buf`` from the unbuffered file ``f`` at ``offset`` (one ``read`` system call for an entry's size);
    False when the file ends first."""
    f.seek(offset)
    done = 0
    while done < len(buf):
        n = f.readinto(buf[done:])
        if not n:
            return False
        done += n
    return True


def _restamp(entry: Path, name: str, record: dict, st: os.stat_result) -> None:
    """Record the size and mtime of a file that matched its checksum (a copied entry, or one written before
    stamps) in ``entry.json``, atomically; best effort (a read-only cache is re-hashed on each read)."""
    stamps = record.get("stamps") if isinstance(record.get("stamps"), dict) else {}
    doc = {**record, "stamps": {**stamps, name: {"size": st.st_size, "mtime_ns": st.st_mtime_ns}}}
    tmp = entry / f".entry.json.{os.getpid()}.tmp"
    try:
        tmp.write_text(json.dumps(doc, default=str))
        os.replace(tmp, entry / "entry.json")
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _intact(entry: Path, name: str, record: dict | None = None) -> bool:
    """True when ``entry/name`` is what was written: its size and mtime as stamped in ``entry.json`` (the
    store's rule, ``data.store.check_checksums``: any write moves the mtime), else its BLAKE2b checksum as
    recorded there (a copied entry, or one written before stamps). False when it differs, or the entry has no
    readable record: then it is recomputed and rewritten."""
    try:
        rec = _record(entry) if record is None else record
        want = rec["checksums"][name]
        return _stamped((entry / name).stat(), rec, name) or file_digest(entry / name) == want
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
