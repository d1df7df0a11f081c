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
