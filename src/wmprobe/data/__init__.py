"""Episode data: the on-disk EpisodeStore, splits, the embedded simulator, readers and corruptions."""
from __future__ import annotations

import os
from pathlib import Path

from wmprobe.data.splits import Split, make_split
from wmprobe.data.store import EpisodeStore, from_episodes, write_store
from wmprobe.errors import StoreError

__all__ = ["EpisodeStore", "Split", "from_episodes", "load_dataset", "make_split", "write_store"]


def load_dataset(path: str | os.PathLike, mmap: bool = True) -> EpisodeStore:
    """Open an EpisodeStore directory (memory-mapped).

    Other formats (LeRobot, CALVIN, LIBERO) are converted once with ``wmprobe data import`` (or
    ``wmprobe.data.formats.import_dataset``); pointing this at one of them says so.
    """
    p = Path(path)
    if p.is_dir() and not (p / "meta.json").exists():
        from wmprobe.data.formats import detect_format
        fmt = detect_format(p)
        if fmt and fmt != "store":
            raise StoreError(f"{p} is a {fmt} dataset, not an EpisodeStore: convert it once with "
                             f"`wmprobe data import {p} DEST --format {fmt}`")
    return EpisodeStore.load(p, mmap=mmap)
