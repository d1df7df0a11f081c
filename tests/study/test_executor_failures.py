"""On every executor a failing task is retried a bounded number of times, then reported in the records.

The failure has to cross process boundaries (submitit's LocalExecutor and Ray run tasks in other processes,
where a monkeypatch does not reach), so it comes from a plugin encoder written to disk: its ``encode`` appends a
line to a file and raises. Each line is one attempt at one extraction task.
"""
from __future__ import annotations

import sys

import pytest

from helpers import write_tiny_store
from wmprobe.study.runner import run

PLUGIN = '''
import dataclasses
import os

from wmprobe.encoders.baselines import pixels


def build(arg=None, **options):
    enc = pixels("4", **options)
    enc.spec = dataclasses.replace(enc.spec, name="flaky", extra={"flaky": True})   # its own cache key

    def encode(frames, layers=None):
        with open(os.environ["FLAKY_ATTEMPTS"], "a") as f:
            f.write("attempt\\n")
        raise RuntimeError("flaky worker lost its GPU")
    enc.encode = encode
    return enc
'''

EXECUTORS = {
    "local": {"kind": "local", "workers": 1},
    "submitit-local": {"kind": "submitit", "submitit": {"cluster": "local", "tasks_per_job": 8, "timeout_min": 10}},
    "ray-local": {"kind": "ray", "ray": {"num_cpus": 2}},
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(EXECUTORS))
def test_failing_tasks_are_retried_then_reported_on_every_executor(name, tmp_path, monkeypatch):
    executor = dict(EXECUTORS[name], max_retries=2)
    if name != "local":
        pytest.importorskip(executor["kind"])
    (tmp_path / "plugin" / "flaky_wm").mkdir(parents=True)
    (tmp_path / "plugin" / "flaky_wm" / "__init__.py").write_text("")
    (tmp_path / "plugin" / "flaky_wm" / "encoder.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path / "plugin"))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "plugin"))     # workers in other processes import it too
    attempts = tmp_path / "attempts.txt"
    monkeypatch.setenv("FLAKY_ATTEMPTS", str(attempts))
    store = tmp_path / "store"
    write_tiny_store(store, episodes=6, steps=8, size=16, tasks=3)
    cfg = {"name": "flaky", "datasets": [{"name": "square", "path": str(store)}],
           "encoders": [{"name": "pixels:4", "label": "pixels"}, {"name": "flaky_wm.encoder:build", "label": "flaky"}],
           "corruptions": ["clean"], "probes": ["ridge"], "ks": [1], "seeds": [0], "n_boot": 20,
           "shard_episodes": 3, "executor": executor}
    try:
        df = run(cfg, out=tmp_path / "out", cache=tmp_path / "cache", progress=False, report=False)
    finally:
        if name == "ray-local" and "ray" in sys.modules and sys.modules["ray"].is_initialized():
            sys.modules["ray"].shutdown()
    flaky, ok = df[df["encoder"] == "flaky"], df[df["encoder"] == "pixels"]
    assert len(flaky) == 1 and flaky["error"].str.contains("flaky worker lost its GPU").all()
    assert flaky["r2"].isna().all()                                       # reported, not dropped, no number
    assert len(ok) == 1 and (ok["error"].fillna("") == "").all() and ok["r2"].notna().all()
    n_tasks = 2                                                            # 6 episodes in shards of 3
    assert attempts.read_text().count("attempt") == n_tasks * (2 + 1)      # every task: 1 try + 2 retries
