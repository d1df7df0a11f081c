"""EpisodeStore -> LeRobot v3.0 dataset: data parquets and H.264 mp4s that roll over by size, as LeRobot's.

Layout: meta/info.json, meta/stats.json (action stats), meta/tasks.parquet,
meta/episodes/chunk-000/file-000.parquet, data/chunk-CCC/file-FFF.parquet and
videos/observation.images.<cam>/chunk-CCC/file-FFF.mp4. A data or video file takes whole episodes until one
brings it to its size limit; the next episode starts the next file, and every ``chunks_size`` files a new
chunk directory. Data and video files roll over independently. Written into a temp directory renamed into
place.
"""
from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import numpy as np

from wmprobe._dest import check_dest, replacing_dir
from wmprobe._fs import drop_pages
from wmprobe.data.store import EpisodeStore
from wmprobe.errors import ConfigError, StoreError

ROWS = 4096  # rows per parquet row group at most
FRAMES = 256  # frames per streamed block
MB = 1024 * 1024  # LeRobot's megabyte
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"


def _camera_name(store: EpisodeStore) -> str:
    cam = str((store.meta.get("source") or {}).get("camera") or "main")
    cam = cam.split("observation.images.")[-1]
    return re.sub(r"[^A-Za-z0-9_]+", "_", cam).strip("_") or "main"


class _Rolling:
    """One family of files (the data parquets, or one camera's mp4s) written episode by episode.

    ``add`` opens the current file if needed, writes one episode and returns the (chunk, file) it went to;
    once the file holds ``limit_mb`` or more it is closed and the next episode opens file + 1 (file 0 of the
    next chunk after ``chunks_size`` files), so an episode never straddles two files.
    """

    def __init__(self, root: Path, pattern: str, limit_mb: float, chunks_size: int):
        self.root, self.pattern = root, pattern
        self.limit, self.chunks_size = float(limit_mb) * MB, int(chunks_size)
        self.chunk = self.file = 0
        self.size = 0  # bytes written to the current file so far
        self.is_open = False

    def add(self, *episode) -> tuple[int, int]:
        if not self.is_open:
            path = self.root / self.pattern.format(chunk_index=self.chunk, file_index=self.file)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._open(path)
            self.size, self.is_open = 0, True
        where = (self.chunk, self.file)
        self._write(*episode)
        if self.size >= self.limit:
            self.close()
            self.file += 1
            if self.file == self.chunks_size:
                self.chunk, self.file = self.chunk + 1, 0
        return where

    def close(self) -> None:
        if self.is_open:
            self._close()
            self.is_open = False

    def _open(self, path: Path) -> None:
        raise NotImplementedError

    def _write(self, *episode) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError


