"""Two processes on one cache never both compute a probe cell: the second waits on the cell's lock and reuses."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import pandas as pd
import pytest
import yaml

from helpers import write_tiny_store
from wmprobe.study.cache import Cache
from wmprobe.study.tasks import _locked_cell

# a study run with probe_features counted (and slowed, so that both runs are inside one cell at once)
RUNNER = textwrap.dedent("""
    import fcntl, os, sys, time
    import wmprobe.pipeline as pipeline
    real = pipeline.probe_features
    def counted(*a, **k):
        with open(os.environ["COUNT_FILE"], "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.write(f"{os.getpid()}\\n")
        time.sleep(0.5)
        return real(*a, **k)
    pipeline.probe_features = counted
    from wmprobe.study.runner import run
    run(sys.argv[1], out=sys.argv[2], cache=sys.argv[3], progress=False, report=False)
""")


@pytest.mark.slow
def test_two_processes_compute_each_cell_once(tmp_path):
    s = write_tiny_store(tmp_path / "s", episodes=8, steps=8, size=16)
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({"name": "locks", "datasets": [{"name": "sq", "path": str(s.path)}],
                                     "encoders": ["pixels:8"], "probes": ["ridge", "ridge-shuffled"],
                                     "ks": [1, 2], "seeds": [0], "n_boot": 10, "split": "episode",
                                     "executor": {"workers": 1}}))
    (tmp_path / "runner.py").write_text(RUNNER)
    count = tmp_path / "count.txt"
    env = {**os.environ, "COUNT_FILE": str(count)}
    cache = tmp_path / "cache"
    procs = [subprocess.Popen([sys.executable, str(tmp_path / "runner.py"), str(study), str(tmp_path / f"r{i}"),
                               str(cache)], env=env, stderr=subprocess.PIPE, text=True) for i in (0, 1)]
    try:
        errs = [p.communicate(timeout=600)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0], errs
    computed = count.read_text().split()
    assert len(computed) == 4, computed          # 2 probes x 2 ks: each cell once across both processes
    a, b = (pd.read_parquet(tmp_path / f"r{i}" / "records.parquet") for i in (0, 1))
    key = ["probe", "k", "seed", "corruption"]
    a, b = a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True)
    assert a["r2"].tolist() == b["r2"].tolist()  # the second process reused the first one's rows


def test_a_waiting_thread_reuses_the_rows_written_under_the_lock(tmp_path):
    cache = Cache(tmp_path)
    calls, started = [], threading.Event()
    release = threading.Event()

    def slow():
        calls.append(1)
        started.set()
        release.wait(10)
        rows = [{"r2": 0.5}]
        cache.put_cell("k", rows, {})
        return rows

    t = threading.Thread(target=lambda: _locked_cell(cache, "k", slow))
    t.start()
    started.wait(10)
    out: list = []
    t2 = threading.Thread(target=lambda: out.append(_locked_cell(cache, "k", slow)))
    t2.start()
    t2.join(0.3)
    assert t2.is_alive()                          # waiting on the cell's lock, not computing
    release.set()
    t.join(10)
    t2.join(10)
    assert calls == [1] and out == [[{"r2": 0.5}]]


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path):
    cache = Cache(tmp_path)
    code = ("import os, sys; from wmprobe.study.cache import Cache\n"
            "c = Cache(sys.argv[1]); c.lock('cell-k').__enter__(); os._exit(0)")   # dies holding the lock
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, timeout=120)
    rows = _locked_cell(cache, "k", lambda: cache.put_cell("k", [{"r2": 1.0}], {}) and [{"r2": 1.0}])
    assert rows == [{"r2": 1.0}]
