"""Checksums: a corrupt CACHE entry is recomputed (with a warning), a corrupt file of the user's is an error
naming it, and an edited store never reuses results cached under its old fingerprint."""
from __future__ import annotations

import json
import os
import shutil
import time
import warnings

import numpy as np
import pytest

from helpers import write_tiny_store
from wmprobe import zoo
from wmprobe.cli import main
from wmprobe.data.store import EpisodeStore, check_checksums, open_cached, validate_store
from wmprobe.errors import EncoderError, StoreError


def flip(path, offset=-64, n=8):
    """Flip ``n`` bytes of a file in place (its size stays; its mtime moves on)."""
    time.sleep(0.02)   # past the file system's timestamp granularity
    with open(path, "r+b") as f:
        f.seek(offset, os.SEEK_END if offset < 0 else os.SEEK_SET)
        b = f.read(n)
        f.seek(-len(b), os.SEEK_CUR)
        f.write(bytes(x ^ 0xFF for x in b))


def truncate(path, keep=0.5):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(int(size * keep))


# ---- stores ----------------------------------------------------------------------------------------------
def test_a_written_store_records_sizes_mtimes_and_checksums(tmp_path):
    s = write_tiny_store(tmp_path / "s", episodes=4, steps=6, size=16)
    rec = json.loads((s.path / "checksums.json").read_text())["files"]
    assert set(rec) == {"frames.npy", "actions.npy", "episode_ends.npy", "tasks.npy"}
    assert rec["frames.npy"]["size"] == os.path.getsize(s.path / "frames.npy")
    assert check_checksums(s.path, full=True) == [] and validate_store(s.path) == []


@pytest.mark.parametrize("name", ["actions.npy", "frames.npy", "tasks.npy"])
def test_an_edited_user_store_is_an_error_naming_the_file(tmp_path, name):
    s = write_tiny_store(tmp_path / "s", episodes=4, steps=6, size=16)
    flip(s.path / name, offset=-4, n=2)
    with pytest.raises(StoreError, match=name):
        EpisodeStore.load(s.path)
    assert any(name in p for p in validate_store(s.path))


def test_editing_actions_through_numpy_is_caught(tmp_path, capsys):
    s = write_tiny_store(tmp_path / "s", episodes=4, steps=6, size=16)
    time.sleep(0.02)
    a = np.load(s.path / "actions.npy", mmap_mode="r+")
    a[:, 0] *= 2
    a.flush()
    del a
    assert main(["data", "validate", str(s.path)]) == 1
    assert "actions.npy" in capsys.readouterr().out
    assert main(["data", "info", str(s.path)]) in (0, 2)   # never an internal error


def test_a_store_written_before_checksums_is_checked_by_its_fingerprint_in_validate(tmp_path):
    s = write_tiny_store(tmp_path / "s", episodes=4, steps=6, size=16)
    (s.path / "checksums.json").unlink()
    assert validate_store(s.path) == []
    a = np.load(s.path / "actions.npy", mmap_mode="r+")
    a[0, 0] += 1
    a.flush()
    del a
    assert any("fingerprint" in p for p in validate_store(s.path))
    EpisodeStore.load(s.path)   # no record: it loads (as before checksums existed)


def test_a_copied_store_with_new_mtimes_loads_and_is_restamped(tmp_path):
    s = write_tiny_store(tmp_path / "s", episodes=4, steps=6, size=16)
    (tmp_path / "c").mkdir()
    time.sleep(0.02)
    for f in s.path.iterdir():
        shutil.copyfile(f, tmp_path / "c" / f.name)   # contents only: new mtimes
    before = json.loads((tmp_path / "c" / "checksums.json").read_text())
    EpisodeStore.load(tmp_path / "c")
    after = json.loads((tmp_path / "c" / "checksums.json").read_text())
    assert after["files"]["frames.npy"]["mtime_ns"] != before["files"]["frames.npy"]["mtime_ns"]
    assert after["files"]["frames.npy"]["blake2b"] == before["files"]["frames.npy"]["blake2b"]


def test_a_checksum_record_cannot_point_outside_the_store(tmp_path):
    s = write_tiny_store(tmp_path / "s", episodes=4, steps=6, size=16)
    doc = json.loads((s.path / "checksums.json").read_text())
    doc["files"]["../../etc/passwd"] = {"size": 1, "mtime_ns": 0, "blake2b": "0"}
    (s.path / "checksums.json").write_text(json.dumps(doc))
    with pytest.raises(StoreError, match="outside the store"):
        EpisodeStore.load(s.path)


@pytest.mark.parametrize("damage", ["flip", "truncate", "meta", "missing"])
def test_a_corrupt_cached_store_is_regenerated_identically(tmp_path, damage):
    from wmprobe.data.sim import cached_generate
    kw = dict(episodes=2, steps=3, size=16, seed=0, workers=1, progress=False)
    first = cached_generate("dynamic", tmp_path, **kw)
    frames, fp = np.array(first.frames), first.fingerprint
    path = first.path
    del first
    if damage == "flip":
        flip(path / "frames.npy")
    elif damage == "truncate":
        truncate(path / "frames.npy")
    elif damage == "meta":
        (path / "meta.json").write_text("{garbage")
    else:
        (path / "actions.npy").unlink()
    with pytest.warns(UserWarning, match="regenerating"):
        again = cached_generate("dynamic", tmp_path, **kw)
    assert again.fingerprint == fp and np.array_equal(np.asarray(again.frames), frames)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".corrupt")]


