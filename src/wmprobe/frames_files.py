"""The files of extraction's frame cache (``wmprobe.frames_cache``): entry records, their size / mtime stamps and
checksums, and reading an entry's frames back: a resized entry's ``.npy`` read in one pass into a new array, a
normalised entry's mapped zero-copy (``_map``). Every reader returns None (or raises OSError / ValueError) for a
file that is not what its record says was written; the cache then recomputes the entry."""
from __future__ import annotations

import contextlib
import json
import mmap
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wmprobe.data.store import file_digest

NORMALISED = "normalised.npy"                       # the file of a normalised entry
RECORDS_MAX = 4096                                  # entries of each in-process memo before it is cleared
_NP_DTYPES = {"torch.uint8": np.uint8, "torch.float32": np.float32}
_RECORDS: dict[str, tuple[tuple[int, int, int], dict]] = {}   # entry.json path -> (inode, size, mtime), record


def _write_entry(tmp: Path, name: str, arr: np.ndarray, doc: dict[str, Any]) -> None:
    """Write one cache entry into the fresh directory ``tmp``: ``arr`` as ``name`` (``np.save``) and
    ``entry.json``, which is ``doc`` plus the file's checksum and its size-and-mtime stamp (the rename that
    publishes ``tmp`` keeps both)."""
    np.save(tmp / name, arr)
    st = (tmp / name).stat()
    (tmp / "entry.json").write_text(json.dumps({**doc, "checksums": {name: file_digest(tmp / name)},
                                                "stamps": {name: {"size": st.st_size, "mtime_ns": st.st_mtime_ns}}},
                                               default=str))


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
        if len(_RECORDS) >= RECORDS_MAX:
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
    dtype, shape = _NP_DTYPES.get(str(record.get("dtype"))), record.get("shape")
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
                    if len(_HEADERS) >= RECORDS_MAX:
                        _HEADERS.clear()
                    _HEADERS[path] = version
                if _read_into(f, offset, arr.data.cast("B")):
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
    stamps: dict = record["stamps"] if isinstance(record.get("stamps"), dict) else {}
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


# Linux >= 5.14: fill the page table of a mapping from the page cache in one call, read-only (copy-on-write kept;
# MAP_POPULATE would copy every page of a writable private map, and faulting page by page costs ~20 us a page)
_POPULATE = getattr(mmap, "MADV_POPULATE_READ", 22) if sys.platform.startswith("linux") else None


def _map(entry: str) -> torch.Tensor | None:
    """A normalised entry's frames ``(T, 3, h, w)`` float32 in the recorded dimension order, mapped from
    ``entry/normalised.npy`` (copy-on-write: the tensor is writable and the file never changes), or None when
    the file or its record is not what was written (then it is recomputed). A file is checked once per version
    (inode, size, mtime; see ``_layout``), so a hit costs one ``stat`` besides the mapping. Where pages cannot
    be populated in one call the frames are read into memory instead."""
    path = os.path.join(entry, NORMALISED)
    st = os.stat(path)
    stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
    known = _LAYOUTS.get(path)
    if known is None or known[0] != stamp:
        layout = _layout(entry, path, st)
        if layout is None:
            return None
        if len(_LAYOUTS) >= RECORDS_MAX:
            _LAYOUTS.clear()
        _LAYOUTS[path] = known = (stamp, layout)
    stored, count, offset, inverse = known[1]
    fd = os.open(path, os.O_RDONLY)
    try:
        if _POPULATE is None:
            arr = np.empty(stored, np.float32)
            with os.fdopen(os.dup(fd), "rb", buffering=0) as f:
                if not _read_into(f, offset, arr.data.cast("B")):
                    return None
        else:
            mm = mmap.mmap(fd, st.st_size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
            try:
                mm.madvise(_POPULATE)
            except OSError:
                _no_populate()
            arr = np.frombuffer(mm, np.float32, count=count, offset=offset).reshape(stored)
    finally:
        os.close(fd)
    return torch.from_numpy(arr).permute(inverse)


# normalised file path -> ((inode, size, mtime), (stored shape, values, data offset, inverse order)) of the file
# version that matched its record and ``.npy`` header: a file is only ever replaced whole (a rename), so the same
# inode, size and mtime mean the same bytes (the store's rule: any write moves the mtime)
_LAYOUTS: dict[str, tuple[tuple[int, int, int], tuple[tuple[int, ...], int, int, list[int]]]] = {}


def _layout(entry: str, path: str, st: os.stat_result) -> tuple[tuple[int, ...], int, int, list[int]] | None:
    """Check ``entry/normalised.npy`` (stat ``st``) against ``entry.json``: a normalised record with a valid
    shape and order, the file's size and mtime as stamped (else its checksum, then restamped) and its ``.npy``
    header naming float32 C order and that shape; the layout to map it with, or None."""
    record = _record(Path(entry))
    shape, order = record.get("shape"), record.get("order")
    if record.get("kind") != "normalised" or record.get("dtype") != "torch.float32" \
            or not isinstance(shape, list) or len(shape) != 4 \
            or not all(isinstance(n, int) and n >= 0 for n in shape) or not isinstance(order, list) \
            or sorted(order) != [0, 1, 2, 3]:
        return None
    if not _stamped(st, record, NORMALISED):
        if not _intact(Path(entry), NORMALISED, record):
            return None
        _restamp(Path(entry), NORMALISED, record, st)
        st = os.stat(path)
    stored = tuple(shape[d] for d in order)
    count = stored[0] * stored[1] * stored[2] * stored[3]
    offset = st.st_size - 4 * count                           # np.save writes the C-order data last
    if not 10 <= offset <= 4096 or count == 0:
        return None
    with open(path, "rb", buffering=0) as f:
        head = f.read(offset).decode("latin1")
    if not (head.startswith("\x93NUMPY") and f"'descr': '{np.dtype(np.float32).str}'" in head
            and "'fortran_order': False" in head and f"'shape': {stored!r}" in head):
        return None
    inverse = [0] * 4
    for i, d in enumerate(order):
        inverse[d] = i
    return stored, count, offset, inverse


def _no_populate() -> None:
    """This kernel cannot populate a mapping in one call: read normalised entries into memory from now on."""
    global _POPULATE
    _POPULATE = None


def _dim_order(x: torch.Tensor) -> list[int] | None:
    """The dimension order in which ``x`` is dense (``x.permute(order)`` contiguous and, permuted back, with
    exactly ``x``'s strides), or None: such a layout round-trips through a C-order file; others are not
    stored."""
    order = sorted(range(x.ndim), key=lambda d: (-x.stride(d), -x.shape[d], d))
    strides, step = [0] * x.ndim, 1
    for d in reversed(order):
        strides[d], step = step, step * x.shape[d]
    return order if tuple(strides) == tuple(x.stride()) and x.ndim == 4 else None
