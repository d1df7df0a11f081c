"""Executors: run a list of study tasks here (local), on SLURM (submitit) or on Ray; same results everywhere.

Every executor calls ``tasks.run_task(task, cache_root)`` and returns one ``Outcome`` per task, in task
order. A task that raises is retried up to ``max_retries`` times; after that its Outcome carries the error and
the runner writes it into the records (``error`` column): a failure is reported, never dropped.

- ``local``: on this machine with a progress bar: in this process (``workers: 1``) or in a pool of ``workers``
  clean processes (default: one per core up to 4 on CPU, 1 on GPU); memory bounded by one task per worker.
- ``submitit``: SLURM job arrays (``cluster: slurm``), or submitit's LocalExecutor (``cluster: local``, what
  the tests use) or in-process debug executor (``cluster: debug``). ``tasks_per_job`` tasks share a job (default
  1: one task per shard or cell). Jobs are checkpointable: on preemption or timeout submitit requeues them, and
  since tasks are idempotent the requeued job skips what it already finished. Partition, GPUs, time, memory
  come from the study's ``executor.submitit`` block.
- ``ray``: Ray tasks on ``executor.ray.address`` (an existing cluster), or on a local Ray started here, bound
  to 127.0.0.1 and shut down at the end. Ray retries failed tasks (``max_retries``, ``retry_exceptions``).

The local executor and the factories the registry (executor_registry.py) names are here; the others are in
submitit_executor.py and ray_executor.py, one task's attempts (``Outcome``, retries) in attempt.py; their names
are re-exported here.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from wmprobe.errors import ConfigError
from wmprobe.study.attempt import Outcome, _attempt, _bar, run_batch
from wmprobe.study.executor_registry import EXECUTORS
from wmprobe.study.ray_executor import RayExecutor, _ray_task, start_local_ray, stop_local_ray
from wmprobe.study.submitit_executor import SubmititExecutor, _CheckpointableBatch

__all__ = ["EXECUTORS", "LocalExecutor", "Outcome", "RayExecutor", "SubmititExecutor", "_CheckpointableBatch",
           "_attempt", "_ray_task", "local_workers", "make_executor", "run_batch", "start_local_ray",
           "stop_local_ray"]


class LocalExecutor:
    """Tasks on this machine: in this process (``workers=1``) or in a pool of clean worker processes.

    Results never depend on ``workers``: every task runs with the study's fixed torch thread count."""
    name = "local"

    def __init__(self, max_retries: int = 2, progress: bool = True, workers: int = 1, threads: int | None = 1):
        self.max_retries, self.progress, self.threads = max_retries, progress, threads
        self.workers = max(1, int(workers))
        self._pool = None

    def map(self, tasks: Sequence[Any], cache_root: str, desc: str = "tasks") -> list[Outcome]:
        bar = _bar(len(tasks), desc, self.progress)
        out: list[Outcome | None] = [None] * len(tasks)
        if self.workers == 1 or len(tasks) == 1:
            for i, t in enumerate(tasks):
                out[i] = _attempt(t, cache_root, self.max_retries, self.threads)
                bar.update(1)
        else:
            from concurrent.futures import as_completed
            pool = self._get_pool()
            futures = {pool.submit(_attempt, t, cache_root, self.max_retries, self.threads): i
                       for i, t in enumerate(tasks)}
            for f in as_completed(futures):
                try:
                    out[futures[f]] = f.result()
                except Exception as exc:  # noqa: BLE001 - a worker process died (OOM kill, segfault)
                    out[futures[f]] = Outcome(False, error=f"worker process died: {type(exc).__name__}: {exc}")
                    self.close()
                    pool = self._get_pool()
                bar.update(1)
        bar.close()
        return [o for o in out if o is not None]

    def _get_pool(self):
        if self._pool is None:
            from concurrent.futures import ProcessPoolExecutor
            from wmprobe._mp import context, hidden_main
            with hidden_main():
                self._pool = ProcessPoolExecutor(self.workers, mp_context=context(["wmprobe.study.tasks"]))
                self._pool.submit(int, 0).result()  # start the workers while __main__ is hidden
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def local_workers(requested: int | None, device: str) -> int:
    """``workers: 0`` (auto): one process per CPU core up to 4 on CPU; one process when using a GPU."""
    if requested:
        return int(requested)
    if not str(device).startswith("cpu"):
        return 1
    return max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1,
                      4))


def _local(cfg: Any, cache_root: Path, study_name: str, progress: bool, threads: int | None, device: str) -> Any:
    return LocalExecutor(cfg.max_retries, progress, local_workers(cfg.workers, device), threads)


def _submitit(cfg: Any, cache_root: Path, study_name: str, progress: bool, threads: int | None, device: str) -> Any:
    return SubmititExecutor(cfg.submitit, cache_root / "submitit" / study_name, cfg.max_retries, progress, threads)


def _ray(cfg: Any, cache_root: Path, study_name: str, progress: bool, threads: int | None, device: str) -> Any:
    return RayExecutor(cfg.ray, cfg.max_retries, progress, threads)


def make_executor(cfg: Any, cache_root: Path, study_name: str, progress: bool = True, threads: int | None = 1,
                  device: str = "cpu"):
    """The executor a study's ``executor`` block names."""
    if cfg.kind not in EXECUTORS:
        raise ConfigError(f"unknown executor '{cfg.kind}'{EXECUTORS.did_you_mean(str(cfg.kind))}: choose "
                          f"{', '.join(EXECUTORS.names()[:-1])} or {EXECUTORS.names()[-1]}")
    return EXECUTORS.get(cfg.kind)(cfg, cache_root, study_name, progress, threads, device)
