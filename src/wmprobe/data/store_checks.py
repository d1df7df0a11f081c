"""The EpisodeStore's file layout and its checks: what a valid store holds, and every problem of one that is not.

``check_arrays`` checks arrays and meta in memory (``frames (N, H, W, 3) uint8``, ``actions (N, A) float32``,
``episode_ends (E,)`` strictly increasing and ending at N, ``tasks (E,)`` indexing ``task_names``, optional
``states (N, S) float32``); ``validate_store`` checks a store directory file by file (``wmprobe data
validate``), each problem a sentence naming its file.
"""
from __future__ import annotations

import json
from functools import partial
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from wmprobe.data.integrity import check_checksums, compute_fingerprint
from wmprobe.errors import StoreError

FORMAT = "wmprobe-episodes"
FORMAT_VERSION = 1
AXIS_GROUPS = ("translation", "rotation", "gripper")
FILES = ("frames.npy", "actions.npy", "episode_ends.npy", "tasks.npy", "meta.json")
OPTIONAL_FILES = ("states.npy",)
ARRAYS = ("frames", "actions", "episode_ends", "tasks")


def check_arrays(frames, actions, episode_ends, tasks, meta, states=None) -> list[str]:
    """Every problem with a store's arrays and meta, as sentences (empty list when valid); ``states`` (or
    None) must be ``(N, S)`` float32 with ``meta["state_names"]`` naming its S columns."""
    p: list[str] = []
    if getattr(frames, "ndim", 0) != 4 or frames.shape[-1] != 3:
        p.append(f"frames.npy must be (N, H, W, 3), got shape {getattr(frames, 'shape', None)}")
    if getattr(frames, "dtype", None) != np.uint8:
        p.append(f"frames.npy must be uint8, got {getattr(frames, 'dtype', None)}")
    if getattr(actions, "ndim", 0) != 2:
        p.append(f"actions.npy must be (N, A), got shape {getattr(actions, 'shape', None)}")
    elif actions.dtype != np.float32:
        p.append(f"actions.npy must be float32, got {actions.dtype}")
    if p:
        return p
    n = actions.shape[0]
    if frames.shape[0] != n:
        p.append(f"frames.npy has {frames.shape[0]} rows but actions.npy has {n}")
    if episode_ends.ndim != 1 or len(episode_ends) == 0:
        p.append("episode_ends.npy must be a non-empty 1-D array")
        return p
    if np.any(np.diff(episode_ends) <= 0) or episode_ends[0] <= 0:
        p.append("episode_ends.npy must be strictly increasing and positive (every episode has >= 1 frame)")
    if int(episode_ends[-1]) != n:
        p.append(f"episode_ends.npy ends at {int(episode_ends[-1])} but there are {n} frames")
    if tasks.shape != episode_ends.shape:
        p.append(f"tasks.npy has {tasks.shape[0] if tasks.ndim else 0} entries for {len(episode_ends)} episodes")
    for key in ("fps", "action_names", "action_groups", "task_names"):
        if key not in meta:
            p.append(f"meta.json lacks '{key}'")
    if p:
        return p
    if len(meta["action_names"]) != actions.shape[1]:
        p.append(f"meta.json names {len(meta['action_names'])} action axes but actions have {actions.shape[1]}")
    for g, idx in meta["action_groups"].items():
        if g not in AXIS_GROUPS:
            p.append(f"meta.json action group '{g}' is not one of {AXIS_GROUPS}")
        if any(not (0 <= int(i) < actions.shape[1]) for i in idx):
            p.append(f"meta.json action group '{g}' indexes outside 0..{actions.shape[1] - 1}")
    if len(tasks) and (tasks.min() < 0 or tasks.max() >= len(meta["task_names"])):
        p.append(f"tasks.npy ids must index meta.json task_names ({len(meta['task_names'])} names)")
    if states is not None:
        p.extend(_check_states(states, n, meta))
    return p


def _check_states(states, n: int, meta) -> list[str]:
    """The problems of a ``states.npy`` for ``n`` frames (see ``check_arrays``)."""
    if getattr(states, "ndim", 0) != 2 or states.shape[0] != n:
        return [f"states.npy must be (N, S) with N = {n} frames, got shape {getattr(states, 'shape', None)}"]
    if states.dtype != np.float32:
        return [f"states.npy must be float32, got {states.dtype}"]
    names = meta.get("state_names")
    if not isinstance(names, list) or len(names) != states.shape[1]:
        return [f"meta.json state_names must name the {states.shape[1]} columns of states.npy, got {names!r}"]
    return []