def test_open_cached_returns_none_for_garbage(tmp_path):
    d = tmp_path / "pool-x"
    d.mkdir()
    (d / "meta.json").write_text("[1, 2]")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert open_cached(d) is None
    assert not d.exists()


# ---- zoo checkpoints -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def zoo_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    store = write_tiny_store(root / "data", episodes=6, steps=8, size=16)
    kw = dict(train_episodes=[0, 1, 2, 3], preset="tiny", seed=0, cache_dir=root / "zoo", progress=False,
              overrides={"steps": 3, "warmup": 1})
    ckpt = zoo.train("vae", store, **kw)
    return store, kw, ckpt, zoo.load(ckpt).spec.weights_hash


def test_a_checkpoint_records_its_weights_checksum(zoo_setup):
    _, _, ckpt, _ = zoo_setup
    meta = json.loads((ckpt / "recipe.json").read_text())
    assert meta["checksums"]["model.safetensors"]["size"] == os.path.getsize(ckpt / "model.safetensors")


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["flip", "truncate", "recipe", "recipe-types", "missing"])
def test_a_corrupt_cached_checkpoint_errors_on_load_and_is_retrained(zoo_setup, damage, capsys):
    store, kw, ckpt, weights = zoo_setup
    w = ckpt / "model.safetensors"
    if damage == "flip":
        flip(w)
    elif damage == "truncate":
        truncate(w, 0.3)
    elif damage == "recipe":
        (ckpt / "recipe.json").write_text("not json at all \x00")
    elif damage == "recipe-types":
        (ckpt / "recipe.json").write_text(json.dumps({"recipe": "x"}))
    else:
        w.unlink()
    with pytest.raises(EncoderError, match="zoo checkpoint"):
        zoo.load(ckpt)
    # the CLI says so in one sentence (exit 2), never an internal error
    assert main(["extract", f"zoo:{ckpt}", str(store.path), "--out", str(ckpt.parent / "f")]) == 2
    assert "zoo checkpoint" in capsys.readouterr().err
    with pytest.warns(UserWarning, match="retraining"):
        again = zoo.train("vae", store, **kw)
    assert again == ckpt and zoo.load(again).spec.weights_hash == weights


# ---- an edited store never reuses its old cells ----------------------------------------------------------
def test_an_edited_store_does_not_reuse_cached_cells(tmp_path, capsys):
    import yaml
    s = write_tiny_store(tmp_path / "s", episodes=8, steps=8, size=16)
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({"name": "s", "datasets": [{"name": "sq", "path": str(s.path)}],
                                     "encoders": ["pixels:8"], "probes": ["ridge"], "seeds": [0], "n_boot": 10,
                                     "split": "episode", "executor": {"workers": 1}}))
    cache = str(tmp_path / "cache")
    assert main(["--quiet", "run", str(study), "--out", str(tmp_path / "r1"), "--cache", cache]) == 0
    time.sleep(0.02)
    a = np.load(s.path / "actions.npy", mmap_mode="r+")
    a[:] = -a
    a.flush()
    del a
    capsys.readouterr()
    assert main(["--quiet", "run", str(study), "--out", str(tmp_path / "r2"), "--cache", cache]) == 2
    err = capsys.readouterr().err
    assert "actions.npy" in err and "Traceback" not in err
    # accepting the edit: re-import, then every cell is computed anew under the new fingerprint
    assert main(["--quiet", "data", "import", str(s.path), str(tmp_path / "s2"), "--format", "store"]) == 0
    study.write_text(study.read_text().replace(str(s.path), str(tmp_path / "s2")))
    assert main(["--quiet", "run", str(study), "--out", str(tmp_path / "r3"), "--cache", cache]) == 0
    ran = yaml.safe_load((tmp_path / "r3" / "config.yaml").read_text())["config"]["run"]
    assert ran["probe"]["computed"] == ran["probe"]["planned"] > 0


# ---- the resized-frames cache of extraction --------------------------------------------------------------
def test_bit_flips_in_the_resized_frames_cache_are_recomputed(tmp_path):
    from helpers import moving_square_store
    from wmprobe.encoders.registry import load_encoder
    from wmprobe.extract import extract
    store = moving_square_store(episodes=2, steps=6, size=40)   # 40 px -> 8 px: the resize is cached
    enc = load_encoder("pixels:8")
    plain = extract(enc, store)
    extract(enc, store, frames_cache=tmp_path, frames_normalised=False)      # the resized entries alone
    f = next(next(tmp_path.iterdir()).glob("frames*.npy"))
    flip(f, offset=-16, n=8)                                     # same size, different pixels
    again = extract(enc, store, frames_cache=tmp_path, frames_normalised=False)
    np.testing.assert_array_equal(again.pooled["out"], plain.pooled["out"])
    from wmprobe.frames_cache import _intact
    assert _intact(f.parent, f.name)                             # rewritten
