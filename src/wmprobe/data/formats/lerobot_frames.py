"""LeRobot frames: PNG/JPEG bytes in the parquet data files (``dtype: image``) or mp4 videos (``dtype: video``,
decoded with PyAV through ``video.VideoReader``), yielded as ``(n, H, W, 3) uint8`` blocks of ``BLOCK`` frames.

``LeRobotFrames`` is the frame-reading half of ``lerobot.LeRobotSource``, which fills the attributes it declares.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from wmprobe.data.formats._common import Episode, FormatError, stack_blocks
from wmprobe.data.formats._paths import confine
from wmprobe.data.formats.lerobot_data import LeRobotData, _rel
from wmprobe.data.formats.video import VideoReader

BLOCK = 32


class LeRobotFrames(LeRobotData):
    """The selected camera's frames of an episode, checked against info.json's frame shape."""

    features: dict[str, dict[str, Any]]     # info.json's features
    links_out: bool                         # image paths may lead outside the dataset
    _video: VideoReader | None              # the open video, reused by the next episode of the same file

    def frames(self, ep: Episode) -> Iterator[np.ndarray]:
        single = self._image_frames if self.features[self.camera].get("dtype") == "image" else self._video_frames
        return stack_blocks(single(ep), BLOCK)

    def _image_frames(self, ep: Episode) -> Iterator[np.ndarray]:
        import pyarrow as pa
        import pyarrow.parquet as pq
        from PIL import Image, UnidentifiedImageError
        a, b = self._rows(ep)
        f: Path = ep.extra["data"]
        try:
            pf = pq.ParquetFile(f)
            if self.camera not in pf.schema_arrow.names:
                raise FormatError(f"{ep.where}: camera '{self.camera}' missing from the data file")
            starts = np.cumsum([0] + [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)])
            for g in range(pf.num_row_groups):
                lo, hi = max(a, starts[g]), min(b, starts[g + 1])
                if lo >= hi:
                    continue
                col = pf.read_row_group(g, columns=[self.camera]).column(0).slice(lo - starts[g], hi - lo)
                for k, item in enumerate(col.to_pylist()):
                    frame = lo - a + k
                    data = item.get("bytes") if isinstance(item, dict) else item
                    if data is None and isinstance(item, dict) and item.get("path"):
                        p = confine(self.path, str(item["path"]), f"{ep.where}: frame {frame} of "
                                    f"'{self.camera}' (image path)", self.links_out)
                        data = p.read_bytes() if p.is_file() else None
                    if data is None:
                        raise FormatError(f"{ep.where}: frame {frame} of '{self.camera}' has no image bytes")
                    try:
                        img = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
                    except (UnidentifiedImageError, OSError, ValueError) as exc:
                        raise FormatError(f"{ep.where}: frame {frame} of '{self.camera}' is not a readable "
                                          f"image ({exc})") from None
                    if self.frame_shape and img.shape[:2] != self.frame_shape:
                        raise FormatError(f"{ep.where}: frame {frame} is {img.shape[0]}x{img.shape[1]} but "
                                          f"info.json says {self.frame_shape[0]}x{self.frame_shape[1]}")
                    yield img
        except (pa.ArrowException, OSError) as exc:
            raise FormatError(f"{ep.where}: unreadable data file ({exc}); truncated?") from None

    def _video_frames(self, ep: Episode) -> Iterator[np.ndarray]:
        vpath: Path = ep.extra["video"]
        a, n, fps = float(ep.extra.get("from_ts", 0.0)), ep.length, self.fps
        vname = _rel(self.path, vpath)
        where = f"{vname}, episode {ep.index}"
        r = self._video
        if r is None or r.path != vpath or r.last_t > a + 0.5 / fps:
            if r is not None:
                r.close()
            r = self._video = VideoReader(vpath, where, start=a)
        r.where = where
        k_next = 0
        while k_next < n:
            item = r.next()
            if item is None:
                break
            t, fr = item
            k = int(round((t - a) * fps))
            if k < k_next:
                continue
            if k >= n:
                r.pending = item
                break
            if k > k_next:
                raise FormatError(f"{where}: frames {k_next}..{k - 1} of the episode are missing from the video "
                                  f"(timestamps jump from {a + k_next / fps:.3f} s to {t:.3f} s)")
            img = fr.to_ndarray(format="rgb24")
            if self.frame_shape and img.shape[:2] != self.frame_shape:
                raise FormatError(f"{where}: video frames are {img.shape[0]}x{img.shape[1]} but info.json says "
                                  f"{self.frame_shape[0]}x{self.frame_shape[1]}")
            yield img
            k_next += 1
        if k_next < n:
            raise FormatError(f"{where}: the video has {k_next} of the episode's {n} frames (from {a:.3f} s); "
                              "truncated video or metadata that disagrees with it")
