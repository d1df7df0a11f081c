"""Atomic directory writes: build in a temp dir beside the destination, then rename it into place."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


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
