"""Progress bars: one rule for when they show and one stand-in when they do not.

``progress_bar(total, desc, enabled, **tqdm_options)`` is a tqdm bar on stderr (``leave=False``) when ``enabled``
and the session is not quiet, else a ``NoBar`` whose methods do nothing, so callers never test for None.
Quiet: ``WMPROBE_QUIET`` set to anything but ``""`` or ``"0"`` (``wmprobe --quiet`` sets it to ``1``).
"""
from __future__ import annotations

import os
from typing import Any


def quiet() -> bool:
    """True when ``WMPROBE_QUIET`` asks for no progress output."""
    return os.environ.get("WMPROBE_QUIET", "") not in ("", "0")


class NoBar:
    """The methods of a tqdm bar that wmprobe calls, doing nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str, enabled: bool = True, **options: Any) -> Any:
    """A tqdm bar over ``total`` items named ``desc`` (``options``: tqdm's, e.g. ``unit="ep"``), or ``NoBar``
    when ``enabled`` is false, the session is quiet or tqdm is not installed."""
    if not enabled or quiet():
        return NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return NoBar()
    return tqdm(total=total, desc=desc, **{"leave": False, **options})
