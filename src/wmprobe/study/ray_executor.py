"""The ``ray`` executor: Ray tasks on an existing cluster (``executor.ray.address``) or on a private local
cluster started here (loopback only, no dashboard, stopped at the end; ``wmprobe._reaper`` stops its processes
even after kill -9 of the driver). Ray retries failed tasks; one ``Outcome`` per task, in task order."""
from __future__ import annotations

import os
from typing import Any, Sequence

from wmprobe.errors import ConfigError
from wmprobe.study.attempt import Outcome, _bar


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
    agent bind 127.0.0.1 (tests/study/test_study.py checks the listening sockets). Stop it with ``stop_local_ray()``;
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
