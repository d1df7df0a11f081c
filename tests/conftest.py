import os
import sys

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never write into the user's ~/.cache from tests."""
    monkeypatch.setenv("WMPROBE_CACHE", str(tmp_path_factory.getbasetemp() / "wmprobe-cache"))


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    """A tiny moving-square EpisodeStore on disk (8 episodes x 10 steps, 16 px, 4 tasks), one per test module."""
    from helpers import write_tiny_store
    path = tmp_path_factory.mktemp("store") / "square"
    write_tiny_store(path, episodes=8, steps=10, size=16, tasks=4)
    return path


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory):
    """``wmprobe demo --preset tiny`` (seed 0) run once per session through the installed entry point, with its own
    cache: ``(out, completed process, cache)``. Shared by test_demo.py and the golden test (test_golden.py)."""
    import subprocess
    out = tmp_path_factory.mktemp("demo")
    cache = tmp_path_factory.mktemp("cache")
    r = subprocess.run([sys.executable, "-m", "wmprobe.cli", "--quiet", "demo", "--preset", "tiny", "--seed", "0",
                        "--out", str(out), "--cache", str(cache)], capture_output=True, text=True, timeout=900,
                       env={**os.environ, "WMPROBE_CACHE": str(cache)})
    assert r.returncode == 0, r.stderr[-2000:]
    return out, r, cache


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one CPU thread for a module (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``)."""
    import torch
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
