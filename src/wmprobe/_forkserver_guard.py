"""Imported (as a preload module) by the multiprocessing forkserver that ``wmprobe._mp.context`` starts: the
kernel kills the forkserver when the process that started it dies (``PR_SET_PDEATHSIG``, Linux), so no
forkserver is left behind after ``kill -9`` of the main process. Importing it anywhere else does nothing."""
from __future__ import annotations

import sys


def _in_forkserver() -> bool:
    fs = sys.modules.get("multiprocessing.forkserver")
    return fs is not None and sys.argv[:1] == ["-c"] and "multiprocessing.resource_tracker" not in sys.argv[0]


if _in_forkserver():
    from wmprobe._mp import set_parent_death_signal
    set_parent_death_signal()
