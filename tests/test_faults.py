"""Faults and exit codes: disk full is exit 2 naming the path, a run with failed tasks exits 4 with a one-line
summary (also under --quiet), and inputs that used to raise internal errors are one clear sentence (exit 2)."""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import write_tiny_store
from wmprobe.cli import main


def write_study(tmp_path, store, **over):
    doc = {"name": "f", "datasets": [{"name": "sq", "path": str(store.path)}], "encoders": ["pixels:8"],
           "probes": ["ridge", "ridge-shuffled"], "seeds": [0], "n_boot": 10, "split": "episode",
           "executor": {"workers": 1, "max_retries": 0}, **over}
    f = tmp_path / "study.yaml"
    f.write_text(yaml.safe_dump(doc))
    return f


@pytest.fixture
def store(tmp_path):
    return write_tiny_store(tmp_path / "s", episodes=8, steps=8, size=16)


# ---- failed tasks: exit 4 and one line, even under --quiet --------------------------------------------------
def test_a_run_with_a_failed_cell_exits_4_with_a_summary_line(tmp_path, store, monkeypatch, capsys):
    import wmprobe.pipeline as pipeline
    real = pipeline.probe_features

    def flaky(*a, **k):
        if k.get("probes") == ["ridge-shuffled"]:
            raise RuntimeError("injected failure")
        return real(*a, **k)
    monkeypatch.setattr(pipeline, "probe_features", flaky)
    f = write_study(tmp_path, store)
    assert main(["--quiet", "run", str(f), "--out", str(tmp_path / "r"), "--cache", str(tmp_path / "c")]) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "1 task(s) failed" in err[0] and "injected failure" in err[0]
    recs = __import__("pandas").read_parquet(tmp_path / "r" / "records.parquet")
    assert recs.loc[recs.probe == "ridge-shuffled", "error"].str.contains("injected").all()
    assert (recs.loc[recs.probe == "ridge", "error"].fillna("") == "").all()
    # the failure is remembered only until a run succeeds: fixed, the rerun exits 0
    monkeypatch.setattr(pipeline, "probe_features", real)
    assert main(["--quiet", "run", str(f), "--out", str(tmp_path / "r"), "--cache", str(tmp_path / "c")]) == 0


def test_a_clean_run_exits_0_and_prints_no_failure(tmp_path, store, capsys):
    f = write_study(tmp_path, store)
    assert main(["--quiet", "run", str(f), "--out", str(tmp_path / "r"), "--cache", str(tmp_path / "c")]) == 0
    assert "failed" not in capsys.readouterr().err


# ---- disk full ---------------------------------------------------------------------------------------------
def test_disk_full_in_a_cell_write_is_exit_2_naming_the_path(tmp_path, store, monkeypatch, capsys):
    real = Path.write_text

    def full(self, *a, **k):
        if "cells" in self.parts:
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, *a, **k)
    monkeypatch.setattr(Path, "write_text", full)
    f = write_study(tmp_path, store)
    cache = tmp_path / "c"
    assert main(["--quiet", "run", str(f), "--out", str(tmp_path / "r"), "--cache", str(cache)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "disk full" in err and str(cache / "cells") in err
    assert not (tmp_path / "r" / "records.parquet").exists()   # no records full of disk errors
    assert not list((cache / "cells").glob(".*.tmp"))           # no half-written cell left behind
    monkeypatch.setattr(Path, "write_text", real)               # space freed: the rerun resumes and finishes
    assert main(["--quiet", "run", str(f), "--out", str(tmp_path / "r"), "--cache", str(cache)]) == 0


def test_numpy_short_write_is_recognised_as_disk_full(tmp_path, store, monkeypatch, capsys):
    def short(*a, **k):
        raise OSError("1769472 requested and 1351552 written")
    monkeypatch.setattr(np, "save", short)
    assert main(["--quiet", "data", "import", str(store.path), str(tmp_path / "d"), "--format", "store"]) == 2
    err = capsys.readouterr().err
    assert "disk full" in err and str((tmp_path / "d").resolve()) in err


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs (needs root and mount; skipped where that is not possible)."""
    d = tmp_path / "disk"
    d.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(d)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


def test_a_really_full_disk_is_exit_2_naming_the_path(tiny_disk, store):
    dest = tiny_disk / "big"
    r = subprocess.run([sys.executable, "-m", "wmprobe.cli", "--quiet", "data", "gen", "dynamic", str(dest),
                        "--episodes", "8", "--steps", "40", "--size", "64", "--workers", "1"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 2, r.stderr
    assert "disk full" in r.stderr and str(tiny_disk) in r.stderr and "Traceback" not in r.stderr
    assert not dest.exists()   # nothing half-written where the store would be


# ---- inputs that used to be internal errors ------------------------------------------------------------------
def test_latents_with_no_features_are_exit_2(tmp_path, store, capsys):
    np.save(tmp_path / "z.npy", np.zeros((store.n_frames, 0), np.float32))
    assert main(["--quiet", "probe", "--latents", str(tmp_path / "z.npy"), "--store", str(store.path), "--probe",
                 "ridge", "--out", str(tmp_path / "o")]) == 2
    assert "at least one feature" in capsys.readouterr().err


def test_lerobot_chunks_size_that_is_not_a_number_is_exit_2(tmp_path, capsys):
    root = tmp_path / "ds"
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "info.json").write_text(json.dumps({
        "codebase_version": "v3.0", "fps": 10, "chunks_size": "x",
        "features": {"action": {"dtype": "float32", "shape": [7]}}}))
    assert main(["--quiet", "data", "info", str(root)]) == 2
    assert "chunks_size" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["data", "gen", "dynamic", "d", "--steps", "0"],
                                  ["probe", "--latents", "z.npy", "--store", "s", "--out", "o", "--seeds", "-1"],
                                  ["zoo", "train", "vae", "--data", "d", "--seed", "-1"]])
def test_options_that_crashed_are_one_sentence(argv):
    r = subprocess.run([sys.executable, "-m", "wmprobe.cli", *argv], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "internal error" not in r.stderr and "Traceback" not in r.stderr


def test_permission_denied_output_is_exit_2(tmp_path, store, capsys):
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    assert main(["--quiet", "data", "import", str(store.path), str(ro / "d"), "--format", "store"]) == 2
