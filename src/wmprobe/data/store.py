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

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from wmprobe._dest import replacing_dir
from wmprobe._fs import drop_pages
from wmprobe.errors import StoreError

FORMAT = "wmprobe-episodes"
FORMAT_VERSION = 1
AXIS_GROUPS = ("translation", "rotation", "gripper")
FILES = ("frames.npy", "actions.npy", "episode_ends.npy", "tasks.npy", "meta.json")
OPTIONAL_FILES = ("states.npy",)


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
        arrays = {}
        for name in ("frames", "actions", "episode_ends", "tasks"):
            f = path / f"{name}.npy"
            try:
                arrays[name] = np.load(f, mmap_mode="r" if mmap else None, allow_pickle=False)
            except (ValueError, OSError, EOFError) as exc:
                raise StoreError(f"{f} is corrupt or truncated: {exc}") from None
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
    action_groups: dict[str, Sequence[int]],
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
        h.update(np.ascontiguousarray(f[i : i + step]).reshape(-1))   # the same bytes as tobytes(), uncopied
        drop_pages(frames)  # a memory-mapped store's pages would otherwise stay in RSS (it grew with the store)
    keep = {k: meta.get(k) for k in ("fps", "action_names", "action_groups", "task_names")}
    if states is not None:
        keep["state_names"] = meta.get("state_names")
    h.update(json.dumps(keep, sort_keys=True).encode())
    return h.hexdigest()[:16]


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


# ---- integrity: checksums.json ----------------------------------------------------------------
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


# ---- validation -------------------------------------------------------------------------------
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
