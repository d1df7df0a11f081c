"""Keep freed tensor memory in the process instead of handing it back to the kernel after every step.

glibc serves every allocation above its mmap threshold (128 KiB, rising with frees to at most 32 MiB) with a
fresh ``mmap`` and returns it with ``munmap`` when freed. A training step of the zoo's conv trunk allocates
activations of 10-50 MiB, so every step maps new pages and takes a page fault for each 4 KiB of them: on the
compare preset's VAE, ~3,000 faults per step, 9 % of its CPU time in the kernel alone and 13-15 % of the wall
time with two worker processes side by side (docs/performance.md "Allocator"). Raising the mmap and trim
thresholds makes glibc reuse the freed blocks of its heap: the same bytes, the same results, no faults.

``keep_freed_memory()`` sets both thresholds (``mallopt``) once per process; it does nothing off glibc
(macOS, musl) and when ``WMPROBE_MALLOC=system`` asks for the allocator's own settings. The cost: the
process keeps its peak heap instead of shrinking between steps (its resident size stays near its peak).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
THRESHOLD = 1 << 30   # 1 GiB: above any single tensor the embedded studies allocate

_done: bool | None = None


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds in this process (once); True when they are set."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if not sys.platform.startswith("linux") or os.environ.get("WMPROBE_MALLOC", "").lower() == "system":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):   # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, THRESHOLD))
    return _done
