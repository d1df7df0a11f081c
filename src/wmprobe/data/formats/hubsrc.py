"""Dataset repo ids (``lerobot/pusht``) -> a local snapshot, through the Hugging Face cache, offline first.

``resolve_source("lerobot/pusht", revision=None)`` returns the snapshot directory of the dataset repo in the
Hugging Face hub cache (``HF_HUB_CACHE``, default ``$HF_HOME/hub``): files already there are used without
touching the network; otherwise, unless ``HF_HUB_OFFLINE=1``, the repo is downloaded into that cache. The
snapshot is then read by the same readers as a local copy (LeRobot v2.1 / v3.0 and the rest). A path that exists
on disk is always the local path, never a repo id.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from wmprobe.errors import StoreError

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def is_repo_id(src: Any) -> bool:
    """``owner/name`` that is not an existing path."""
    return bool(_REPO_ID.match(str(src))) and not Path(str(src)).expanduser().exists()


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def resolve_source(src: str | os.PathLike, revision: str | None = None) -> tuple[Path, dict[str, Any] | None]:
    """``(local path, hub info or None)``: the path to read, and for a repo id ``{"repo_id", "revision",
    "commit"}`` (recorded in the store's ``meta.json`` ``source.hub``)."""
    if not is_repo_id(src):
        if revision is not None:
            raise StoreError(f"{src}: --revision applies to a hub dataset id such as lerobot/pusht, and this is a "
                             "local path")
        return Path(src), None
    repo = str(src)
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - huggingface_hub ships with the formats extra
        raise StoreError(f"{repo}: reading a hub dataset id needs huggingface_hub (pip install -c constraints.txt "
                         "-e '.[formats]')") from None
    path = None
    try:
        path = snapshot_download(repo, repo_type="dataset", revision=revision, local_files_only=True)
    except Exception:  # not in the cache (or an incomplete snapshot): try the network below
        path = None
    if path is None and not _offline():
        try:
            path = snapshot_download(repo, repo_type="dataset", revision=revision)
        except Exception as exc:  # network down, gated, unknown id or revision
            raise StoreError(_missing(repo, revision, f"download failed: {type(exc).__name__}: {exc}")) from None
    if path is None:
        raise StoreError(_missing(repo, revision, "HF_HUB_OFFLINE is set and it is not in the cache"))
    path = Path(path)
    return path, {"repo_id": repo, "revision": revision or "main", "commit": path.name}


def _missing(repo: str, revision: str | None, why: str) -> str:
    from_cache = os.environ.get("HF_HUB_CACHE") or os.path.join(os.environ.get("HF_HOME", "~/.cache/huggingface"),
                                                                "hub")
    rev = f" --revision {revision}" if revision else ""
    return (f"dataset '{repo}'{f' at revision {revision}' if revision else ''} is not on disk ({why}). Download "
            f"it where there is network (`hf download {repo} --repo-type dataset{rev}`) into the cache at "
            f"{from_cache}, or pass a local copy of the dataset")
