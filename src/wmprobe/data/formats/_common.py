"""Shared pieces of the readers: the error type, the source interface, action axes, resizing and the
streaming EpisodeStore writer (preallocated memory-mapped arrays in a temp dir renamed into place)."""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from wmprobe._dest import check_dest, real_dest, write_marker
from wmprobe._fs import drop_pages, make_temp_dir, swap_dir
from wmprobe._progress import progress_bar as _progress_bar
from wmprobe.data.store import (FORMAT, FORMAT_VERSION, FILES, check_arrays, compute_fingerprint,
                                nonfinite_episodes)
from wmprobe.errors import FormatError, StoreError

def stack_blocks(frames: Iterable[np.ndarray], size: int = 32) -> Iterator[np.ndarray]:
    """Group single frames ``(H, W, 3)`` into stacked blocks ``(<= size, H, W, 3)``: readers stream an episode
    with bounded memory."""
    buf: list[np.ndarray] = []
    for img in frames:
        buf.append(img)
        if len(buf) == size:
            yield np.stack(buf)
            buf = []
    if buf:
        yield np.stack(buf)


@dataclass
class Episode:
    """One episode of a source, as its metadata describes it (before reading any frame)."""

    index: int                      # the source's own episode id
    length: int                     # frames (== actions) the metadata promises
    task: str
    where: str                      # "file, episode N" for messages
    extra: dict[str, Any] = field(default_factory=dict)


class Source:
    """A dataset on disk. Subclasses fill the attributes in ``__init__`` and implement the three readers."""

    format: str = "?"
    version: str | None = None
    path: Path
    fps: float = 10.0
    cameras: list[str]
    action_keys: list[str]
    camera: str
    action_key: str
    frame_shape: tuple[int, int] | None = None   # native (H, W) of the selected camera, if known up front
    action_dim: int | None = None
    action_names: list[str] | None = None
    # the format's documented action layout (CALVIN, LIBERO: 7-dim EE deltas; a store: its own groups), or None:
    # then the groups come from action_names or --action-groups, never from positions (data/formats/groups.py)
    action_convention: dict[str, list[int]] | None = None
    convention_names: list[str] | None = None
    # the proprioceptive state the format records per frame (LeRobot observation.state, LIBERO ee_pos +
    # gripper_states, CALVIN robot_obs), named per column; None when the source has none
    state_names: list[str] | None = None

    def select(self, camera: str | None, action_key: str | None) -> None:
        if camera is not None:
            if camera not in self.cameras:
                raise FormatError(f"{self.path}: camera '{camera}' not found; this {self.format} dataset has "
                                  f"{self.cameras or 'no cameras'}")
            self.camera = camera
        if action_key is not None:
            if action_key not in self.action_keys:
                raise FormatError(f"{self.path}: action key '{action_key}' not found; this {self.format} "
                                  f"dataset has {self.action_keys or 'no action keys'}")
            self.action_key = action_key

    def episodes(self, problems: list[str] | None = None) -> list[Episode]:
        """The episodes the metadata lists, in order. A metadata problem of one file or episode raises one
        FormatError; with a ``problems`` list it is appended there instead and that file or episode left out
        (validation goes on reading the rest)."""
        raise NotImplementedError

    def actions(self, ep: Episode) -> np.ndarray:
        raise NotImplementedError

    def frames(self, ep: Episode) -> Iterator[np.ndarray]:
        """Yield ``(n, H, W, 3) uint8`` blocks of the episode's frames, in order."""
        raise NotImplementedError

    def states(self, ep: Episode) -> np.ndarray | None:
        """``(T, S) float32``: the state at each frame of the episode (``state_names``), or None when this
        episode (or the source) has none."""
        return None

    def info(self) -> dict[str, Any]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def source_meta(self) -> dict[str, Any]:
        return {"kind": "import", "path": str(self.path), "format": self.format, "version": self.version,
                "camera": self.camera, "action_key": self.action_key}


def note(problems: list[str] | None, exc: FormatError) -> None:
    """Raise ``exc`` (an import stops at the first problem) or, when validating, append it to ``problems``;
    the caller then skips the file or episode it is about."""
    if problems is None:
        raise exc
    problems.append(str(exc))


