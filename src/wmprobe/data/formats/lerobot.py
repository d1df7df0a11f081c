"""LeRobot datasets, codebase versions v2.0/v2.1 (one parquet and one mp4 per episode) and v3.0 (chunked
files holding many episodes), read with pyarrow and PyAV; frames from mp4 videos or PNG bytes in parquet.

The reading is split by job: lerobot_data.py (actions and states from the parquet data files),
lerobot_frames.py (images in parquet, videos through video.py); this module holds the dataset's layout
(meta/info.json, the versions' path templates) and its episode index, and re-exports the names others import.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wmprobe.data.formats._common import Episode, FormatError, note
from wmprobe.data.formats._paths import PathTemplate, confine, links_allowed
from wmprobe.data.formats.lerobot_data import _rel, arrow_to_matrix
from wmprobe.data.formats.lerobot_frames import BLOCK, LeRobotFrames
from wmprobe.data.formats.video import VIDEO_DEMUXERS, VideoReader

__all__ = ["BLOCK", "INDEX_KEYS", "NUMERIC", "STATE_KEY", "V2_DATA", "V2_VIDEO", "V3_DATA", "V3_VIDEO",
           "VIDEO_DEMUXERS", "LeRobotSource", "VideoReader", "arrow_to_matrix"]

V2_DATA = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
V2_VIDEO = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
V3_DATA = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
V3_VIDEO = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
STATE_KEY = "observation.state"   # imported as the store's states (the action key may not be it)
INDEX_KEYS = ("timestamp", "frame_index", "episode_index", "index", "task_index")
NUMERIC = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")


class LeRobotSource(LeRobotFrames):
    format = "lerobot"
    state_key: str | None = None

    def __init__(self, path, allow_symlinks_out: bool | None = None):
        self.path = root = Path(path)
        self.links_out = links_allowed(allow_symlinks_out)
        f = root / "meta" / "info.json"
        if not f.is_file():
            raise FormatError(f"{root}: not a LeRobot dataset (no meta/info.json)")
        f = self._meta(f)
        try:
            info = json.loads(f.read_text())
            self.version = str(info["codebase_version"])
            self.fps = float(info["fps"])
            self.features: dict[str, dict] = dict(info["features"])
        except (ValueError, KeyError, TypeError) as exc:
            raise FormatError(f"{f}: invalid LeRobot info.json ({type(exc).__name__}: {exc})") from None
        if self.version not in ("v2.0", "v2.1", "v3.0"):
            raise FormatError(f"{f}: LeRobot codebase_version {self.version} is not supported (v2.0, v2.1, v3.0)")
        self.v3 = self.version.startswith("v3")
        self.info_json = info
        cs = info.get("chunks_size") or 1000
        if isinstance(cs, bool) or not isinstance(cs, (int, str)) or not str(cs).isdigit() or int(cs) < 1:
            raise FormatError(f"{f}: chunks_size must be a positive integer, got {cs!r}")
        self.chunks_size = int(cs)
        # checked templates: only the documented fields, resolved inside the dataset (data/formats/_paths.py)
        self.data_path = PathTemplate(info.get("data_path") or (V3_DATA if self.v3 else V2_DATA), "data_path", f)
        self.video_path = PathTemplate(info.get("video_path") or (V3_VIDEO if self.v3 else V2_VIDEO), "video_path", f)
        self.cameras = [k for k, v in self.features.items()
                        if isinstance(v, dict) and v.get("dtype") in ("video", "image")]
        self.action_keys = [k for k, v in self.features.items() if isinstance(v, dict) and k not in INDEX_KEYS
                            and v.get("dtype") in NUMERIC and len(v.get("shape") or [1]) == 1]
        cams = [c for c in self.cameras if c.startswith("observation.images.")] or self.cameras
        # None when the dataset has none: select() then says so (Source types them as selected)
        self.camera = cams[0] if cams else None  # type: ignore[assignment]
        self.action_key = ("action" if "action" in self.action_keys  # type: ignore[assignment]
                           else (self.action_keys[0] if self.action_keys else None))
        self._data_cache = {}
        self._video = None

    # ---- paths: inside the dataset only ----------------------------------------------------------------
    def _meta(self, f: Path) -> Path:
        """A metadata file of the dataset, refused if a symbolic link takes it outside."""
        return confine(self.path, f, str(f), self.links_out)

    def _path(self, tpl: PathTemplate, **values) -> Path:
        """``tpl`` formatted with ``values`` and confined to the dataset (names info.json's field on refusal)."""
        return confine(self.path, tpl.format(**values), f"{self.path / 'meta' / 'info.json'} {tpl.field}",
                       self.links_out)

    # ---- selection and metadata ----------------------------------------------------------------------
    def select(self, camera, action_key) -> None:
        super().select(camera, action_key)
        if self.camera is None:
            raise FormatError(f"{self.path}: meta/info.json lists no video or image feature")
        if self.action_key is None:
            raise FormatError(f"{self.path}: meta/info.json lists no numeric action feature")
        self.frame_shape = self._shape(self.camera)
        shp = self.features[self.action_key].get("shape") or [1]
        self.action_dim = int(shp[0])
        names = self.features[self.action_key].get("names")
        if isinstance(names, dict) and len(names) == 1:
            names = next(iter(names.values()))
        self.action_names = list(names) if isinstance(names, list) else None
        self.state_key = STATE_KEY if STATE_KEY in self.action_keys and STATE_KEY != self.action_key else None
        if self.state_key is not None:
            dim = int((self.features[STATE_KEY].get("shape") or [1])[0])
            sn = self.features[STATE_KEY].get("names")
            if isinstance(sn, dict) and len(sn) == 1:
                sn = next(iter(sn.values()))
            self.state_names = ([str(n) for n in sn] if isinstance(sn, list) and len(sn) == dim
                                else [f"state_{i}" for i in range(dim)])

    def _shape(self, key: str) -> tuple[int, int] | None:
        ft = self.features[key]
        shape, names = list(ft.get("shape") or []), ft.get("names")
        if len(shape) != 3:
            return None
        if isinstance(names, list) and names and names[0] in ("channels", "channel", "c"):
            return int(shape[1]), int(shape[2])
        return int(shape[0]), int(shape[1])

    def tasks(self) -> list[str]:
        root = self.path
        if self.v3:
            f = root / "meta" / "tasks.parquet"
            if not f.is_file():
                return []
            f = self._meta(f)
            import pyarrow as pa
            import pyarrow.parquet as pq
            try:
                t = pq.read_table(f)
            except (pa.ArrowException, OSError) as exc:
                raise FormatError(f"{f}: unreadable ({exc})") from None
            names = [c for c in t.column_names if pa.types.is_string(t.schema.field(c).type)
                     or pa.types.is_large_string(t.schema.field(c).type)]
            if not names:
                return []
            vals = t.column(names[0]).to_pylist()
            if "task_index" in t.column_names:
                order = t.column("task_index").to_pylist()
                vals = [v for _, v in sorted(zip(order, vals))]
            return [str(v) for v in vals]
        f = root / "meta" / "tasks.jsonl"
        out = {}
        for i, row in enumerate(self._jsonl(f, required=False)):
            out[int(row.get("task_index", i))] = str(row.get("task"))
        return [out[k] for k in sorted(out)]

    def _jsonl(self, f: Path, required: bool = True, problems: list[str] | None = None) -> list[dict]:
        if not f.is_file():
            if required:
                raise FormatError(f"{f} is missing")
            return []
        f = self._meta(f)
        rows = []
        for n, line in enumerate(f.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                note(problems, FormatError(f"{f} line {n}: invalid JSON ({exc}); truncated file?"))
        return rows

    def episodes(self, problems: list[str] | None = None) -> list[Episode]:
        found: list[str] = []  # this listing's problems: the totals are checked only against a complete one
        eps = self._episodes_v3(found) if self.v3 else self._episodes_v2(found)
        if found:
            if problems is None:
                raise FormatError(found[0])
            problems.extend(found)
            return eps
        total_e, total_f = self.info_json.get("total_episodes"), self.info_json.get("total_frames")
        info_f = self.path / "meta" / "info.json"
        frames = sum(e.length for e in eps)
        if total_e is not None and int(total_e) != len(eps):
            note(problems, FormatError(f"{info_f}: total_episodes is {total_e} but the episode metadata lists "
                                       f"{len(eps)}"))
        elif total_f is not None and int(total_f) != frames:
            note(problems, FormatError(f"{info_f}: total_frames is {total_f} but the episodes hold {frames} frames"))
        return eps

    def _episodes_v2(self, problems: list[str]) -> list[Episode]:
        f = self.path / "meta" / "episodes.jsonl"
        tasks = self.tasks()
        eps = []
        for n, row in enumerate(self._jsonl(f, problems=problems)):
            try:
                idx, length = int(row["episode_index"]), int(row["length"])
            except (KeyError, TypeError, ValueError) as exc:
                problems.append(f"{f} line {n + 1}: episode entry lacks {exc}")
                continue
            if length <= 0:
                problems.append(f"{f}: episode {idx} has length {length}")
                continue
            task = (row.get("tasks") or [None])[0]
            if task is None:
                task = tasks[0] if len(tasks) == 1 else "task"
            chunk = idx // self.chunks_size
            data = self._path(self.data_path, episode_chunk=chunk, episode_index=idx, chunk_index=chunk,
                              file_index=idx)
            video = self._path(self.video_path, episode_chunk=chunk, video_key=self.camera, episode_index=idx,
                               chunk_index=chunk, file_index=idx)
            eps.append(Episode(idx, length, str(task), f"{_rel(self.path, data)}, episode {idx}",
                               {"data": data, "video": video, "from_ts": 0.0}))
        return eps

    def _episodes_v3(self, problems: list[str]) -> list[Episode]:
        import pyarrow as pa
        import pyarrow.parquet as pq
        files = [self._meta(f) for f in sorted((self.path / "meta" / "episodes").glob("chunk-*/file-*.parquet"))]
        if not files:
            raise FormatError(f"{self.path / 'meta' / 'episodes'}: no chunk-XXX/file-XXX.parquet episode metadata")
        vk = f"videos/{self.camera}/"
        need = ["episode_index", "length", "dataset_from_index", "dataset_to_index", "data/chunk_index",
                "data/file_index"]
        video = self.features[self.camera].get("dtype") == "video"
        if video:
            need += [vk + "chunk_index", vk + "file_index", vk + "from_timestamp", vk + "to_timestamp"]
        eps = []
        for f in files:
            try:
                schema = pq.read_schema(f)
                missing = [c for c in need if c not in schema.names]
                if missing:
                    problems.append(f"{f}: episode metadata lacks column(s) {missing}")
                    continue
                cols = need + (["tasks"] if "tasks" in schema.names else [])
                rows = pq.read_table(f, columns=cols).to_pylist()
            except (pa.ArrowException, OSError) as exc:
                problems.append(f"{f}: unreadable episode metadata ({exc}); truncated file?")
                continue
            for k, r in enumerate(rows):
                try:
                    eps.append(self._episode_v3(r, _rel(self.path, f), vk if video else None))
                except FormatError as exc:
                    problems.append(str(exc))
                except (TypeError, ValueError) as exc:  # a null or non-numeric entry
                    problems.append(f"{f} row {k}: bad episode entry ({exc})")
        eps.sort(key=lambda e: e.index)
        return eps

    def _episode_v3(self, r: dict, meta_file: str, vk: str | None) -> Episode:
        """One row of meta/episodes (``vk``: the camera's ``videos/<key>/`` column prefix, None for images)."""
        idx, length = int(r["episode_index"]), int(r["length"])
        fr, to = int(r["dataset_from_index"]), int(r["dataset_to_index"])
        data = self._path(self.data_path, chunk_index=int(r["data/chunk_index"]),
                          file_index=int(r["data/file_index"]))
        where = f"{_rel(self.path, data)}, episode {idx}"
        if to - fr != length:
            raise FormatError(f"{where}: {meta_file} says length {length} but index range {fr}:{to} "
                              f"({to - fr} frames)")
        extra: dict[str, Any] = {"data": data, "from_index": fr, "to_index": to}
        if vk is not None:
            vpath = self._path(self.video_path, video_key=self.camera, chunk_index=int(r[vk + "chunk_index"]),
                               file_index=int(r[vk + "file_index"]))
            a, b = float(r[vk + "from_timestamp"]), float(r[vk + "to_timestamp"])
            if abs((b - a) * self.fps - length) > 1.01:
                raise FormatError(f"{where}: {meta_file} gives video timestamps {a:.3f}-{b:.3f} s "
                                  f"({(b - a) * self.fps:.1f} frames at {self.fps:g} fps) for {length} frames")
            extra.update(video=vpath, from_ts=a)
        tasks = r.get("tasks") or ["task"]
        return Episode(idx, length, str(tasks[0]), where, extra)

    def close(self) -> None:
        if self._video is not None:
            self._video.close()
            self._video = None
        self._data_cache.clear()

    def info(self) -> dict[str, Any]:
        i = self.info_json
        tasks = self.tasks()
        return {
            "format": "lerobot", "version": self.version, "path": str(self.path),
            "episodes": i.get("total_episodes"), "frames": i.get("total_frames"), "fps": self.fps,
            "robot_type": i.get("robot_type"),
            "cameras": {k: {"dtype": self.features[k].get("dtype"), "shape": self.features[k].get("shape")}
                        for k in self.cameras},
            "default_camera": self.camera,
            "action_keys": {k: (self.features[k].get("shape") or [1])[0] for k in self.action_keys},
            "default_action_key": self.action_key,
            "tasks": len(tasks), "task_names": tasks[:20],
        }
