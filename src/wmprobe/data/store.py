"""EpisodeStore: time-concatenated frames and actions of many episodes, as plain numpy files.

On disk (see docs/data.md)::

    STORE/
      frames.npy        (N, H, W, 3) uint8   all frames of all episodes, episode after episode
      actions.npy       (N, A) float32       action taken at each frame (a_t moves o_t -> o_{t+1})
      episode_ends.npy  (E,) int64           exclusive end row of each episode (strictly increasing, last == N)
      tasks.npy         (E,) int64           task id of each episode (index into meta["task_names"])
      meta.json         fps, action_names, action_groups, task_names, source, fingerprint

Reads are memory-mapped; every load is validated and a problem raises ``StoreError`` naming the file.
Writes go to a temporary sibling directory renamed into place, so a store that exists is complete.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from wmprobe._fs import atomic_dir, drop_pages
from wmprobe.errors import StoreError

FORMAT = "wmprobe-episodes"
FORMAT_VERSION = 1
AXIS_GROUPS = ("translation", "rotation", "gripper")
FILES = ("frames.npy", "actions.npy", "episode_ends.npy", "tasks.npy", "meta.json")


@dataclass
class EpisodeStore:
    """Frames ``(N, H, W, 3) uint8``, actions ``(N, A) float32``, ``episode_ends (E,)``, ``tasks (E,)``, meta."""

    frames: np.ndarray
    actions: np.ndarray
    episode_ends: np.ndarray
    tasks: np.ndarray
    meta: dict[str, Any]
    path: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        self.episode_ends = np.asarray(self.episode_ends, dtype=np.int64)
        self.tasks = np.asarray(self.tasks, dtype=np.int64)
        problems = check_arrays(self.frames, self.actions, self.episode_ends, self.tasks, self.meta)
        if problems:
            where = str(self.path) if self.path else "in-memory store"
            raise StoreError(f"invalid EpisodeStore ({where}): " + "; ".join(problems))

    # ---- shape helpers -------------------------------------------------------------------------
    @property
    def n_frames(self) -> int:
        return int(self.actions.shape[0])

    @property
    def n_episodes(self) -> int:
        return int(self.episode_ends.shape[0])

    @property
    def action_dim(self) -> int:
        return int(self.actions.shape[1])

    @property
    def episode_starts(self) -> np.ndarray:
        return np.concatenate([[0], self.episode_ends[:-1]]).astype(np.int64)

    @property
    def episode_lengths(self) -> np.ndarray:
        return self.episode_ends - self.episode_starts

    def episode_of_frame(self) -> np.ndarray:
        """``(N,) int64``: the episode index of every frame row."""
        return np.repeat(np.arange(self.n_episodes, dtype=np.int64), self.episode_lengths)

    def episode_slice(self, e: int) -> slice:
        return slice(int(self.episode_starts[e]), int(self.episode_ends[e]))

    @property
    def action_groups(self) -> dict[str, list[int]]:
        return {g: list(v) for g, v in self.meta["action_groups"].items()}

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or (self.path.name if self.path else "store"))

    @property
    def fingerprint(self) -> str:
        return str(self.meta["fingerprint"])

    def subset(self, episodes: Sequence[int]) -> "EpisodeStore":
        """A new in-memory store holding the given episodes (in the given order)."""
        episodes = [int(e) for e in episodes]
        if not episodes:
            raise StoreError(f"{self.name}: cannot take an empty subset of episodes")
        rows = np.concatenate([np.arange(*self.episode_slice(e).indices(self.n_frames)) for e in episodes])
        ends = np.cumsum(self.episode_lengths[episodes]).astype(np.int64)
        meta = dict(self.meta)
        meta["parent_fingerprint"] = self.fingerprint
        meta["episodes"] = episodes
        meta.pop("fingerprint", None)
        frames, actions, tasks = np.asarray(self.frames[rows]), np.asarray(self.actions[rows]), self.tasks[episodes]
        meta["fingerprint"] = compute_fingerprint(frames, actions, ends, tasks, meta)
        return EpisodeStore(frames, actions, ends, tasks, meta)

    # ---- io -----------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = True) -> "EpisodeStore":
        path = Path(path)
        if not path.is_dir():
            raise StoreError(f"no EpisodeStore at {path}: directory does not exist")
        missing = [f for f in FILES if not (path / f).is_file()]
        if missing:
            raise StoreError(f"EpisodeStore {path} is incomplete: missing {', '.join(missing)}")
        try:
            meta = json.loads((path / "meta.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise StoreError(f"{path / 'meta.json'} is not valid JSON: {exc}") from None
        arrays = {}
        for name in ("frames", "actions", "episode_ends", "tasks"):
            f = path / f"{name}.npy"
            try:
                arrays[name] = np.load(f, mmap_mode="r" if mmap else None, allow_pickle=False)
            except (ValueError, OSError, EOFError) as exc:
                raise StoreError(f"{f} is corrupt or truncated: {exc}") from None
        store = cls(arrays["frames"], arrays["actions"], np.asarray(arrays["episode_ends"]),
                    np.asarray(arrays["tasks"]), meta, path=path)
        bad = nonfinite_episodes(store.actions, store.episode_ends)
        if bad:
            raise StoreError(f"{path / 'actions.npy'} has NaN or inf actions in episode(s) {bad[:10]}")
        return store

    def save(self, path: str | os.PathLike) -> Path:
        return write_store(path, self.frames, self.actions, self.episode_ends, self.tasks, self.meta)


# ---- construction -----------------------------------------------------------------------------
def from_episodes(
    episodes: Iterable[tuple[np.ndarray, np.ndarray]],
    tasks: Sequence[int],
    *,
    fps: float,
    action_names: Sequence[str],
    action_groups: dict[str, Sequence[int]],
    task_names: Sequence[str],
    source: dict[str, Any],
    name: str | None = None,
) -> EpisodeStore:
    """Build an in-memory store from ``[(frames (T,H,W,3) uint8, actions (T,A) float32), ...]``."""
    frames_l, actions_l, ends, total = [], [], [], 0
    for i, (fr, ac) in enumerate(episodes):
        if len(fr) != len(ac):
            raise StoreError(f"episode {i}: {len(fr)} frames but {len(ac)} actions")
        frames_l.append(np.asarray(fr, dtype=np.uint8))
        actions_l.append(np.asarray(ac, dtype=np.float32))
        total += len(fr)
        ends.append(total)
    if not frames_l:
        raise StoreError("no episodes given")
    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "name": name,
        "fps": float(fps),
        "action_names": list(action_names),
        "action_groups": {g: [int(i) for i in v] for g, v in action_groups.items()},
        "task_names": list(task_names),
        "source": source,
    }
    frames, actions = np.concatenate(frames_l), np.concatenate(actions_l)
    ends_a, tasks_a = np.asarray(ends, dtype=np.int64), np.asarray(tasks, dtype=np.int64)
    meta["fingerprint"] = compute_fingerprint(frames, actions, ends_a, tasks_a, meta)
    return EpisodeStore(frames, actions, ends_a, tasks_a, meta)


def compute_fingerprint(frames, actions, episode_ends, tasks, meta) -> str:
    """sha256 over the arrays' bytes and the meta that changes their meaning (not the fingerprint itself)."""
    h = hashlib.sha256()
    for arr in (actions, episode_ends, tasks):
        a = np.ascontiguousarray(arr)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    f = np.asarray(frames)
    h.update(str(f.shape).encode())
    step = 256  # frames hashed in chunks (no copy of a contiguous chunk) to bound memory on large stores
    for i in range(0, f.shape[0], step):
        h.update(np.ascontiguousarray(f[i : i + step]).reshape(-1))   # the same bytes as tobytes(), uncopied
        drop_pages(frames)  # a memory-mapped store's pages would otherwise stay in RSS (it grew with the store)
    keep = {k: meta.get(k) for k in ("fps", "action_names", "action_groups", "task_names")}
    h.update(json.dumps(keep, sort_keys=True).encode())
    return h.hexdigest()[:16]


