"""One exception family for every user-facing failure.

The CLI prints ``WmprobeError`` messages as one line (no traceback unless ``--debug``); anything else
is a bug and keeps its traceback.
"""
from __future__ import annotations


class WmprobeError(Exception):
    """A failure caused by input or configuration, with a message that says what and where."""


class StoreError(WmprobeError):
    """An EpisodeStore (or a source being imported) is missing, corrupt or inconsistent."""


class ConfigError(WmprobeError):
    """A config or command-line option is invalid."""


class EncoderError(WmprobeError):
    """An encoder name, checkpoint or input does not fit the encoder contract."""


class ProbeError(WmprobeError):
    """Probe inputs are unusable (NaN, too few episodes, k longer than an episode, mismatched rows)."""
