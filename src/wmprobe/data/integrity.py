"""A store's content identity and integrity: the fingerprint over its arrays, the per-file checksums.

``compute_fingerprint`` names a store's content (cache keys, provenance columns): sha256 over the arrays
``frames (N, H, W, 3) uint8``, ``actions (N, A) float32``, ``episode_ends (E,)``, ``tasks (E,)``, ``states
(N, S)`` (optional) and the meta that changes their meaning. ``checksums.json`` records size, mtime and a
BLAKE2b-128 digest of every ``*.npy`` file when a store is written (``stamp_store``); ``check_checksums`` says
which files changed since.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from wmprobe._fs import drop_pages

def compute_fingerprint(frames, actions, episode_ends, tasks, meta, states=None) -> str:
    """sha256 over the arrays' bytes and the meta that changes their meaning (not the fingerprint itself);
    ``states`` and ``meta["state_names"]`` count when there are states (a store without is hashed as before
    states existed)."""
    h = hashlib.sha256()
    for arr in (actions, episode_ends, tasks) + (() if states is None else (states,)):
        a = np.ascontiguousarray(arr)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    f = np.asarray(frames)
    h.update(str(f.shape).encode())
    step = 256  # frames hashed in chunks (no copy of a contiguous chunk) to bound memory on large stores
    for i in range(0, f.shape[0], step):
        h.update(np.ascontiguousarray(f[i : i + step]).reshape(-1))  # type: ignore[arg-type]  # tobytes()'s bytes
        drop_pages(frames)  # a memory-mapped store's pages would otherwise stay in RSS (it grew with the store)
    keep = {k: meta.get(k) for k in ("fps", "action_names", "action_groups", "task_names")}
    if states is not None:
        keep["state_names"] = meta.get("state_names")
    h.update(json.dumps(keep, sort_keys=True).encode())
    return h.hexdigest()[:16]



CHECKSUMS = "checksums.json"
_CHUNK = 1 << 22


def file_digest(path: str | os.PathLike) -> str:
    """BLAKE2b-128 of a file's bytes, read in 4 MiB chunks (bounded memory, nothing mapped)."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def stamp_store(directory: str | os.PathLike) -> None:
    """Record size, mtime and BLAKE2b digest of every array file of a store being written (``checksums.json``).
    ``EpisodeStore.load`` compares size and mtime on every open and re-hashes a file whose mtime changed."""
    directory = Path(directory)
    files = {}
    for f in sorted(directory.glob("*.npy")):
        st = f.stat()
        files[f.name] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "blake2b": file_digest(f)}
    (directory / CHECKSUMS).write_text(json.dumps({"algorithm": "blake2b-128", "files": files}, indent=1,
                                                  sort_keys=True))


def check_checksums(path: str | os.PathLike, full: bool = False) -> list[str]:
    """Files of the store at ``path`` that differ from ``checksums.json`` (empty when they match, or for a store
    written before checksums were recorded). A file whose size and mtime are as recorded is taken as unchanged
    unless ``full`` (``wmprobe data validate``); one whose mtime alone changed (a copy) is re-hashed, and when it
    still matches the record is updated (best effort) so the next open is fast again."""
    path = Path(path)
    rec = path / CHECKSUMS
    if not rec.is_file():
        return []
    try:
        doc = json.loads(rec.read_text())
        files = doc["files"]
        if not isinstance(files, dict) or not all(isinstance(r, dict) for r in files.values()):
            raise ValueError("files is not a mapping")
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        return [f"{rec} is unreadable or not what wmprobe wrote ({exc})"]
    problems, restamp = [], False
    for name, r in files.items():
        f = path / str(name)
        if "/" in str(name) or "\\" in str(name) or str(name).startswith("."):
            problems.append(f"{rec} names a file outside the store ('{name}')")
            continue
        try:
            st = f.stat()
            if st.st_size != r.get("size"):
                problems.append(f"{f} has {st.st_size} bytes but had {r.get('size')} when the store was written "
                                "(truncated or edited since)")
            elif full or st.st_mtime_ns != r.get("mtime_ns"):
                if file_digest(f) != r.get("blake2b"):
                    problems.append(f"{f} does not match the checksum recorded when the store was written "
                                    "(edited or corrupted since)")
                elif st.st_mtime_ns != r.get("mtime_ns"):
                    r["mtime_ns"], restamp = st.st_mtime_ns, True
        except OSError as exc:
            problems.append(f"{f} cannot be read ({exc.strerror or exc})")
    if restamp and not problems:
        tmp = rec.with_name(f".{CHECKSUMS}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
            os.replace(tmp, rec)
        except OSError:   # a read-only store stays usable; it is re-hashed on each open
            tmp.unlink(missing_ok=True)
    return problems

