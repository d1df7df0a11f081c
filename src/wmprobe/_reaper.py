"""``python -m wmprobe._reaper OWNER_PID``: kill a local Ray cluster's processes when its driver goes.

A local Ray cluster that wmprobe starts (``study.executors.start_local_ray``) runs GCS, raylet, dashboard and
runtime-env agents and workers as separate processes. ``ray.shutdown()`` stops most of them, but after
``kill -9`` of the driver (and sometimes even after a shutdown) the agents outlive it, re-parented to init,
and Ray's ``setproctitle`` blanks their environment, so they cannot be found by an environment tag later.

So the driver starts this watcher beside the cluster and writes the pids of the cluster's root processes
(those ``ray.init`` started) to its stdin, one per line. Every half second the watcher records the process
tree under those roots (pid and start time, so a reused pid is never killed). When the driver dies (its end
of the pipe closes, or OWNER_PID is gone) or the driver writes ``stop``, it SIGKILLs every recorded process
that still runs, and what was started under them since, then exits. Linux (/proc) only; elsewhere it waits.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time

Proc = tuple[int, int]   # (pid, start time in clock ticks since boot): a pid that was reused is not the same


def _stat(pid: int) -> tuple[int, int, str] | None:
    """``(ppid, start time, state)`` of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[1]), int(fields[19]), fields[0].decode()
    except (OSError, IndexError, ValueError):
        return None


def processes() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, start time) of every live (non-zombie) process."""
    out = {}
    for d in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if d.isdigit():
            st = _stat(int(d))
            if st is not None and st[2] != "Z":
                out[int(d)] = st[:2]
    return out


def tree(roots: set[Proc]) -> set[Proc]:
    """The live processes in ``roots`` and every live descendant of them."""
    table = processes()
    kids: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    found = {(p, s) for p, s in roots if p in table and table[p][1] == s}
    stack = [p for p, _ in found]
    while stack:
        for c in kids.get(stack.pop(), ()):
            item = (c, table[c][1])
            if item not in found:
                found.add(item)
                stack.append(c)
    return found


def kill(procs: set[Proc], rounds: int = 10) -> int:
    """SIGKILL every process of ``procs`` (and what they started meanwhile) that still runs; returns how many."""
    killed: set[Proc] = set()
    for _ in range(rounds):
        todo = tree(procs | killed) - killed
        todo = {(p, s) for p, s in todo if p != os.getpid()}
        if not todo:
            break
        for pid, start in todo:
            st = _stat(pid)
            if st is not None and st[1] == start:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            killed.add((pid, start))
        time.sleep(0.1)
    return len(killed)


def as_proc(pid: int) -> Proc | None:
    st = _stat(pid)
    return (pid, st[1]) if st is not None else None


def main(argv: list[str]) -> int:
    from wmprobe._mp import alive
    owner = int(argv[0])
    roots: set[Proc] = set()
    seen: set[Proc] = set()
    done = threading.Event()

    def read() -> None:   # root pids, then "stop"; EOF means the driver is gone
        for line in sys.stdin:
            line = line.strip()
            if line == "stop":
                break
            if line.isdigit() and (p := as_proc(int(line))) is not None:
                roots.add(p)
        done.set()
    threading.Thread(target=read, daemon=True).start()
    while not done.is_set() and alive(owner):
        seen |= tree(roots | seen)
        done.wait(0.5)
    kill(roots | seen)
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a separate process
    sys.exit(main(sys.argv[1:]))