# ---- checks -----------------------------------------------------------------------------------------
def check_actions(a: Any, ep: Episode, *, dim: int | None = None) -> np.ndarray:
    """``(T, A) float32`` of exactly ``ep.length`` finite rows, or one FormatError naming the episode."""
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError) as exc:
        raise FormatError(f"{ep.where}: actions are ragged or not numeric ({exc})") from None
    if arr.dtype.kind not in "fiub":
        raise FormatError(f"{ep.where}: actions must be numeric, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise FormatError(f"{ep.where}: actions must be (T, A), got shape {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise FormatError(f"{ep.where}: actions have {arr.shape[1]} dims, expected {dim}")
    if arr.shape[0] != ep.length:
        raise FormatError(f"{ep.where}: {arr.shape[0]} actions but the metadata says {ep.length} frames")
    arr = arr.astype(np.float32)
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise FormatError(f"{ep.where}: NaN or inf actions at step(s) {np.nonzero(bad)[0][:10].tolist()}")
    return arr


def check_frames(block: Any, where: str, shape: tuple[int, int] | None = None) -> np.ndarray:
    arr = np.asarray(block)
    if arr.ndim == 3 and shape is None:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise FormatError(f"{where}: frames must be (T, H, W, 3) RGB, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise FormatError(f"{where}: frames must be uint8, got {arr.dtype}")
    if shape is not None and tuple(arr.shape[1:3]) != tuple(shape):
        raise FormatError(f"{where}: frames are {arr.shape[1]}x{arr.shape[2]} but the metadata says "
                          f"{shape[0]}x{shape[1]}")
    return arr


def resize_block(block: np.ndarray, size: int | None) -> np.ndarray:
    """``(n, H, W, 3) -> (n, size, size, 3)``: the centred ``min(H, W)`` square is cropped out (the aspect ratio
    is kept; the longer side loses ``(max - min) / 2`` pixels at each end), then resized with Pillow BILINEAR
    (antialiased). ``size=None`` or an already square ``size x size`` block is returned as is."""
    if size is None or block.shape[1:3] == (size, size):
        return block
    from PIL import Image
    h, w = block.shape[1:3]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    out = np.empty((block.shape[0], size, size, 3), np.uint8)
    for i, img in enumerate(block):
        sq = np.ascontiguousarray(img[top:top + side, left:left + side])
        out[i] = np.asarray(Image.fromarray(sq).resize((size, size), Image.BILINEAR))
    return out


def describe_resize(shape: tuple[int, int] | None, size: int | None) -> str:
    """One line saying what ``resize_block`` does to frames of ``shape = (H, W)``."""
    if size is None:
        return f"frames kept at their native size{f' {shape[0]}x{shape[1]}' if shape else ''} (--size N resizes)"
    if shape is None:
        return f"frames centre-cropped to a square and resized to {size}x{size}"
    h, w = shape
    crop = "" if h == w else f", centre-cropped to {min(h, w)}x{min(h, w)} (aspect kept)"
    return f"frames {h}x{w}{crop}, resized to {size}x{size}"


def progress_bar(total: int, desc: str, enabled: bool) -> Any:
    """A bar over imported frames (``wmprobe._progress``)."""
    return _progress_bar(total, desc, enabled, unit="frame")


# ---- streaming writer -------------------------------------------------------------------------------
def looks_like_store(path: Path) -> bool:
    try:
        return json.loads((path / "meta.json").read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def prepare_dest(dest: Path, src: Path | None = None) -> None:
    """Refuse to write over the source itself, or anything that is not an EpisodeStore holding only wmprobe's
    files (``wmprobe._dest.check_dest``): a missing or empty ``dest`` is fine."""
    if src is not None:
        s, d = src.resolve(), dest.resolve()
        if s == d or s in d.parents or d in s.parents:
            raise StoreError(f"destination {dest} overlaps the source {src}; choose another directory")
    check_dest(dest, "store")


class StoreWriter:
    """Write an EpisodeStore of known size frame block by frame block, in bounded memory.

    Arrays are preallocated ``np.lib.format.open_memmap`` files in a temp directory beside ``dest``;
    ``finish`` validates, fingerprints and renames into place; ``abort`` (or any exception inside a
    ``with`` block) deletes the temp directory, so ``dest`` never holds a half-written store.
    """

    def __init__(self, dest: str | os.PathLike, n_frames: int, height: int, width: int, action_dim: int,
                 n_episodes: int, state_dim: int | None = None):
        self.dest = real_dest(dest)   # a link to a store: replaced where it points, the link kept
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = make_temp_dir(self.dest.parent, f".{self.dest.name}.tmp-")
        try:
            self.frames = np.lib.format.open_memmap(self.tmp / "frames.npy", mode="w+", dtype=np.uint8,
                                                    shape=(n_frames, height, width, 3))
            self.actions = np.lib.format.open_memmap(self.tmp / "actions.npy", mode="w+", dtype=np.float32,
                                                     shape=(n_frames, action_dim))
            if state_dim:   # states are kept only if every episode has them (``states_missing`` says which not)
                self.states = np.lib.format.open_memmap(self.tmp / "states.npy", mode="w+", dtype=np.float32,
                                                        shape=(n_frames, int(state_dim)))
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        self.ends = np.zeros(n_episodes, np.int64)
        self.tasks = np.zeros(n_episodes, np.int64)
        self.row = 0
        self.n_ep = 0
        self.states_missing: str | None = None if state_dim else "the source records no state"

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()

    def add_episode(self, actions: np.ndarray, frame_blocks, task_id: int, where: str, size: int | None,
                    bar=None, states: np.ndarray | None = None) -> None:
        t = len(actions)
        start = self.row
        if start + t > self.frames.shape[0]:
            raise FormatError(f"{where}: more frames than the metadata announced")
        self.actions[start:start + t] = actions
        if self.states_missing is None:
            if states is None:
                self.states_missing = f"{where} has none"
            else:
                st = np.asarray(states, dtype=np.float32)
                if st.shape != (t, self.states.shape[1]) or not np.isfinite(st).all():
                    raise FormatError(f"{where}: states must be {t} finite rows of {self.states.shape[1]} "
                                      f"values, got shape {st.shape}" + ("" if np.isfinite(st).all() else
                                                                         " with NaN or inf"))
                self.states[start:start + t] = st
        filled = 0
        for block in frame_blocks:
            block = resize_block(block, size)
            if tuple(block.shape[1:]) != tuple(self.frames.shape[1:]):
                raise FormatError(f"{where}: frames are {block.shape[1]}x{block.shape[2]}, expected "
                                  f"{self.frames.shape[1]}x{self.frames.shape[2]} (frame size changes within "
                                  "the dataset; pass size= to resize)")
            if filled + len(block) > t:
                raise FormatError(f"{where}: more than {t} frames for {t} actions")
            self.frames[start + filled:start + filled + len(block)] = block
            drop_pages(self.frames)  # written pages would otherwise stay in RSS: it grew with the dataset
            filled += len(block)
            if bar is not None:
                bar.update(len(block))
        if filled != t:
            raise FormatError(f"{where}: {filled} frames for {t} actions")
        self.row += t
        self.ends[self.n_ep] = self.row
        self.tasks[self.n_ep] = task_id
        self.n_ep += 1

    def finish(self, meta: dict[str, Any]) -> Path:
        try:
            if self.row != self.frames.shape[0] or self.n_ep != len(self.ends):
                raise FormatError(f"import wrote {self.row} of {self.frames.shape[0]} frames and {self.n_ep} "
                                  f"of {len(self.ends)} episodes")
            meta = dict(meta)
            meta.setdefault("format", FORMAT)
            meta.setdefault("version", FORMAT_VERSION)
            self.frames.flush()
            self.actions.flush()
            states = None
            if hasattr(self, "states"):
                if self.states_missing is None:
                    self.states.flush()
                    states = self.states
                else:
                    del self.states
                    (self.tmp / "states.npy").unlink()
            if states is None:
                meta.pop("state_names", None)
                if meta.get("state_names_wanted"):
                    meta.setdefault("source", {})["states"] = f"not imported: {self.states_missing}"
            meta.pop("state_names_wanted", None)
            problems = check_arrays(self.frames, self.actions, self.ends, self.tasks, meta, states)
            if problems:
                raise StoreError(f"refusing to write invalid EpisodeStore to {self.dest}: " + "; ".join(problems))
            bad = nonfinite_episodes(self.actions, self.ends)
            if bad:
                raise StoreError(f"NaN or inf actions in imported episode(s) {bad[:10]}")
            meta["fingerprint"] = compute_fingerprint(self.frames, self.actions, self.ends, self.tasks, meta, states)
            np.save(self.tmp / "episode_ends.npy", self.ends)
            np.save(self.tmp / "tasks.npy", self.tasks)
            (self.tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True, default=str))
            del self.frames, self.actions  # close the memmaps before the rename
            if hasattr(self, "states"):
                del states, self.states
            from wmprobe.data.store import stamp_store
            stamp_store(self.tmp)          # sizes, mtimes and checksums (after the last write to the arrays)
            assert all((self.tmp / f).is_file() for f in FILES)
            write_marker(self.tmp, "store")
            check_dest(self.dest, "store")  # still ours to replace (checked before the import, too)
            swap_dir(self.tmp, self.dest)
        except BaseException:
            self.abort()
            raise
        return self.dest

    def abort(self) -> None:
        for name in ("frames", "actions", "states"):
            if hasattr(self, name):
                delattr(self, name)
        shutil.rmtree(self.tmp, ignore_errors=True)