def nonfinite_episodes(actions: np.ndarray, episode_ends: np.ndarray) -> list[int]:
    """Episodes whose actions contain NaN or inf (checked in chunks; memory-mapped friendly)."""
    bad_rows = []
    step = 1 << 16
    for i in range(0, actions.shape[0], step):
        r = np.nonzero(~np.isfinite(np.asarray(actions[i : i + step])).all(axis=1))[0]
        bad_rows.extend((r + i).tolist())
    if not bad_rows:
        return []
    return sorted(set(np.searchsorted(episode_ends, bad_rows, side="right").tolist()))




def _load_meta(path: Path) -> dict[str, Any]:
    """``path/meta.json`` as a dict, or a StoreError naming the file (as ``EpisodeStore.load`` reads it)."""
    f = path / "meta.json"
    try:
        meta = json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StoreError(f"{f} is not valid JSON: {exc}") from None
    except OSError as exc:
        raise StoreError(f"{f} cannot be read: {exc}") from None
    if not isinstance(meta, dict):
        raise StoreError(f"{f} must hold a JSON object, got {type(meta).__name__}")
    return meta


def _load_array(path: Path, name: str, mmap: bool = True) -> np.ndarray:
    """``path/NAME.npy`` (memory-mapped when ``mmap``), or a StoreError naming the file (as ``load``)."""
    f = path / f"{name}.npy"
    try:
        return np.load(f, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise StoreError(f"{f} is corrupt or truncated: {exc}") from None


def _load_each(path: Path, problems: list[str]) -> dict[str, Any]:
    """``{"meta": dict, "frames": array, ...}`` of the files present; each that does not read is left out and
    its problem appended to ``problems``."""
    readers: dict[str, tuple[str, Callable[[Path], Any]]] = {"meta.json": ("meta", _load_meta), **{
        f"{n}.npy": (n, partial(_load_array, name=n)) for n in ARRAYS}}
    loaded: dict[str, Any] = {}
    for file, (name, read) in readers.items():
        if (path / file).is_file():
            try:
                loaded[name] = read(path)
            except StoreError as exc:
                problems.append(str(exc))
    return loaded


def links_out(path: Path, allow: bool | None = None) -> list[str]:
    """One problem per store file whose symbolic links lead outside ``path`` (none when ``allow``)."""
    from wmprobe.data.formats._paths import PathEscapeError, confine, links_allowed
    if links_allowed(allow):
        return []
    out = []
    for f in [*FILES, *sorted(p.name for p in path.glob("*.npy") if p.name not in FILES)]:  # states.npy too
        try:
            confine(path, f, f"EpisodeStore {path}", False)
        except PathEscapeError as exc:
            out.append(str(exc))
    return out


def validate_store(path: str | os.PathLike, allow_symlinks_out: bool | None = None) -> list[str]:
    """Every problem found in the store at ``path`` (empty when it loads cleanly), each naming its file.

    Each file is checked on its own (missing, unreadable, truncated: one problem per file); when all of them
    read, every consistency problem of ``check_arrays`` and the episodes with NaN/inf actions are listed."""
    path = Path(path)
    if not path.is_dir():
        return [f"no EpisodeStore at {path}: directory does not exist"]
    problems = [f"EpisodeStore {path} is incomplete: missing {f}" for f in FILES if not (path / f).is_file()]
    escapes = links_out(path, allow_symlinks_out)
    if escapes:  # never read a file outside the store
        return problems + escapes
    loaded = _load_each(path, problems)
    if problems:
        return problems
    states = None
    if (path / "states.npy").is_file():  # optional: checked when present
        try:
            states = _load_array(path, "states")
        except StoreError as exc:
            return [str(exc)]
    ends, tasks = np.asarray(loaded["episode_ends"]), np.asarray(loaded["tasks"])
    problems = [f"{path}: {p}" for p in check_arrays(loaded["frames"], loaded["actions"], ends, tasks, loaded["meta"],
                                                     states)]
    for name, arr in (("actions", loaded["actions"]), ("states", states)):
        if arr is not None and arr.ndim == 2 and arr.dtype.kind in "fiu" and ends.ndim == 1 and len(ends) \
                and (name == "actions" or int(ends[-1]) == arr.shape[0]):
            bad = nonfinite_episodes(arr, ends)
            if bad:
                problems.append(f"{path / f'{name}.npy'} has NaN or inf {name} in episode(s) {bad[:10]}")
    if not problems:   # a store that reads cleanly: are its bytes still those it was written with?
        problems += check_checksums(path, full=True)   # every byte, not just size and mtime
    if not problems:
        meta = loaded["meta"]
        fp = compute_fingerprint(loaded["frames"], loaded["actions"], ends, tasks, meta, states)
        if fp != meta.get("fingerprint"):
            problems.append(f"{path / 'meta.json'}: fingerprint {meta.get('fingerprint')} does not match the arrays "
                            f"({fp}): they were edited after the store was written, and results cached under the "
                            "old fingerprint would be reused; re-import it (`wmprobe data import STORE NEW_DIR "
                            "--format store`)")
    return problems