class _DataFiles(_Rolling):
    """Parquet data files; the size is the bytes the writer has put in the file (row groups, no footer)."""

    def __init__(self, root: Path, schema, limit_mb: float, chunks_size: int):
        super().__init__(root, DATA_PATH, limit_mb, chunks_size)
        self.schema = schema

    def _open(self, path: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq
        self.sink = pa.OSFile(str(path), "wb")
        self.writer = pq.ParquetWriter(self.sink, self.schema)

    def _write(self, tables) -> None:
        for t in tables:
            self.writer.write_table(t)
        self.size = self.sink.tell()

    def _close(self) -> None:
        self.writer.close()
        self.sink.close()


class _VideoFiles(_Rolling):
    """H.264 mp4s (yuv420p, CRF 10, no B-frames); each file's pts start at 0, frame i of a file is at i / fps.

    The size is the sum of the packets muxed so far: x264 holds back a few dozen frames, so a file can run
    past its limit by that much."""

    def __init__(self, root: Path, key: str, fps: float, shape: tuple[int, int], limit_mb: float,
                 chunks_size: int):
        super().__init__(root, VIDEO_PATH.replace("{video_key}", key), limit_mb, chunks_size)
        self.rate = Fraction(fps).limit_denominator(1001)
        self.shape = shape
        self.frame = 0  # frames in the current file so far

    def _open(self, path: Path) -> None:
        import av
        self.container = av.open(str(path), "w")
        s = self.stream = self.container.add_stream("libx264", rate=self.rate)
        s.height, s.width = self.shape
        s.pix_fmt = "yuv420p"
        s.options = {"crf": "10", "bf": "0", "g": "30"}
        self.frame = 0

    def _mux(self, packets) -> None:
        for p in packets:
            self.size += p.size
            self.container.mux(p)

    def _write(self, frames) -> None:
        import av
        for i in range(0, len(frames), FRAMES):
            for img in np.asarray(frames[i:i + FRAMES]):
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
                vf.pts, vf.time_base = self.frame, 1 / self.rate
                self._mux(self.stream.encode(vf))
                self.frame += 1

    def _close(self) -> None:
        try:
            self._mux(self.stream.encode())
        finally:
            self.container.close()


def _episode_tables(store: EpisodeStore, e: int, schema, fps: float):
    """The data rows of episode ``e`` as arrow tables of at most ROWS rows."""
    import pyarrow as pa
    s = store.episode_slice(e)
    for i in range(s.start, s.stop, ROWS):
        j = min(i + ROWS, s.stop)
        a = np.ascontiguousarray(store.actions[i:j], dtype=np.float32)
        fi = np.arange(i - s.start, j - s.start, dtype=np.int64)
        yield pa.table({
            "action": pa.FixedSizeListArray.from_arrays(pa.array(a.reshape(-1)), store.action_dim),
            "timestamp": pa.array((fi / fps).astype(np.float32)), "frame_index": pa.array(fi),
            "episode_index": pa.array(np.full(j - i, e, np.int64)), "index": pa.array(np.arange(i, j, dtype=np.int64)),
            "task_index": pa.array(np.full(j - i, int(store.tasks[e]), np.int64))}, schema=schema)


def export_lerobot(store, dest, *, data_files_size_in_mb: float = 100, video_files_size_in_mb: float = 500,
                   chunks_size: int = 1000) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq
    if not (data_files_size_in_mb > 0 and video_files_size_in_mb > 0):
        raise ConfigError(f"file size limits must be positive, got data {data_files_size_in_mb} MB, video "
                          f"{video_files_size_in_mb} MB")
    if int(chunks_size) != chunks_size or chunks_size < 1:
        raise ConfigError(f"chunks_size must be a positive integer, got {chunks_size}")
    dest = check_dest(dest, "lerobot")  # a LeRobot dataset wmprobe did not export is never written over
    if not isinstance(store, EpisodeStore):
        store = EpisodeStore.load(store)
    if store.path is not None:
        s, d = store.path.resolve(), dest.resolve()
        if s == d or s in d.parents or d in s.parents:
            raise StoreError(f"destination {dest} overlaps the store {store.path}; choose another directory")
    n, h, w = store.frames.shape[:3]
    if h % 2 or w % 2:
        raise StoreError(f"{store.name}: frames are {h}x{w}; H.264 (yuv420p) needs even sizes: re-import with an "
                         "even --size")
    fps = float(store.meta["fps"])
    key = f"observation.images.{_camera_name(store)}"
    names = list(store.meta["action_names"])
    tasks = list(store.meta["task_names"])
    schema = pa.schema([("action", pa.list_(pa.float32(), store.action_dim)), ("timestamp", pa.float32()),
                        ("frame_index", pa.int64()), ("episode_index", pa.int64()), ("index", pa.int64()),
                        ("task_index", pa.int64())])
    with replacing_dir(dest, "lerobot") as tmp:
        data = _DataFiles(tmp, schema, data_files_size_in_mb, chunks_size)
        video = _VideoFiles(tmp, key, fps, (int(h), int(w)), video_files_size_in_mb, chunks_size)
        cols: dict[str, list] = {c: [] for c in ("data/chunk_index", "data/file_index", f"videos/{key}/chunk_index",
                                                 f"videos/{key}/file_index", f"videos/{key}/from_timestamp",
                                                 f"videos/{key}/to_timestamp")}
        try:
            for e in range(store.n_episodes):
                dc, df = data.add(_episode_tables(store, e, schema, fps))
                t0 = video.frame / fps if video.is_open else 0.0
                vc, vf = video.add(store.frames[store.episode_slice(e)])
                drop_pages(store.frames)  # the store's read pages would otherwise stay in RSS
                t1 = t0 + int(store.episode_lengths[e]) / fps
                for c, v in zip(cols, (dc, df, vc, vf, t0, t1)):
                    cols[c].append(v)
        finally:
            data.close()
            video.close()

        starts, ends = store.episode_starts, store.episode_ends
        zeros = np.zeros(store.n_episodes, np.int64)
        eps = {
            "episode_index": pa.array(np.arange(store.n_episodes, dtype=np.int64)),
            "tasks": pa.array([[tasks[int(t)]] for t in store.tasks], pa.list_(pa.string())),
            "length": pa.array(store.episode_lengths.astype(np.int64)),
            "dataset_from_index": pa.array(starts.astype(np.int64)),
            "dataset_to_index": pa.array(ends.astype(np.int64)),
            **{c: pa.array(v, pa.float64() if c.endswith("timestamp") else pa.int64()) for c, v in cols.items()},
            "meta/episodes/chunk_index": pa.array(zeros), "meta/episodes/file_index": pa.array(zeros),
        }
        (tmp / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
        pq.write_table(pa.table(eps), tmp / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
        # tasks.parquet as pandas writes LeRobot's DataFrame: index "task" (the string), column task_index
        import pandas as pd
        pd.DataFrame({"task_index": np.arange(len(tasks), dtype=np.int64)},
                     index=pd.Index(tasks, name="task")).to_parquet(tmp / "meta" / "tasks.parquet")

        acts = np.asarray(store.actions, dtype=np.float64)
        stats = {"action": {"min": acts.min(0).tolist(), "max": acts.max(0).tolist(), "mean": acts.mean(0).tolist(),
                            "std": acts.std(0).tolist(), "count": [int(n)]}}
        (tmp / "meta" / "stats.json").write_text(json.dumps(stats, indent=2))
        scalar = {"dtype": None, "shape": [1], "names": None}
        info = {
            "codebase_version": "v3.0", "robot_type": None, "total_episodes": store.n_episodes,
            "total_frames": int(n), "total_tasks": len(tasks), "chunks_size": int(chunks_size),
            "data_files_size_in_mb": data_files_size_in_mb, "video_files_size_in_mb": video_files_size_in_mb,
            "fps": fps, "splits": {"train": f"0:{store.n_episodes}"}, "data_path": DATA_PATH, "video_path": VIDEO_PATH,
            "features": {
                key: {"dtype": "video", "shape": [int(h), int(w), 3], "names": ["height", "width", "channels"],
                      "info": {"video.height": int(h), "video.width": int(w), "video.codec": "h264",
                               "video.pix_fmt": "yuv420p", "video.is_depth_map": False, "video.fps": fps,
                               "video.channels": 3, "has_audio": False}},
                "action": {"dtype": "float32", "shape": [store.action_dim], "names": names},
                "timestamp": {**scalar, "dtype": "float32"}, "frame_index": {**scalar, "dtype": "int64"},
                "episode_index": {**scalar, "dtype": "int64"}, "index": {**scalar, "dtype": "int64"},
                "task_index": {**scalar, "dtype": "int64"},
            },
            "wmprobe": {"fingerprint": store.fingerprint, "action_groups": store.meta["action_groups"],
                        "source": store.meta.get("source")},
        }
        (tmp / "meta" / "info.json").write_text(json.dumps(info, indent=4, default=str))
    return dest
