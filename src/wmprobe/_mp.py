"""Worker processes that start clean and die with the process that started them.

Clean: forkserver (or spawn) contexts, never fork. Forking after torch, OpenMP or a renderer has started
threads can deadlock; forkserver/spawn children start from a fresh interpreter. ``hidden_main`` keeps children
from re-running the caller's script (a user script without an ``if __name__ == "__main__"`` guard would
otherwise run again in every worker).

Dying with their owner: every worker of a ``context()`` (a ``ProcessPoolExecutor`` or ``Pool`` built on it)
starts by calling ``die_with_owner``: on Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` makes the kernel kill it
when its parent (the forkserver, which itself exits when the main process dies) goes, and a watchdog thread
checks every second that the main process is alive and that the worker was not re-parented (the fallback
where prctl is not available). So ``kill -9`` or SIGTERM of the main process leaves no worker computing on for
minutes (docs/reliability.md, tests/test_process_cleanup.py).
"""
from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import multiprocessing.context as mpc
import os
import signal
import sys
import threading
import time
import types
from typing import Iterator, Sequence

from wmprobe._malloc import keep_freed_memory

PR_SET_PDEATHSIG = 1
WATCH_SECONDS = 1.0


def alive(pid: int) -> bool:
    """True while process ``pid`` exists and is not a zombie (a dead process its parent has not reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True   # no /proc (macOS): os.kill said it exists


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux only); False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def die_with_owner(owner: int) -> None:
    """Make this (worker) process die when ``owner`` (the main process) or its own parent dies."""
    parent = os.getppid()
    set_parent_death_signal()
    if not alive(owner) or os.getppid() != parent:   # the owner died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(WATCH_SECONDS)
            if os.getppid() != parent or not alive(owner):
                os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=watch, name="wmprobe-owner-watchdog", daemon=True).start()


class _Owned:
    """Mixin for a multiprocessing Process class: the child calls ``die_with_owner`` (with the pid of the
    process that created it) before its target runs."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._wmprobe_owner = os.getpid()

    def run(self) -> None:
        die_with_owner(self._wmprobe_owner)
        keep_freed_memory()   # no page faults per training step (_malloc)
        super().run()  # type: ignore[misc]   # a mixin: the Process class after it in the MRO has run()


class _OwnedForkServerProcess(_Owned, mpc.ForkServerProcess):
    """A forkserver process that dies with its owner."""


class _OwnedSpawnProcess(_Owned, mpc.SpawnProcess):
    """A spawned process that dies with its owner."""


class _ForkServerContext(mpc.ForkServerContext):
    Process = _OwnedForkServerProcess


class _SpawnContext(mpc.SpawnContext):
    Process = _OwnedSpawnProcess


def context(preload: Sequence[str] = ()) -> mp.context.BaseContext:
    """forkserver (preloading ``preload`` modules when the server starts) where available, else spawn; its
    processes die with the process that created them."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = _ForkServerContext()
        # the forkserver dies with its parent too; armed only from the main thread, because the kernel sends
        # the signal when the THREAD that started the forkserver exits
        guard = ["wmprobe._forkserver_guard"] if threading.current_thread() is threading.main_thread() else []
        ctx.set_forkserver_preload(guard + list(preload))
        return ctx
    return _SpawnContext()


@contextlib.contextmanager
def hidden_main() -> Iterator[None]:
    """While workers start, replace the caller's ``__main__`` by an empty module."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main
