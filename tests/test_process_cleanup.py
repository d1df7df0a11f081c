"""After kill -9 or SIGTERM of the main process, its workers (forkserver, resource tracker, pool workers) and a
local Ray cluster die with it: none survives 10 s later. Every process a test starts carries a unique
environment tag; whatever still carries it at the end is killed, so a failing test leaves nothing running."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
import yaml

from helpers import write_tiny_store

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds processes through /proc (Linux)")
TAG = "WMPROBE_TEST_PROCESS_TAG"


def tagged(tag: str) -> list[int]:
    needle = f"{TAG}={tag}".encode()
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/environ", "rb") as f:
                    env = f.read().split(b"\0")
                with open(f"/proc/{d}/stat", "rb") as f:
                    zombie = f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
            except OSError:
                continue
            if needle in env and not zombie:
                out.append(int(d))
    return out


def _stat(pid: int):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[1]), int(fields[19]), fields[0]
    except (OSError, IndexError, ValueError):
        return None


class Family:
    """Every process started under a root (by its process tree, sampled while it runs, and by the environment
    tag), as (pid, start time) so a reused pid is never mistaken for a survivor. Ray's setproctitle blanks
    the environment of its agents, so the tag alone would miss them."""

    def __init__(self, root: int, tag: str):
        self.tag, self.members = tag, set()
        st = _stat(root)
        self.members.add((root, st[1]) if st else (root, 0))

    def sample(self) -> int:
        table = {}
        for d in os.listdir("/proc"):
            if d.isdigit() and (st := _stat(int(d))) is not None and st[2] != b"Z":
                table[int(d)] = st
        alive = {(p, s) for p, s in self.members if p in table and table[p][1] == s}
        grew = True
        while grew:
            new = {(p, st[1]) for p, st in table.items() if any(st[0] == q for q, _ in alive)} - alive
            grew = bool(new)
            alive |= new
        self.members |= alive | {(p, table[p][1]) for p in tagged(self.tag) if p in table}
        return len(alive)

    def running(self) -> list[int]:
        return [p for p, s in self.members if (st := _stat(p)) is not None and st[1] == s and st[2] != b"Z"]


@contextlib.contextmanager
def tagged_run(argv: list[str], **popen):
    """Start ``argv`` with a unique tag; afterwards SIGKILL anything of its family still running."""
    tag = uuid.uuid4().hex
    proc = subprocess.Popen(argv, env={**os.environ, TAG: tag}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, **popen)
    proc.family = Family(proc.pid, tag)
    try:
        yield proc, tag
    finally:
        with contextlib.suppress(OSError):
            proc.family.sample()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for _ in range(3):
            for pid in proc.family.running() + tagged(tag):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)


def wait_for(cond, seconds: float, what: str, family: "Family | None" = None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if family is not None:
            family.sample()
        v = cond()
        if v:
            return v
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def survivors_after_kill(proc, tag: str, sig: int, seconds: float = 10.0) -> list[str]:
    proc.family.sample()
    os.kill(proc.pid, sig)
    proc.wait(30)
    deadline = time.monotonic() + seconds
    left = sorted(set(proc.family.running() + tagged(tag)))
    while left and time.monotonic() < deadline:
        time.sleep(0.3)
        left = sorted(set(proc.family.running() + tagged(tag)))
    cmds = []
    for pid in left:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ")[:160].decode(errors="replace")
            env = [e for e in open(f"/proc/{pid}/environ", "rb").read().split(b"\0") if b"RAY_OWNER" in e]
            cmds.append(f"{pid}: {cmd} {env}")
    return cmds


def long_study(tmp_path, executor: dict) -> list[str]:
    s = write_tiny_store(tmp_path / "s", episodes=8, steps=8, size=16)
    f = tmp_path / "study.yaml"
    f.write_text(yaml.safe_dump({"name": "long", "datasets": [{"name": "sq", "path": str(s.path)}],
                                 "encoders": ["pixels:8"], "probes": ["mlp"], "ks": [1, 2], "seeds": [0],
                                 "probe": {"steps": 10_000_000, "hidden": [8], "lrs": [1e-3]},  # never ends
                                 "n_boot": 10, "split": "episode", "executor": executor}))
    return [sys.executable, "-m", "wmprobe.cli", "--quiet", "run", str(f), "--out", str(tmp_path / "r"),
            "--cache", str(tmp_path / "cache")]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_local_worker_pool_dies_with_the_study(tmp_path, sig):
    with tagged_run(long_study(tmp_path, {"kind": "local", "workers": 2})) as (proc, tag):
        # main + resource tracker + forkserver + 2 workers, and the probe cells under way
        wait_for(lambda: len(tagged(tag)) >= 5 and list((tmp_path / "cache").glob("locks/cell-*.lock")), 180,
                 "the worker pool to start probing", proc.family)
        assert proc.poll() is None, proc.stderr.read()
        left = survivors_after_kill(proc, tag, sig)
        assert not left, f"still running 10 s after the study was killed: {left}"


def test_generation_workers_die_with_their_parent(tmp_path):
    argv = [sys.executable, "-m", "wmprobe.cli", "--quiet", "data", "gen", "dynamic", str(tmp_path / "d"),
            "--episodes", "400", "--steps", "40", "--size", "32", "--workers", "2"]
    with tagged_run(argv) as (proc, tag):
        wait_for(lambda: len(tagged(tag)) >= 5, 180, "the generation pool to start", proc.family)
        time.sleep(1.0)
        assert proc.poll() is None, proc.stderr.read()
        left = survivors_after_kill(proc, tag, signal.SIGKILL)
        assert not left, f"still running 10 s after the generator was killed: {left}"
    assert not (tmp_path / "d").exists()


def test_a_local_ray_cluster_dies_with_its_driver(tmp_path):
    pytest.importorskip("ray")
    with tagged_run(long_study(tmp_path, {"kind": "ray", "ray": {"num_cpus": 2}})) as (proc, tag):
        wait_for(lambda: list((tmp_path / "cache").glob("locks/cell-*.lock")), 300, "Ray to start probing",
                 proc.family)
        time.sleep(2)
        proc.family.sample()
        assert proc.poll() is None, proc.stderr.read()
        assert len(tagged(tag)) >= 4   # the driver, the reaper, GCS, raylet, workers...
        left = survivors_after_kill(proc, tag, signal.SIGKILL)
        assert not left, f"Ray processes still running 10 s after the driver was killed: {left}"


def test_die_with_owner_in_a_plain_pool(tmp_path):
    """The guard itself: workers of a wmprobe context exit once the process that made the pool is gone."""
    code = ("import time\nfrom concurrent.futures import ProcessPoolExecutor\n"
            "from wmprobe._mp import context, hidden_main\n"
            "if __name__ == '__main__':\n"
            "    with hidden_main():\n"
            "        ex = ProcessPoolExecutor(2, mp_context=context())\n"
            "        ex.submit(int, 0).result()\n"
            "    [ex.submit(time.sleep, 1000) for _ in range(2)]\n"
            "    print('ready', flush=True)\n    time.sleep(1000)\n")
    (tmp_path / "pool.py").write_text(code)
    with tagged_run([sys.executable, str(tmp_path / "pool.py")]) as (proc, tag):
        wait_for(lambda: len(tagged(tag)) >= 5, 120, "the pool to start", proc.family)
        left = survivors_after_kill(proc, tag, signal.SIGKILL)
        assert not left, left
