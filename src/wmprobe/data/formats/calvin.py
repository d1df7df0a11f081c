"""CALVIN (mees/calvin): one ``episode_XXXXXXX.npz`` per step, ``ep_start_end_ids.npy`` with INCLUSIVE
(start, end) frame ids per play segment, in a split directory ``training/`` or ``validation/``. Given the
dataset root, the reader takes ``split`` (default ``training``, else ``validation`` when only that exists).

Language annotations (``lang_annotations/auto_lang_ann.npy``) are a pickled dict; they are read only with
an explicit opt-in (``allow_pickle=True`` / ``WMPROBE_ALLOW_PICKLE=1``), never by default.

``robot_obs`` (15 numbers per step) becomes the store's states, without its last entry (the gripper action,
a copy of the command the probe predicts): ``STATE_NAMES``.
"""
from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from wmprobe.data.formats._common import Episode, FormatError, Source, check_actions, note, stack_blocks
from wmprobe.data.formats._paths import confine, links_allowed

FPS = 30.0  # CALVIN's play data is recorded at 30 Hz
BLOCK = 32
ACTION_NAMES = ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]
ALIASES = {"static": "rgb_static", "gripper": "rgb_gripper"}
SPLITS = ("training", "validation")
STATE_NAMES = ["tcp_x", "tcp_y", "tcp_z", "tcp_roll", "tcp_pitch", "tcp_yaw", "gripper_width",
               *(f"joint_{i}" for i in range(7))]   # robot_obs[:14]; robot_obs[14] is the gripper action


def split_dirs(root: Path) -> list[str]:
    """The split directories under a CALVIN root that hold an ``ep_start_end_ids.npy`` (CALVIN's first)."""
    found = [d.name for d in root.iterdir() if (d / "ep_start_end_ids.npy").is_file()] if root.is_dir() else []
    return sorted(found, key=lambda n: (SPLITS.index(n) if n in SPLITS else len(SPLITS), n))


def find_split(path: Path, split: str | None) -> Path:
    """The split directory to read: ``path`` itself when it holds ``ep_start_end_ids.npy`` (then ``split``,
    if given, must be its name), else ``path/split`` (``split`` None: ``training``, else ``validation``)."""
    if (path / "ep_start_end_ids.npy").is_file():
        if split is not None and split != path.name:
            raise FormatError(f"{path} is itself the CALVIN split '{path.name}'; pass its parent directory to "
                              f"read split '{split}'")
        return path
    found = split_dirs(path)
    if not found:
        raise FormatError(f"{path}: not a CALVIN split (no ep_start_end_ids.npy here or in training/, validation/)")
    if split is None:
        return path / ("training" if "training" in found else "validation" if "validation" in found else found[0])
    if split not in found:
        raise FormatError(f"{path}: no CALVIN split '{split}' (no {split}/ep_start_end_ids.npy); this dataset "
                          f"has {found}")
    return path / split