def write_store(path, frames, actions, episode_ends, tasks, meta) -> Path:
    """Write atomically: into a temp dir beside ``path``, validated, then renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(meta)
    meta.setdefault("format", FORMAT)
    meta.setdefault("version", FORMAT_VERSION)
    if "fingerprint" not in meta:
        meta["fingerprint"] = compute_fingerprint(frames, actions, episode_ends, tasks, meta)
    problems = check_arrays(frames, actions, np.asarray(episode_ends), np.asarray(tasks), meta)
    if problems:
        raise StoreError(f"refusing to write invalid EpisodeStore to {path}: " + "; ".join(problems))
    with atomic_dir(path, prefix=f".{path.name}.tmp-") as tmp:
        np.save(tmp / "frames.npy", np.ascontiguousarray(frames, dtype=np.uint8))
        np.save(tmp / "actions.npy", np.ascontiguousarray(actions, dtype=np.float32))
        np.save(tmp / "episode_ends.npy", np.asarray(episode_ends, dtype=np.int64))
        np.save(tmp / "tasks.npy", np.asarray(tasks, dtype=np.int64))
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True, default=str))
    return path


# ---- validation -------------------------------------------------------------------------------
def check_arrays(frames, actions, episode_ends, tasks, meta) -> list[str]:
    """Every problem with a store's arrays and meta, as sentences (empty list when valid)."""
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
    return p


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


ARRAYS = ("frames", "actions", "episode_ends", "tasks")


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
    readers = {"meta.json": ("meta", _load_meta), **{f"{n}.npy": (n, lambda p, n=n: _load_array(p, n))
                                                     for n in ARRAYS}}
    loaded: dict[str, Any] = {}
    for file, (name, read) in readers.items():
        if (path / file).is_file():
            try:
                loaded[name] = read(path)
            except StoreError as exc:
                problems.append(str(exc))
    return loaded


def validate_store(path: str | os.PathLike) -> list[str]:
    """Every problem found in the store at ``path`` (empty when it loads cleanly), each naming its file.

    Each file is checked on its own (missing, unreadable, truncated: one problem per file); when all of them
    read, every consistency problem of ``check_arrays`` and the episodes with NaN/inf actions are listed."""
    path = Path(path)
    if not path.is_dir():
        return [f"no EpisodeStore at {path}: directory does not exist"]
    problems = [f"EpisodeStore {path} is incomplete: missing {f}" for f in FILES if not (path / f).is_file()]
    loaded = _load_each(path, problems)
    if problems:
        return problems
    ends, tasks = np.asarray(loaded["episode_ends"]), np.asarray(loaded["tasks"])
    problems = [f"{path}: {p}" for p in check_arrays(loaded["frames"], loaded["actions"], ends, tasks, loaded["meta"])]
    actions = loaded["actions"]
    if actions.ndim == 2 and actions.dtype.kind in "fiu" and ends.ndim == 1 and len(ends):
        bad = nonfinite_episodes(actions, ends)
        if bad:
            problems.append(f"{path / 'actions.npy'} has NaN or inf actions in episode(s) {bad[:10]}")
    return problems
