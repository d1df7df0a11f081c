"""LIBERO (Lifelong-Robot-Learning/LIBERO): robomimic-style hdf5, one file per task, demos under
``data/demo_i`` with ``actions (T, 7)`` and ``obs/agentview_rgb``, ``obs/eye_in_hand_rgb`` ``(T, H, W, 3)``.
The proprioceptive state ``obs/ee_pos (T, 3)`` + ``obs/gripper_states (T, 2)`` becomes the store's states.

The stored images are MuJoCo's bottom-up renders: they are rotated by 180 degrees on read (rows AND
columns reversed, ``img[::-1, ::-1]``), the convention of the LeRobot/OpenVLA/openpi LIBERO pipelines
(docs/footguns.md).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from wmprobe.data.formats._common import Episode, FormatError, Source, check_actions, note
from wmprobe.data.formats._paths import PathEscapeError, confine, links_allowed

FPS = 20.0  # LIBERO's control frequency
BLOCK = 32
FLIP_ROWS, FLIP_COLS = True, True
ALIASES = {"agentview": "agentview_rgb", "eye_in_hand": "eye_in_hand_rgb", "wrist": "eye_in_hand_rgb"}
STATE_KEYS = (("ee_pos", ("ee_x", "ee_y", "ee_z")), ("gripper_states", None))   # obs datasets -> state columns


def _demo_key(name: str) -> tuple[int, str]:
    m = re.search(r"(\d+)$", name)
    return (int(m.group(1)) if m else 1 << 30, name)


def demo_cameras(g) -> list[str]:
    """The image datasets (``*_rgb``, ``*_image``) under a demo group's ``obs``; [] without an ``obs`` group."""
    obs = g.get("obs")
    return [k for k in obs.keys() if k.endswith("_rgb") or k.endswith("_image")] if obs is not None else []


def self_contained(h, where: str) -> None:
    """Refuse (PathEscapeError) an HDF5 file that would make a read open another file: an external link, a
    dataset kept in external raw files, or a virtual dataset. LIBERO files are self-contained; none of these
    is ever followed (``--allow-symlinks-out`` does not change that)."""
    import h5py
    found: list[str] = []

    def link(name, lk):  # visiting stops at the first non-None return
        if isinstance(lk, h5py.ExternalLink):
            found.append(f"'{name}' is an HDF5 external link to {lk.filename}:{lk.path}")
            return True
        return None

    def dataset(name, o):
        if isinstance(o, h5py.Dataset) and o.external:
            found.append(f"dataset '{name}' keeps its data in external file(s) {[str(e[0]) for e in o.external][:3]}")
        elif isinstance(o, h5py.Dataset) and o.is_virtual:
            found.append(f"dataset '{name}' is a virtual dataset mapping "
                         f"{sorted({str(v.file_name) for v in o.virtual_sources()})[:3]}")
        return True if found else None

    if hasattr(h, "visititems_links"):  # h5py >= 3.11; external links are not followed by either visit
        h.visititems_links(link)
    if not found:
        h.visititems(dataset)
    if found:
        raise PathEscapeError(f"{where}: {found[0]}; refusing to read it (LIBERO files must be self-contained)")


def task_from_filename(path: Path) -> str:
    stem = re.sub(r"_demo$", "", path.stem)
    # LIBERO-90 / LIBERO-10 names start with the scene ("KITCHEN_SCENE3_..."); the rest is the instruction
    stem = re.sub(r"^(?:[A-Z]+_)+SCENE\d+_", "", stem)
    return stem.replace("_", " ")


