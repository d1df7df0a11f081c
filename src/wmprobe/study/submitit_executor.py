"""The ``submitit`` executor: tasks in SLURM job arrays (or submitit's local / debug executors), ``tasks_per_job``
tasks a job; a preempted or timed-out job is requeued (``checkpoint``), and since tasks are idempotent the
requeued job skips what it already finished. One ``Outcome`` per task, in task order."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from wmprobe.errors import ConfigError
from wmprobe.study.attempt import Outcome, _bar, run_batch


class _CheckpointableBatch:
    """submitit calls ``checkpoint`` on preemption/timeout; requeueing the same batch is safe (idempotent)."""

    def __init__(self, tasks: Sequence[Any], cache_root: str, max_retries: int, threads: int | None):
        self.tasks, self.cache_root, self.max_retries, self.threads = list(tasks), cache_root, max_retries, threads

    def __call__(self) -> list[Outcome]:
        return run_batch(self.tasks, self.cache_root, self.max_retries, self.threads)

    def checkpoint(self, *args: Any, **kwargs: Any):
        import submitit
        return submitit.helpers.DelayedSubmission(_CheckpointableBatch(self.tasks, self.cache_root,
                                                                       self.max_retries, self.threads))


class SubmititExecutor:
    name = "submitit"
    # one job runs one batch of tasks in one process: no `nodes` / `tasks_per_node` (several tasks per job would
    # each run the whole batch); the config rejects them as unknown keys
    _GENERIC = ("timeout_min", "mem_gb", "gpus_per_node", "cpus_per_task")
    _SLURM = ("partition", "account", "qos", "constraint", "array_parallelism", "additional_parameters")

    def __init__(self, options: dict[str, Any], folder: Path, max_retries: int = 2, progress: bool = True,
                 threads: int | None = 1):
        self.threads = threads
        try:
            import submitit
        except ImportError:
            raise ConfigError("executor 'submitit' needs submitit: pip install -c constraints.txt "
                              "'wmprobe[dist]'") from None
        self.opts, self.max_retries, self.progress = dict(options), max_retries, progress
        cluster = self.opts.get("cluster", "slurm")
        self.folder = Path(self.opts.get("folder") or folder)
        self.executor = submitit.AutoExecutor(folder=str(self.folder / "%j"),
                                              cluster=None if cluster == "slurm" else cluster)
        params: dict[str, Any] = {k: self.opts[k] for k in self._GENERIC if k in self.opts}
        params.setdefault("timeout_min", 60)
        params.update({f"slurm_{k}": self.opts[k] for k in self._SLURM if k in self.opts})
        params["name"] = "wmprobe"
        self.executor.update_parameters(**params)
        self.tasks_per_job = int(self.opts.get("tasks_per_job", 1))

    def map(self, tasks: Sequence[Any], cache_root: str, desc: str = "tasks") -> list[Outcome]:
        if not tasks:
            return []
        n = self.tasks_per_job
        batches = [list(range(i, min(i + n, len(tasks)))) for i in range(0, len(tasks), n)]
        outcomes: list[Outcome | None] = [None] * len(tasks)
        pending = batches
        bar = _bar(len(tasks), desc, self.progress)
        for attempt in range(self.max_retries + 1):
            fns = [_CheckpointableBatch([tasks[i] for i in b], cache_root, self.max_retries, self.threads)
                   for b in pending]
            jobs = self.executor.submit_array(fns) if len(fns) > 1 else [self.executor.submit(fns[0])]
            failed = []
            for b, job in zip(pending, jobs):
                try:
                    res = job.result()
                    for i, o in zip(b, res):
                        outcomes[i] = o
                    bar.update(len(b))
                except Exception as exc:  # noqa: BLE001 - the job died (node failure, OOM, cancelled)
                    err = f"submitit job {job.job_id} failed: {type(exc).__name__}: {str(exc)[-2000:]}"
                    for i in b:
                        outcomes[i] = Outcome(False, error=err, attempts=attempt + 1)
                    failed.append(b)
            pending = failed
            if not pending:
                break
        bar.update(sum(len(b) for b in pending))
        bar.close()
        return [o if o is not None else Outcome(False, error="not run") for o in outcomes]
