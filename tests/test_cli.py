"""The CLI through its installed entry point: exit codes and one-sentence errors."""
import shutil
import subprocess
import sys

import numpy as np
import pytest

from helpers import moving_square_store

WMPROBE = shutil.which("wmprobe") or ""


def cli(*args, cwd=None):
    cmd = [WMPROBE] if WMPROBE else [sys.executable, "-m", "wmprobe.cli"]
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_help_lists_subcommands_with_examples():
    r = cli("--help")
    assert r.returncode == 0
    for sub in ("demo", "run", "extract", "probe", "report", "ls", "validate", "data", "zoo", "cache"):
        assert sub in r.stdout
    assert "examples:" in r.stdout


def test_ls_encoders():
    r = cli("ls", "encoders")
    assert r.returncode == 0 and "vjepa2" in r.stdout and "pixels" in r.stdout


def test_unknown_encoder_is_one_clear_sentence(tmp_path):
    moving_square_store(episodes=2, steps=3).save(tmp_path / "s")
    r = cli("extract", "dinov4", tmp_path / "s", "--out", tmp_path / "f")
    assert r.returncode == 2
    assert "unknown encoder 'dinov4'" in r.stderr and "Traceback" not in r.stderr


def test_corrupt_store_is_one_clear_sentence(tmp_path):
    moving_square_store(episodes=2, steps=3).save(tmp_path / "s")
    (tmp_path / "s" / "actions.npy").write_bytes(b"not numpy")
    r = cli("extract", "pixels", tmp_path / "s", "--out", tmp_path / "f")
    assert r.returncode == 2 and "actions.npy is corrupt or truncated" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_extract_writes_aligned_features(tmp_path):
    moving_square_store(episodes=3, steps=5).save(tmp_path / "s")
    r = cli("--quiet", "extract", "random-conv", tmp_path / "s", "--out", tmp_path / "f", "--layers", "conv2", "conv3")
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "f" / "step_frame.npy").tolist() == list(range(15))
    assert np.load(tmp_path / "f" / "pooled.conv2.npy").shape == (15, 64)


def test_encoder_options_reach_the_factory(tmp_path):
    moving_square_store(episodes=2, steps=3).save(tmp_path / "s")
    r = cli("--quiet", "extract", "pixels", tmp_path / "s", "--out", tmp_path / "f", "--encoder-option", "size=8")
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "f" / "pooled.out.npy").shape == (6, 8 * 8 * 3)
    r = cli("extract", "pixels", tmp_path / "s", "--out", tmp_path / "g", "--encoder-option", "size")
    assert r.returncode == 2 and "KEY=VALUE" in r.stderr


# ---- dotted overrides on run / demo / validate ----------------------------------------------------------
def _study_file(tmp_path, store_dir):
    import yaml
    f = tmp_path / "micro.yaml"
    f.write_text(yaml.safe_dump({"name": "micro", "datasets": [{"name": "square", "path": str(store_dir)}],
                                 "encoders": [{"name": "pixels:4", "label": "pixels"}], "probes": ["ridge"],
                                 "ks": [1], "seeds": [0], "n_boot": 20, "shard_episodes": 4,
                                 "executor": {"workers": 1}}))
    return f


def test_validate_reports_override_problems_at_their_override(tmp_path, store_dir):
    f = _study_file(tmp_path, store_dir)
    r = cli("validate", f, "probe.steps=200", "ks=[0,4]", "zoo.familes=[vae]", "seeds")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "override 2: ks[0]: must be >= 1" in r.stdout
    assert "override 3: zoo.familes: unknown key (did you mean 'families'?)" in r.stdout
    assert "override 4: 'seeds': expected KEY=VALUE" in r.stdout and "3 problem(s)" in r.stdout
    r = cli("validate", f, "probe.steps=200", "ks=[1,4]")
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout + r.stderr


def test_run_applies_and_records_overrides(tmp_path, store_dir):
    import pandas as pd
    import yaml
    f = _study_file(tmp_path, store_dir)
    r = cli("--quiet", "run", f, "--out", tmp_path / "out", "ks=[1,2]", "probes=[ridge]", "n_boot=10",
            cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    rec = pd.read_csv(tmp_path / "out" / "records.csv")
    assert sorted(set(rec["k"])) == [1, 2]
    cfg = yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())["config"]
    assert cfg["overrides"] == ["ks=[1,2]", "probes=[ridge]", "n_boot=10"]
    assert cfg["study"]["ks"] == [1, 2] and cfg["study"]["n_boot"] == 10
    r = cli("run", f, "--dry-run", "datasets[0].episodes=oops")
    assert r.returncode == 2 and "override 1: datasets[0].episodes: expected an integer" in r.stderr, r.stderr


def test_demo_takes_overrides_checked_before_anything_runs(tmp_path):
    r = cli("demo", "--preset", "tiny", "--out", tmp_path / "d", "probe.stepz=5")
    assert r.returncode == 2 and "override 1: probe.stepz: unknown key" in r.stderr, r.stderr
    assert not (tmp_path / "d").exists()
