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
"""
from __future__ import annotations

import os
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from wmprobe.errors import ConfigError
from wmprobe.study.executor_registry import EXECUTORS


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
    _GENERIC = ("timeout_min", "mem_gb", "gpus_per_node", "cpus_per_task", "nodes", "tasks_per_node")
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


class RayExecutor:
    name = "ray"

    def __init__(self, options: dict[str, Any], max_retries: int = 2, progress: bool = True,
                 threads: int | None = 1):
        self.threads = threads
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ConfigError("executor 'ray' needs ray: pip install -c constraints.txt 'wmprobe[dist]'") from None
        self.opts, self.max_retries, self.progress = dict(options), max_retries, progress

    def map(self, tasks: Sequence[Any], cache_root: str, desc: str = "tasks") -> list[Outcome]:
        import ray
        if not tasks:
            return []
        started = False
        if not ray.is_initialized():
            if self.opts.get("address"):
                ray.init(address=self.opts["address"], runtime_env=self.opts.get("runtime_env"),
                         log_to_driver=False)
            else:  # a private local cluster: loopback only, no dashboard, stopped below
                start_local_ray(self.opts.get("num_cpus"), self.opts.get("runtime_env"))
                started = True
        try:
            remote = ray.remote(num_cpus=self.opts.get("num_cpus_per_task", 1),
                                num_gpus=self.opts.get("num_gpus_per_task", 0),
                                max_retries=self.max_retries, retry_exceptions=True)(_ray_task)
            refs = [remote.remote(t, cache_root, self.threads) for t in tasks]
            bar = _bar(len(tasks), desc, self.progress)
            out = []
            for ref in refs:
                try:
                    out.append(Outcome(True, ray.get(ref), attempts=1))
                except Exception as exc:  # noqa: BLE001 - after Ray's retries
                    cause = getattr(exc, "cause", None) or exc
                    out.append(Outcome(False, error=f"{type(cause).__name__}: {cause}",
                                       attempts=self.max_retries + 1))
                bar.update(1)
            bar.close()
            return out
        finally:
            if started:
                stop_local_ray()


def start_local_ray(num_cpus: int | None = None, runtime_env: dict | None = None) -> None:
    """Start a private Ray cluster on this machine whose servers listen on 127.0.0.1 only (no dashboard).

    Ray >= 2.4x rewrites a loopback ``_node_ip_address`` to the machine's outward address
    (``services.resolve_ip_for_localhost``), and its gRPC servers then listen on every interface. Keeping the
    loopback address while ``ray.init`` starts the processes makes GCS, raylet, workers and the runtime-env
    agent bind 127.0.0.1 (tests/test_study.py checks the listening sockets). Stop it with ``stop_local_ray()``;
    after kill -9 of this process, ``wmprobe._reaper`` stops its processes.
    """
    import ray
    from ray._private import services
    keep = getattr(services, "resolve_ip_for_localhost", None)
    if keep is not None:
        services.resolve_ip_for_localhost = lambda host: host if services.is_localhost(host) else keep(host)
    reaper = _start_reaper()
    try:
        ray.init(num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
                 runtime_env=runtime_env)
    except BaseException:
        reaper()
        _stop_reaper()
        raise
    else:
        reaper()   # hands the processes ray.init started to the reaper
    finally:
        if keep is not None:
            services.resolve_ip_for_localhost = keep


_REAPER: dict[str, Any] = {}


def _start_reaper():
    """Start ``wmprobe._reaper`` (which kills the local cluster's processes once this driver is gone, kill -9
    included); returns a function to call after ``ray.init`` that gives it the processes ray.init started."""
    import subprocess
    import sys
    from wmprobe._reaper import processes, tree
    _stop_reaper()
    me = os.getpid()
    before = {p for p, _ in tree({(me, processes().get(me, (0, 0))[1])})} if os.path.isdir("/proc") else set()
    proc = subprocess.Popen([sys.executable, "-m", "wmprobe._reaper", str(me)], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, text=True)
    _REAPER["proc"] = proc

    def hand_over() -> None:
        if not os.path.isdir("/proc"):
            return
        now = tree({(me, processes().get(me, (0, 0))[1])})
        roots = sorted(p for p, _ in now if p not in before and p not in (me, proc.pid))
        try:
            proc.stdin.write("".join(f"{p}\n" for p in roots))
            proc.stdin.flush()
        except OSError:
            pass
    return hand_over


def _stop_reaper() -> None:
    """After ``ray.shutdown``: the reaper kills what is left of the cluster (its agents can outlive the
    shutdown), then exits."""
    proc = _REAPER.pop("proc", None)
    if proc is None:
        return
    try:
        proc.stdin.write("stop\n")
        proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(30)
    except Exception:  # noqa: BLE001 - never leave it behind
        proc.kill()
        proc.wait()


def stop_local_ray() -> None:
    """Stop the local cluster ``start_local_ray`` started (and its reaper)."""
    import ray
    try:
        ray.shutdown()
    finally:
        _stop_reaper()


def _ray_task(task: Any, cache_root: str, threads: int | None) -> Any:
    from wmprobe.study.tasks import run_task
    return run_task(task, cache_root, threads)


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