class CalvinSource(Source):
    """``split``: the split directory under ``path`` to read (``training``, ``validation``; None: training
    if present, else validation). When ``path`` is a split directory itself, ``split`` must be None or its
    name."""
    format = "calvin"

    def __init__(self, path, allow_pickle: bool = False, split: str | None = None,
                 allow_symlinks_out: bool | None = None):
        self.path = p = Path(path)
        self.links_out = links_allowed(allow_symlinks_out)
        self.split = sp = find_split(p, split)
        self.version = None
        self.fps = FPS
        self.allow_pickle = bool(allow_pickle)
        f = self._inside(sp / "ep_start_end_ids.npy")
        try:
            ids = np.load(f, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise FormatError(f"{f}: unreadable or truncated ({exc})") from None
        ids = np.asarray(ids)
        if ids.ndim == 1 and ids.shape == (2,):
            ids = ids[None]
        if ids.ndim != 2 or ids.shape[1] != 2 or ids.dtype.kind not in "iu" or len(ids) == 0:
            raise FormatError(f"{f}: expected an (E, 2) integer array of inclusive (start, end) ids, got "
                              f"{ids.dtype} {ids.shape}")
        self.ids = ids.astype(np.int64)
        self.cameras = ["rgb_static", "rgb_gripper"]
        self.action_keys = ["rel_actions", "actions"]
        self.camera, self.action_key = "rgb_static", "rel_actions"
        self.action_dim, self.action_names = 7, list(ACTION_NAMES)
        # CALVIN's rel_actions and actions are both 7-dim: tcp position (3), euler angles (3), gripper (1)
        self.action_convention = {"translation": [0, 1, 2], "rotation": [3, 4, 5], "gripper": [6]}
        self.lang_file = sp / "lang_annotations" / "auto_lang_ann.npy"
        self.state_names = list(STATE_NAMES)

    def select(self, camera, action_key) -> None:
        super().select(ALIASES.get(camera, camera) if camera else None, action_key)

    def _inside(self, f: Path) -> Path:
        """``f`` (a file of the dataset), refused if a symbolic link takes it outside (data/formats/_paths.py)."""
        return confine(self.path, f, str(f), self.links_out)

    def _name(self, fid: int) -> str:
        return f"{self.split.name}/episode_{fid:07d}.npz"

    def episodes(self, problems: list[str] | None = None) -> list[Episode]:
        f = self.split / "ep_start_end_ids.npy"
        order = np.argsort(self.ids[:, 0], kind="stable")
        prev_end, bad = -1, set()
        for i in order:
            s, e = (int(x) for x in self.ids[i])
            if s < 0 or e < s:
                exc = FormatError(f"{f}: episode {i} has ids ({s}, {e}); expected 0 <= start <= end (inclusive)")
            elif s <= prev_end:
                exc = FormatError(f"{f}: episode {i} ({s}, {e}) overlaps the previous range ending at {prev_end}")
            else:
                prev_end = e
                continue
            note(problems, exc)
            bad.add(int(i))
        if self.allow_pickle and self.lang_file.is_file():
            return self._lang_episodes(problems)
        return [Episode(i, int(e - s + 1), "calvin", f"{self._name(int(s))}..{self._name(int(e))} (episode {i})",
                        {"start": int(s), "end": int(e)}) for i, (s, e) in enumerate(self.ids) if i not in bad]

    def _lang_episodes(self, problems: list[str] | None) -> list[Episode]:
        """Annotated windows as episodes (task = CALVIN task id); windows overlapping a kept one are dropped."""
        f = self._inside(self.lang_file)
        try:
            d = np.load(f, allow_pickle=True).item()  # opt-in only: unpickling runs code from the file
            tasks, windows = list(d["language"]["task"]), [tuple(int(x) for x in w) for w in d["info"]["indx"]]
        except Exception as exc:  # any malformed pickle / layout
            raise FormatError(f"{f}: cannot read CALVIN language annotations ({type(exc).__name__}: {exc})") from None
        if len(tasks) != len(windows):
            raise FormatError(f"{f}: {len(tasks)} tasks for {len(windows)} annotated windows")
        eps, last = [], -1
        for k in sorted(range(len(windows)), key=lambda k: windows[k]):
            s, e = windows[k]
            if s <= last:
                continue
            inside = (self.ids[:, 0] <= s) & (e <= self.ids[:, 1])
            if e < s or not inside.any():
                note(problems, FormatError(f"{f}: annotation {k} ({s}, {e}) is not inside any ep_start_end_ids "
                                           "range"))
                continue
            eps.append(Episode(k, e - s + 1, str(tasks[k]), f"{self._name(s)}..{self._name(e)} (annotation {k})",
                               {"start": s, "end": e}))
            last = e
        return eps

    def _read(self, ep: Episode, fid: int, key: str) -> np.ndarray:
        f = self.split / f"episode_{fid:07d}.npz"
        where = f"{self._name(fid)} (episode {ep.index})"
        if not f.is_file():
            raise FormatError(f"{where}: step file is missing")
        f = self._inside(f)
        try:
            with np.load(f, allow_pickle=False) as z:
                if key not in z.files:
                    raise FormatError(f"{where}: key '{key}' missing (has {sorted(z.files)})")
                return z[key]
        except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError) as exc:
            raise FormatError(f"{where}: corrupt or truncated npz ({exc})") from None

    def actions(self, ep: Episode) -> np.ndarray:
        rows = []
        for fid in range(ep.extra["start"], ep.extra["end"] + 1):
            a = self._read(ep, fid, self.action_key)
            if a.shape != (7,) or a.dtype.kind not in "fiu":
                raise FormatError(f"{self._name(fid)} (episode {ep.index}): '{self.action_key}' must be 7 numbers, "
                                  f"got {a.dtype} {a.shape}")
            if not np.isfinite(a).all():
                raise FormatError(f"{self._name(fid)} (episode {ep.index}): NaN or inf in '{self.action_key}'")
            rows.append(a)
        return check_actions(np.stack(rows), ep, dim=7)

    def states(self, ep: Episode) -> np.ndarray | None:
        """``robot_obs[:14]`` of every step ``(T, 14)``, or None when a step lacks a 15-number ``robot_obs``."""
        rows = []
        for fid in range(ep.extra["start"], ep.extra["end"] + 1):
            try:
                r = np.asarray(self._read(ep, fid, "robot_obs"))
            except FormatError:
                return None
            if r.shape != (15,) or r.dtype.kind not in "fiu":
                return None
            rows.append(r[:14])
        return np.stack(rows).astype(np.float32)

    def frames(self, ep: Episode) -> Iterator[np.ndarray]:
        return stack_blocks(self._frames(ep), BLOCK)

    def _frames(self, ep: Episode) -> Iterator[np.ndarray]:
        shape = None
        for fid in range(ep.extra["start"], ep.extra["end"] + 1):
            img = self._read(ep, fid, self.camera)
            where = f"{self._name(fid)} (episode {ep.index})"
            if img.ndim != 3 or img.shape[-1] != 3 or img.dtype != np.uint8:
                raise FormatError(f"{where}: '{self.camera}' must be (H, W, 3) uint8, got {img.dtype} {img.shape}")
            if shape is not None and img.shape != shape:
                raise FormatError(f"{where}: '{self.camera}' is {img.shape}, earlier steps are {shape}")
            shape = img.shape
            yield img

    def info(self) -> dict[str, Any]:
        lengths = self.ids[:, 1] - self.ids[:, 0] + 1
        shapes = {}
        first = int(self.ids[0, 0])
        f = self.split / f"episode_{first:07d}.npz"
        try:
            f = self._inside(f)
            with np.load(f, allow_pickle=False) as z:
                shapes = {k: list(z[k].shape) for k in z.files if k in self.cameras + self.action_keys}
        except Exception:  # info stays cheap and never fails on a bad step; validate reports it
            shapes = {}
        splits = split_dirs(self.split.parent)
        return {
            "format": "calvin", "version": None, "path": str(self.path), "split": self.split.name,
            "splits": splits or [self.split.name], "episodes": int(len(self.ids)), "frames": int(lengths.sum()),
            "fps": self.fps, "cameras": {c: shapes.get(c) for c in self.cameras}, "default_camera": self.camera,
            "action_keys": {k: 7 for k in self.action_keys}, "default_action_key": self.action_key,
            "language_annotations": self.lang_file.is_file(),
            "tasks": "calvin (single task; language annotations need allow_pickle / WMPROBE_ALLOW_PICKLE=1)"
            if not self.allow_pickle else "from lang_annotations/auto_lang_ann.npy",
        }

    def source_meta(self) -> dict[str, Any]:
        return {**super().source_meta(), "split": self.split.name, "language_annotations":
                bool(self.allow_pickle and self.lang_file.is_file())}