class LiberoSource(Source):
    format = "libero"

    def __init__(self, path, allow_symlinks_out: bool | None = None):
        import h5py  # noqa: F401  (fail early with ImportError if the formats extra is missing)
        self.path = p = Path(path)
        self.links_out = links_allowed(allow_symlinks_out)
        if p.is_file():
            self.files = [p]
        else:
            self.files = sorted([*p.glob("*.hdf5"), *p.glob("*.h5")])
        if not self.files:
            raise FormatError(f"{p}: no LIBERO .hdf5 files")
        self.version = None
        self.fps = FPS
        self._open: tuple[Path, Any] | None = None
        self._no_camera: FormatError | None = None  # set by _keys when no demo has image datasets
        self.cameras, self.action_keys = self._keys()
        # None when no demo has images: select() then raises the error naming it (Source types it as selected)
        self.camera = ("agentview_rgb" if "agentview_rgb" in self.cameras  # type: ignore[assignment]
                       else (self.cameras[0] if self.cameras else None))
        self.action_key = "actions"
        self.action_dim, self.action_names = None, None
        # LIBERO's actions are 7-dim end-effector deltas: xyz (3), axis-angle rotation (3), gripper (1)
        self.action_convention = {"translation": [0, 1, 2], "rotation": [3, 4, 5], "gripper": [6]}
        self.convention_names = ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]

    def _file(self, f: Path):
        import h5py
        if self._open is not None and self._open[0] == f:
            return self._open[1]
        self.close()
        if not f.is_file():
            raise FormatError(f"{f}: file is missing")
        if f != self.path:  # a file found in the dataset directory must lie inside it (the path given may not)
            confine(self.path, f, str(f), self.links_out)
        try:
            h = h5py.File(f, "r")
        except OSError as exc:
            raise FormatError(f"{f.name}: not a readable HDF5 file ({exc}); truncated?") from None
        try:
            self_contained(h, f.name)
        except BaseException:
            h.close()
            raise
        self._open = (f, h)
        return h

    def _keys(self) -> tuple[list[str], list[str]]:
        """Cameras of the first demo that has image datasets, in file and demo order. If no demo has any,
        ``([], ["actions"])`` and ``select`` raises the error naming the first such demo; if no readable file
        has demos, the first file's error."""
        first: FormatError | None = None
        for f in self.files:
            try:
                h = self._file(f)
            except FormatError as exc:
                first = first or exc
                continue
            data = h.get("data")
            demos = sorted(data.keys(), key=_demo_key) if data is not None else []
            if not demos:
                first = first or FormatError(f"{f.name}: no data/demo_* groups")
                continue
            for d in demos:
                cams = demo_cameras(data[d])
                if cams:
                    return cams, ["actions"]
                self._no_camera = self._no_camera or FormatError(
                    f"{f.name}, episode {d}: no *_rgb image datasets under data/{d}/obs"
                    + (" (the demo has no 'obs' group)" if data[d].get("obs") is None else ""))
        if self._no_camera is not None:
            return [], ["actions"]
        assert first is not None   # self.files is never empty (__init__), so some file set it
        raise first

    def select(self, camera, action_key) -> None:
        super().select(ALIASES.get(camera, camera) if camera else None, action_key)
        if self.camera is None:
            raise self._no_camera or FormatError(f"{self.files[0].name}: no *_rgb image datasets under "
                                                 "data/demo_*/obs")
        self.action_dim = 7
        self.state_names = self._state_names()

    def _state_names(self) -> list[str] | None:
        """Column names of ``STATE_KEYS`` from the first demo that has an ``obs`` group, or None when it lacks
        one of them."""
        for f in self.files:
            try:
                data = self._file(f).get("data")
            except FormatError:
                continue
            for d in sorted(data.keys(), key=_demo_key) if data is not None else []:
                obs = data[d].get("obs")
                if obs is None:
                    continue
                names: list[str] = []
                for key, cols in STATE_KEYS:
                    if key not in obs or obs[key].ndim != 2:
                        return None
                    n = int(obs[key].shape[1])
                    names += list(cols) if cols and len(cols) == n else [f"{key}_{i}" for i in range(n)]
                return names
        return None

    def states(self, ep: Episode) -> np.ndarray | None:
        """``obs/ee_pos`` and ``obs/gripper_states`` side by side ``(T, 5)``, or None if the demo lacks them."""
        obs = self._group(ep).get("obs")
        try:
            parts = [np.asarray(obs[key][()], np.float32) for key, _ in STATE_KEYS]
        except (OSError, KeyError, TypeError):
            return None
        if any(p.ndim != 2 or p.shape[0] != ep.length for p in parts):
            return None
        st = np.concatenate(parts, axis=1)
        return st if self.state_names and st.shape[1] == len(self.state_names) else None

    def task_name(self, f: Path, h) -> str:
        raw = h["data"].attrs.get("problem_info") if "data" in h else None
        if raw is not None:
            try:
                info = json.loads(raw if isinstance(raw, str) else bytes(raw).decode())
                if info.get("language_instruction"):
                    return str(info["language_instruction"])
            except (ValueError, TypeError, AttributeError):
                pass
        return task_from_filename(f)

    def episodes(self, problems: list[str] | None = None) -> list[Episode]:
        eps: list[Episode] = []
        for f in self.files:
            try:
                h = self._file(f)
                if "data" not in h:
                    raise FormatError(f"{f.name}: no 'data' group (not a robomimic/LIBERO file)")
                if not len(h["data"]):
                    raise FormatError(f"{f.name}: no data/demo_* groups")
            except FormatError as exc:
                note(problems, exc)
                continue
            task = self.task_name(f, h)
            for d in sorted(h["data"].keys(), key=_demo_key):
                try:
                    eps.append(self._episode(f, d, h["data"][d], task, len(eps)))
                except FormatError as exc:
                    note(problems, exc)
        return eps

    @staticmethod
    def _episode(f: Path, d: str, g, task: str, index: int) -> Episode:
        where = f"{f.name}, episode {d}"
        if "actions" not in g:
            raise FormatError(f"{where}: no 'actions' dataset")
        n = int(g["actions"].shape[0])
        ns = g.attrs.get("num_samples")
        if ns is not None and int(ns) != n:
            raise FormatError(f"{where}: attribute num_samples={int(ns)} but actions has {n} rows")
        if n <= 0:
            raise FormatError(f"{where}: empty demo")
        return Episode(index, n, task, where, {"file": f, "demo": d})

    def _group(self, ep: Episode):
        return self._file(ep.extra["file"])["data"][ep.extra["demo"]]

    def actions(self, ep: Episode) -> np.ndarray:
        try:
            a = self._group(ep)["actions"][()]
        except (OSError, KeyError) as exc:
            raise FormatError(f"{ep.where}: cannot read actions ({exc})") from None
        return check_actions(a, ep, dim=7)

    def frames(self, ep: Episode) -> Iterator[np.ndarray]:
        g = self._group(ep)
        obs = g.get("obs")
        if obs is None:
            raise FormatError(f"{ep.where}: no 'obs' group (camera 'obs/{self.camera}' missing)")
        if self.camera not in obs:
            raise FormatError(f"{ep.where}: camera 'obs/{self.camera}' missing")
        ds = obs[self.camera]
        if ds.ndim != 4 or ds.shape[-1] != 3 or ds.dtype != np.uint8:
            raise FormatError(f"{ep.where}: obs/{self.camera} must be (T, H, W, 3) uint8, got {ds.dtype} {ds.shape}")
        if ds.shape[0] != ep.length:
            raise FormatError(f"{ep.where}: obs/{self.camera} has {ds.shape[0]} frames but actions has {ep.length}")
        for i in range(0, ep.length, BLOCK):
            try:
                block = ds[i:i + BLOCK]
            except OSError as exc:
                raise FormatError(f"{ep.where}: cannot read obs/{self.camera} frames {i}.. ({exc}); "
                                  "truncated?") from None
            if FLIP_ROWS:
                block = block[:, ::-1]
            if FLIP_COLS:
                block = block[:, :, ::-1]
            yield np.ascontiguousarray(block)

    def close(self) -> None:
        if self._open is not None:
            try:
                self._open[1].close()
            finally:
                self._open = None

    def info(self) -> dict[str, Any]:
        tasks, n_eps, n_frames = [], 0, 0
        shapes: dict[Any, Any] = {}
        for f in self.files:
            try:
                h = self._file(f)
            except FormatError:  # info stays cheap and never fails on a bad file; validate reports it
                continue
            data = h.get("data")
            if data is None:
                continue
            tasks.append(self.task_name(f, h))
            for d in data.keys():
                g = data[d]
                n_eps += 1
                n_frames += int(g["actions"].shape[0]) if "actions" in g else 0
                if not shapes and "obs" in g:
                    shapes = {k: list(g["obs"][k].shape[1:]) for k in self.cameras if k in g["obs"]}
        return {"format": "libero", "version": None, "path": str(self.path), "files": len(self.files),
                "episodes": n_eps, "frames": n_frames, "fps": self.fps, "cameras": shapes,
                "default_camera": self.camera, "action_keys": {"actions": 7}, "default_action_key": "actions",
                "tasks": len(tasks), "task_names": tasks[:20], "flip": "rows and columns (180 degrees)"}
