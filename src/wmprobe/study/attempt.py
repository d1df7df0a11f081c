"""One task run the way every executor runs it: ``tasks.run_task`` with retries, its result or its error in an
``Outcome`` (a failure is reported in the records, never dropped); a job's batch of such attempts; the
progress bar the executors share."""
from __future__ import annotations

import os
import traceback
from dataclasses import dataclass
from typing import Any, Sequence


@dataclass
class Outcome:
    ok: bool
    value: Any = None
    error: str = ""
    attempts: int = 1


def _attempt(task: Any, cache_root: str, max_retries: int, threads: int | None = 1) -> Outcome:
    from wmprobe.study.tasks import run_task
    err = ""
    for attempt in range(1, max_retries + 2):
        try:
            return Outcome(True, run_task(task, cache_root, threads), attempts=attempt)
        except Exception as exc:  # noqa: BLE001 - reported in the records
            err = f"{type(exc).__name__}: {exc}"
            if os.environ.get("WMPROBE_DEBUG"):
                err += "\n" + traceback.format_exc()
            # a config or data error will not go away on retry
            from wmprobe.errors import WmprobeError
            if isinstance(exc, WmprobeError) and not isinstance(exc, OSError):
                return Outcome(False, error=err, attempts=attempt)
    return Outcome(False, error=err, attempts=max_retries + 1)


def run_batch(tasks: Sequence[Any], cache_root: str, max_retries: int, threads: int | None = 1) -> list[Outcome]:
    """A job's body: several tasks, each isolated (one failing does not stop the others)."""
    return [_attempt(t, cache_root, max_retries, threads) for t in tasks]


def _bar(total: int, desc: str, enabled: bool) -> Any:
    from wmprobe._progress import progress_bar
    return progress_bar(total, desc, enabled, unit="task", dynamic_ncols=True)
