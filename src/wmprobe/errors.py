"""One exception family for every user-facing failure.

The CLI prints ``WmprobeError`` messages as one line (no traceback unless ``--debug``); anything else
is a bug and keeps its traceback.
"""
from __future__ import annotations


class WmprobeError(Exception):
    """A failure caused by input or configuration, with a message that says what and where."""


def disk_full(exc: BaseException) -> bool:
    """True for a write that failed for lack of space: ENOSPC / EDQUOT, or numpy's short-write OSError
    (``N requested and M written``), which carries no errno."""
    import errno
    if not isinstance(exc, OSError):
        return False
    return exc.errno in (errno.ENOSPC, errno.EDQUOT) or ("requested and" in str(exc) and "written" in str(exc))


class StoreError(WmprobeError):
    """An EpisodeStore (or a source being imported) is missing, corrupt or inconsistent."""


class FormatError(StoreError):
    """A source dataset (LeRobot, CALVIN, LIBERO) is missing, corrupt or inconsistent; names file and episode.
    (Re-exported by ``wmprobe.data.formats``; defined here so the store and the readers share it without a cycle.)"""


class ConfigError(WmprobeError):
    """A config or command-line option is invalid."""


class EncoderError(WmprobeError):
    """An encoder name, checkpoint or input does not fit the encoder contract."""


class ProbeError(WmprobeError):
    """Probe inputs are unusable (NaN, too few episodes, k longer than an episode, mismatched rows)."""
