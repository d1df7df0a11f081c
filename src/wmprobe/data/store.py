"""EpisodeStore: time-concatenated frames and actions of many episodes, as plain numpy files.

On disk (see docs/data.md)::

    STORE/
      frames.npy        (N, H, W, 3) uint8   all frames of all episodes, episode after episode
      actions.npy       (N, A) float32       action taken at each frame (a_t moves o_t -> o_{t+1})
      episode_ends.npy  (E,) int64           exclusive end row of each episode (strictly increasing, last == N)
      tasks.npy         (E,) int64           task id of each episode (index into meta["task_names"])
      states.npy        (N, S) float32       optional: proprioceptive state at each frame (meta["state_names"])
      meta.json         fps, action_names, action_groups, task_names, source, fingerprint

Reads are memory-mapped; every load is validated and a problem raises ``StoreError`` naming the file.
Writes go to a temporary sibling directory renamed into place, so a store that exists is complete.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from wmprobe._dest import replacing_dir
from wmprobe.data.integrity import CHECKSUMS, check_checksums, compute_fingerprint, file_digest, stamp_store
from wmprobe.data.store_checks import (ARRAYS, AXIS_GROUPS, FILES, FORMAT, FORMAT_VERSION, OPTIONAL_FILES,
                                       _load_array, check_arrays, links_out, nonfinite_episodes, validate_store)
from wmprobe.errors import StoreError

# the names other modules import from here (the checks and the checksums live in store_checks / integrity)
__all__ = ["ARRAYS", "AXIS_GROUPS", "CHECKSUMS", "FILES", "FORMAT", "FORMAT_VERSION", "OPTIONAL_FILES",
           "EpisodeStore", "check_arrays", "check_checksums", "compute_fingerprint", "file_digest",
           "from_episodes", "links_out", "nonfinite_episodes", "open_cached", "stamp_store", "validate_store",
           "write_store"]



@dataclass
class EpisodeStore:
    """Frames ``(N, H, W, 3) uint8``, actions ``(N, A) float32``, ``episode_ends (E,)``, ``tasks (E,)``, meta;
    ``states (N, S) float32`` (the proprioceptive state at each frame, ``meta["state_names"]``) or None."""

    frames: np.ndarray
    actions: np.ndarray
    episode_ends: np.ndarray
    tasks: np.ndarray
    meta: dict[str, Any]
    path: Path | None = field(default=None, compare=False)
    states: np.ndarray | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        self.episode_ends = np.asarray(self.episode_ends, dtype=np.int64)
        self.tasks = np.asarray(self.tasks, dtype=np.int64)
        problems = check_arrays(self.frames, self.actions, self.episode_ends, self.tasks, self.meta, self.states)
        if problems:
            where = str(self.path) if self.path else "in-memory store"
            raise StoreError(f"invalid EpisodeStore ({where}): " + "; ".join(problems))

    def __repr__(self) -> str:
        """One line: name, episodes, frames and their size, action dims and groups, tasks, fingerprint, path."""
        h, w = (int(x) for x in self.frames.shape[1:3])
        groups = ",".join(self.meta.get("action_groups", {})) or "no groups"
        fp = self.meta.get("fingerprint", "?")
        where = f", path={str(self.path)!r}" if self.path else ""
        return (f"EpisodeStore({self.name!r}: {self.n_episodes} episodes, {self.n_frames} frames {h}x{w}, "
                f"{self.action_dim}-dim actions ({groups}), {len(self.meta.get('task_names', []))} tasks, "
                f"fingerprint {fp}{where})")

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

    @property
    def state_names(self) -> list[str] | None:
        return None if self.states is None else list(self.meta["state_names"])

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
        states = None if self.states is None else np.asarray(self.states[rows])
        meta["fingerprint"] = compute_fingerprint(frames, actions, ends, tasks, meta, states)
        return EpisodeStore(frames, actions, ends, tasks, meta, states=states)

    # ---- io -----------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = True, verify: bool = True,
             allow_symlinks_out: bool | None = None) -> "EpisodeStore":
        """Open a store (memory-mapped). ``verify``: its files must match the sizes and checksums recorded when
        it was written (``checksums.json``; size and mtime first, a full BLAKE2 pass only when they changed),
        else StoreError naming the file. Its files must lie inside ``path`` after symbolic links, unless
        ``allow_symlinks_out`` (default ``$WMPROBE_ALLOW_SYMLINKS_OUT``; data/formats/_paths.py)."""
        path = Path(path)
        if not path.is_dir():
            raise StoreError(f"no EpisodeStore at {path}: directory does not exist")
        missing = [f for f in FILES if not (path / f).is_file()]
        if missing:
            raise StoreError(f"EpisodeStore {path} is incomplete: missing {', '.join(missing)}")
        escapes = links_out(path, allow_symlinks_out)
        if escapes:
            raise StoreError(escapes[0])
        try:
            meta = json.loads((path / "meta.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise StoreError(f"{path / 'meta.json'} is not valid JSON: {exc}") from None
        arrays = {name: _load_array(path, name, mmap) for name in ARRAYS}
        states = _load_array(path, "states", mmap) if (path / "states.npy").is_file() else None
        store = cls(arrays["frames"], arrays["actions"], np.asarray(arrays["episode_ends"]),
                    np.asarray(arrays["tasks"]), meta, path=path, states=states)
        bad = nonfinite_episodes(store.actions, store.episode_ends)
        if bad:
            raise StoreError(f"{path / 'actions.npy'} has NaN or inf actions in episode(s) {bad[:10]}")
        if states is not None:
            bad = nonfinite_episodes(states, store.episode_ends)
            if bad:
                raise StoreError(f"{path / 'states.npy'} has NaN or inf states in episode(s) {bad[:10]}")
        changed = check_checksums(path) if verify else []   # after the checks that say more about what is wrong
        if changed:
            raise StoreError(f"{changed[0]}; if you changed it on purpose, re-import the store (`wmprobe data import "
                             f"{path} NEW_DIR --format store` fingerprints it anew), else restore it")
        return store

    def save(self, path: str | os.PathLike) -> Path:
        return write_store(path, self.frames, self.actions, self.episode_ends, self.tasks, self.meta, self.states)


# ---- construction -----------------------------------------------------------------------------
def from_episodes(
    episodes: Iterable[tuple[np.ndarray, np.ndarray]],
    tasks: Sequence[int],
    *,
    fps: float,
    action_names: Sequence[str],
    action_groups: Mapping[str, Sequence[int]],
    task_names: Sequence[str],
    source: dict[str, Any],
    name: str | None = None,
    states: Sequence[np.ndarray] | None = None,
    state_names: Sequence[str] | None = None,
    extra_meta: dict[str, Any] | None = None,
) -> EpisodeStore:
    """Build an in-memory store from ``[(frames (T,H,W,3) uint8, actions (T,A) float32), ...]``; ``states``:
    one ``(T, S)`` array per episode (the proprioceptive state at each frame, named by ``state_names``);
    ``extra_meta``: more meta keys (descriptive: they do not enter the fingerprint)."""
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
        **(extra_meta or {}),
    }
    frames, actions = np.concatenate(frames_l), np.concatenate(actions_l)
    ends_a, tasks_a = np.asarray(ends, dtype=np.int64), np.asarray(tasks, dtype=np.int64)
    states_a = None
    if states is not None:
        states_l = [np.asarray(s, dtype=np.float32) for s in states]
        if len(states_l) != len(ends) or any(len(s) != len(a) for s, a in zip(states_l, actions_l)):
            raise StoreError(f"states: need one (T, S) array per episode with a row per frame, got "
                             f"{[len(s) for s in states_l]} rows for episodes of {[len(a) for a in actions_l]}")
        states_a = np.concatenate(states_l)
        meta["state_names"] = [str(n) for n in (state_names or [f"s{i}" for i in range(states_a.shape[-1])])]
    meta["fingerprint"] = compute_fingerprint(frames, actions, ends_a, tasks_a, meta, states_a)
    return EpisodeStore(frames, actions, ends_a, tasks_a, meta, states=states_a)


def write_store(path, frames, actions, episode_ends, tasks, meta, states=None) -> Path:
    """Write atomically: into a temp dir beside ``path``, validated, then renamed into place (``states``,
    ``(N, S)``, optional: written as ``states.npy``). ``path`` must be missing, empty or an EpisodeStore holding only
    wmprobe's files, else ``DestinationError`` (``_dest``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(meta)
    meta.setdefault("format", FORMAT)
    meta.setdefault("version", FORMAT_VERSION)
    if "fingerprint" not in meta:
        meta["fingerprint"] = compute_fingerprint(frames, actions, episode_ends, tasks, meta, states)
    problems = check_arrays(frames, actions, np.asarray(episode_ends), np.asarray(tasks), meta, states)
    if problems:
        raise StoreError(f"refusing to write invalid EpisodeStore to {path}: " + "; ".join(problems))
    with replacing_dir(path, "store") as tmp:
        np.save(tmp / "frames.npy", np.ascontiguousarray(frames, dtype=np.uint8))
        np.save(tmp / "actions.npy", np.ascontiguousarray(actions, dtype=np.float32))
        np.save(tmp / "episode_ends.npy", np.asarray(episode_ends, dtype=np.int64))
        np.save(tmp / "tasks.npy", np.asarray(tasks, dtype=np.int64))
        if states is not None:
            np.save(tmp / "states.npy", np.ascontiguousarray(states, dtype=np.float32))
        stamp_store(tmp)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True, default=str))
    return path


def open_cached(path: str | os.PathLike) -> "EpisodeStore | None":
    """A store the CACHE holds at ``path`` (generated data, the pretraining pool), or None when it is absent
    or unusable (truncated, checksum mismatch, garbage meta.json): a bad entry is moved aside and deleted with
    a warning, so the caller regenerates it. A user's own store is opened with ``EpisodeStore.load`` instead,
    where the same problems are errors naming the file."""
    import shutil
    import warnings
    path = Path(path)
    if not (path / "meta.json").exists():
        return None
    try:
        return EpisodeStore.load(path)
    except StoreError as exc:
        warnings.warn(f"cached store {path} is corrupt ({str(exc).split('; if you')[0]}): regenerating it",
                      stacklevel=2)
        trash = path.with_name(f".{path.name}.{os.getpid()}.corrupt")
        try:
            os.rename(path, trash)
        except OSError:
            return None
        shutil.rmtree(trash, ignore_errors=True)
        return None
