"""File-system helpers: atomic directory writes (build in a temp dir beside the destination, then rename it
into place), the ``used`` marker that ``wmprobe cache gc`` reads, and dropping the pages of read-only memory
maps from this process's resident set."""
from __future__ import annotations

import contextlib
import mmap
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_dir(dest: str | os.PathLike, prefix: str | None = None) -> Iterator[Path]:
    """Yield an empty temp dir next to ``dest``; on success it replaces ``dest`` (an existing one is removed),
    on any error it is deleted and ``dest`` is left as it was. Readers never see a half-written ``dest``."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix or f".{dest.name}.", dir=dest.parent))
    try:
        yield tmp
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def mark_used(entry: str | os.PathLike) -> None:
    """Touch ``entry/used``: a cache entry (latent shard, zoo checkpoint, generated dataset) was just used, so
    ``wmprobe cache gc`` keeps it. Best effort: a read-only cache is still usable."""
    with contextlib.suppress(OSError):
        (Path(entry) / "used").touch()


def drop_pages(*arrays: Any) -> None:
    """Drop the resident pages of memory-mapped arrays (``np.load(mmap_mode="r")``, ``open_memmap(mode="w+")``)
    from this process.

    Pages of a mapping that were read or written count in the process's RSS until it is unmapped, so a pass
    over a large store or shard (or an import writing one) grows RSS with the data even though nothing is kept.
    ``MADV_DONTNEED`` on a SHARED file mapping only forgets the page-table entries: the next access faults the
    page back from the page cache, which holds the file's up-to-date contents (written pages included, still
    dirty until written back). Plain in-memory arrays and copy-on-write maps (mode ``c``, whose pages hold
    private changes that MADV_DONTNEED would discard) are left alone.
    """
    for a in arrays:
        m = getattr(a, "_mmap", None)  # np.memmap (and its views) keep the mmap.mmap object here
        if m is None or getattr(a, "mode", None) not in ("r", "r+", "w+") or not hasattr(m, "madvise"):
            continue
        with contextlib.suppress(ValueError, OSError):  # closed map / platform without MADV_DONTNEED
            m.madvise(mmap.MADV_DONTNEED)
