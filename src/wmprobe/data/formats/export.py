"""EpisodeStore -> LeRobot v3.0 dataset (one data file, one episodes file, one H.264 mp4 per camera).

Layout: meta/info.json, meta/stats.json (action stats), meta/tasks.parquet,
meta/episodes/chunk-000/file-000.parquet, data/chunk-000/file-000.parquet,
videos/observation.images.<cam>/chunk-000/file-000.mp4. Written into a temp directory renamed into place.
"""
from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import numpy as np

from wmprobe._fs import atomic_dir
from wmprobe.data.store import EpisodeStore
from wmprobe.errors import StoreError

ROWS = 4096  # rows per parquet row group / frames per streamed block


def _camera_name(store: EpisodeStore) -> str:
    cam = str((store.meta.get("source") or {}).get("camera") or "main")
    cam = cam.split("observation.images.")[-1]
    return re.sub(r"[^A-Za-z0-9_]+", "_", cam).strip("_") or "main"


def export_lerobot(store, dest) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq
    if not isinstance(store, EpisodeStore):
        store = EpisodeStore.load(store)
    dest = Path(dest)
    if dest.exists() and not (dest.is_dir() and ((dest / "meta" / "info.json").is_file() or not any(dest.iterdir()))):
        raise StoreError(f"destination {dest} exists and is not a LeRobot dataset; refusing to overwrite it")
    n, h, w = store.frames.shape[:3]
    if h % 2 or w % 2:
        raise StoreError(f"{store.name}: frames are {h}x{w}; H.264 (yuv420p) needs even sizes: re-import with an "
                         "even --size")
    fps = float(store.meta["fps"])
    key = f"observation.images.{_camera_name(store)}"
    names = list(store.meta["action_names"])
    tasks = list(store.meta["task_names"])
    with atomic_dir(dest, prefix=f".{dest.name}.tmp-") as tmp:
        (tmp / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
        (tmp / "data" / "chunk-000").mkdir(parents=True)
        vdir = tmp / "videos" / key / "chunk-000"
        vdir.mkdir(parents=True)
        _write_video(vdir / "file-000.mp4", store.frames, fps)

        starts, ends = store.episode_starts, store.episode_ends
        ep_of = store.episode_of_frame()
        schema = pa.schema([("action", pa.list_(pa.float32(), store.action_dim)), ("timestamp", pa.float32()),
                            ("frame_index", pa.int64()), ("episode_index", pa.int64()), ("index", pa.int64()),
                            ("task_index", pa.int64())])
        with pq.ParquetWriter(tmp / "data" / "chunk-000" / "file-000.parquet", schema) as wr:
            for i in range(0, n, ROWS):
                j = min(i + ROWS, n)
                a = np.ascontiguousarray(store.actions[i:j], dtype=np.float32)
                e = ep_of[i:j]
                fi = np.arange(i, j) - starts[e]
                wr.write_table(pa.table({
                    "action": pa.FixedSizeListArray.from_arrays(pa.array(a.reshape(-1)), store.action_dim),
                    "timestamp": pa.array((fi / fps).astype(np.float32)),
                    "frame_index": pa.array(fi.astype(np.int64)), "episode_index": pa.array(e.astype(np.int64)),
                    "index": pa.array(np.arange(i, j, dtype=np.int64)),
                    "task_index": pa.array(store.tasks[e].astype(np.int64))}, schema=schema))

        lengths = store.episode_lengths
        eps = {
            "episode_index": pa.array(np.arange(store.n_episodes, dtype=np.int64)),
            "tasks": pa.array([[tasks[int(t)]] for t in store.tasks], pa.list_(pa.string())),
            "length": pa.array(lengths.astype(np.int64)),
            "data/chunk_index": pa.array(np.zeros(store.n_episodes, np.int64)),
            "data/file_index": pa.array(np.zeros(store.n_episodes, np.int64)),
            "dataset_from_index": pa.array(starts.astype(np.int64)),
            "dataset_to_index": pa.array(ends.astype(np.int64)),
            f"videos/{key}/chunk_index": pa.array(np.zeros(store.n_episodes, np.int64)),
            f"videos/{key}/file_index": pa.array(np.zeros(store.n_episodes, np.int64)),
            f"videos/{key}/from_timestamp": pa.array(starts / fps),
            f"videos/{key}/to_timestamp": pa.array(ends / fps),
            "meta/episodes/chunk_index": pa.array(np.zeros(store.n_episodes, np.int64)),
            "meta/episodes/file_index": pa.array(np.zeros(store.n_episodes, np.int64)),
        }
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
            "total_frames": int(n), "total_tasks": len(tasks), "chunks_size": 1000,
            "data_files_size_in_mb": 100, "video_files_size_in_mb": 500, "fps": fps,
            "splits": {"train": f"0:{store.n_episodes}"},
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
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


def _write_video(path: Path, frames, fps: float) -> None:
    """All frames into one H.264 mp4 (yuv420p, CRF 10, no B-frames); frame i has timestamp i / fps."""
    import av
    rate = Fraction(fps).limit_denominator(1001)
    c = av.open(str(path), "w")
    try:
        s = c.add_stream("libx264", rate=rate)
        s.width, s.height, s.pix_fmt = int(frames.shape[2]), int(frames.shape[1]), "yuv420p"
        s.options = {"crf": "10", "bf": "0", "g": "30"}
        tb = 1 / rate
        for i in range(0, frames.shape[0], ROWS // 16):
            block = np.asarray(frames[i:i + ROWS // 16])
            for k, img in enumerate(block):
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
                vf.pts, vf.time_base = i + k, tb
                for p in s.encode(vf):
                    c.mux(p)
        for p in s.encode():
            c.mux(p)
    finally:
        c.close()
