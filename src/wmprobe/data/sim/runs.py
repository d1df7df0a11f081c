"""What every simulator suite shares: the ``tasks`` argument (``TaskSpec``, ``select_tasks``) and the episode
runner (``run_episodes``: one job per episode, in order, in this process or a pool of worker processes).

``generate`` (the pybullet suites) and ``metaworld`` both build on this module; neither imports the other's
internals through it.
"""
from __future__ import annotations

import difflib
import multiprocessing as mp
import os
from typing import Any, Callable, Sequence, Union

import numpy as np

from wmprobe._mp import hidden_main
from wmprobe._progress import progress_bar
from wmprobe.errors import ConfigError

TaskSpec = Union[None, int, str, Sequence[str]]  # None (the suite's default), a count, "all", "a,b", or names


def select_tasks(tasks: TaskSpec, names: Sequence[str], default: Sequence[str], label: str,
                 canon: Callable[[str], str] = str) -> list[str]:
    """The task names a run asks for, from ``names`` (all the suite's tasks, in their canonical order).

    ``None`` -> ``default``; ``"all"`` -> ``names``; a count ``N`` (an int or a string of digits) -> the first
    N of ``default`` followed by the other ``names`` in order (``N = len(names)`` is ``names``); a list, or a
    comma-separated string, of names -> those names in that order, each mapped by ``canon``. Unknown names,
    repeats, an empty list and a count outside ``1..len(names)`` are ConfigErrors; an unknown name's error
    lists the close matches."""
    if tasks is None:
        return list(default)
    if isinstance(tasks, str):
        text = tasks.strip()
        if text == "all":
            return list(names)
        tasks = int(text) if text.isdigit() else [t.strip() for t in text.split(",") if t.strip()]
    if isinstance(tasks, bool):
        raise ConfigError(f"{label}: tasks is all, a count or task names, not {tasks!r}")
    if isinstance(tasks, (int, np.integer)):
        return _first_tasks(int(tasks), names, default, label)
    given = [str(t) for t in tasks]
    chosen = [canon(t) for t in given]
    unknown = [(t, c) for t, c in zip(given, chosen) if c not in names]
    if unknown:
        raise ConfigError(f"{label} has no task " + "; no task ".join(_unknown(t, c, names) for t, c in unknown)
                          + f"; choose among its {len(names)} tasks ({', '.join(names[:6])}, ...), 'all' or a count")
    if not chosen or len(set(chosen)) != len(chosen):
        raise ConfigError(f"{label}: tasks must be a non-empty list without repeats, got {given}")
    return chosen


def _first_tasks(n: int, names: Sequence[str], default: Sequence[str], label: str) -> list[str]:
    """The first ``n`` of ``default`` then the rest of ``names``; all of ``names`` (in order) for ``n = len``."""
    if not 1 <= n <= len(names):
        raise ConfigError(f"{label} has {len(names)} tasks: a task count must be 1..{len(names)}, got {n}")
    if n == len(names):
        return list(names)
    return (list(default) + [t for t in names if t not in default])[:n]


def _unknown(given: str, name: str, names: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    return f"'{given}'" + (f" (did you mean {' or '.join(close)}?)" if close else "")


def run_episodes(job: Callable[[tuple[dict[str, Any], int]], Any], params: dict[str, Any], workers: int | None,
                 ctx: Callable[[], mp.context.BaseContext], desc: str, progress: bool,
                 on_serial_exit: Callable[[], None] | None = None) -> list[Any]:
    """``[job((params, i)) for i in range(params["episodes"])]``, in order, on ``workers`` processes of the
    context ``ctx()`` (default ``min(cpu count, 4)``; 1 runs in this process, then ``on_serial_exit``), with
    a progress bar on stderr when ``progress`` (``wmprobe._progress``: not when quiet)."""
    n_workers = max(1, min(int(workers or min(os.cpu_count() or 1, 4)), params["episodes"]))
    jobs = [(params, i) for i in range(params["episodes"])]
    bar = progress_bar(len(jobs), desc, progress, unit="ep")
    results = []
    try:
        if n_workers == 1:
            try:
                for j in jobs:
                    results.append(job(j))
                    bar.update(1)
            finally:
                if on_serial_exit is not None:
                    on_serial_exit()
        else:
            with hidden_main():
                pool = ctx().Pool(n_workers)
            with pool:
                for r in pool.imap(job, jobs, chunksize=1):
                    results.append(r)
                    bar.update(1)
    finally:
        bar.close()
    return results
