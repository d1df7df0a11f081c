"""Video files decoded with PyAV: one sequential reader per file that remembers its position, so consecutive
episodes stored in one file (LeRobot v3.0) decode it once. Frames come out as PyAV frames with their
timestamps; the caller converts them (``frame.to_ndarray(format="rgb24")``: ``(H, W, 3) uint8``)."""
from __future__ import annotations

import math
from pathlib import Path

from wmprobe.data.formats._common import FormatError

VIDEO_DEMUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}


class VideoReader:
    """Sequential PyAV decoder that remembers its position, so consecutive episodes of one file decode once."""

    def __init__(self, path: Path, where: str, start: float = 0.0):
        try:
            import av
        except ImportError:
            raise FormatError(f"{where}: decoding video needs PyAV: install the formats extra "
                              "(`pip install -c constraints.txt -e '.[formats]'`)") from None
        self.path, self.where = path, where
        if not path.is_file():
            raise FormatError(f"{where}: video file {path} is missing")
        demuxer = VIDEO_DEMUXERS.get(path.suffix.lower())
        if demuxer is None:  # never let FFmpeg probe the format: a playlist or concat script would open others
            raise FormatError(f"{where}: video file {path} is not {', '.join(VIDEO_DEMUXERS)}; refusing to open it")
        try:
            self.container = av.open(str(path), format=demuxer)
            self.stream = self.container.streams.video[0]
        except (av.error.FFmpegError, OSError, IndexError) as exc:
            raise FormatError(f"{where}: cannot open video {path} ({exc})") from None
        self.stream.thread_type = "AUTO"
        if start > 0:
            try:
                self.container.seek(int(start / self.stream.time_base), stream=self.stream, backward=True)
            except av.error.FFmpegError:
                self.container.seek(0, stream=self.stream)
        self._it = self.container.decode(self.stream)
        self.pending = None
        self.last_t = -math.inf

    def next(self):
        import av
        if self.pending is not None:
            item, self.pending = self.pending, None
            return item
        try:
            f = next(self._it)
        except StopIteration:
            return None
        except (av.error.FFmpegError, OSError) as exc:
            raise FormatError(f"{self.where}: video {self.path} is corrupt or truncated ({exc})") from None
        t = f.time if f.time is not None else float(f.pts * self.stream.time_base)
        self.last_t = t
        return t, f

    def close(self) -> None:
        try:
            self.container.close()
        except Exception:  # pragma: no cover
            pass
