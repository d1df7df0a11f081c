"""Extraction's frame cache keeps each episode's frames resized (uint8, shared by every encoder of the resize) and,
on CPU, already normalised (float32, per normalisation, mapped back zero-copy): the latents must be the same bits
as extraction without the cache, whatever is in the cache, and a corrupted run must never read clean frames."""
import json
import os
import time

import numpy as np
import pytest
import torch

from helpers import moving_square_store
from wmprobe.encoders.base import Encoder, EncoderSpec
from wmprobe.encoders.registry import load_encoder
from wmprobe.extract import extract
from wmprobe.frames_cache import NORMALISED, SWITCH, FramesCache, _dim_order


def entries(root):
    """(resized entry dirs, normalised entry dirs) under a frame cache root."""
    dirs = [p for p in root.iterdir() if not p.name.startswith(".")] if root.exists() else []
    norm = [p for p in dirs if (p / NORMALISED).exists()]
    return [p for p in dirs if p not in norm], norm


def same(a, b):
    """Every array of two StepFeatures equal bit for bit."""
    assert a.layers == b.layers and list(a.tokens) == list(b.tokens)
    for name, arr in a.arrays().items():
        other = b.arrays()[name]
        assert arr.dtype == other.dtype and arr.shape == other.shape, name
        assert arr.tobytes() == other.tobytes(), name


@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory):
    pytest.importorskip("transformers")
    from fixtures.checkpoints import save
    root = tmp_path_factory.mktemp("ckpts")
    return {n: save(n, root / n) for n in ("vjepa2", "dinov2")}


CASES = [("vjepa2", ["layer_0", "out"]), ("dinov2", ["layer_1", "out"]), ("pixels:8", ["out", "patches"]),
         ("random-conv:1", ["conv2", "conv3"])]


@pytest.mark.parametrize("name,layers", CASES)
def test_latents_are_bit_identical_with_and_without_the_cache_clean_and_corrupted(name, layers, request, tmp_path):
    """V-JEPA 2 (padded last window: 21 frames in windows of 16, 2 per step), DINOv2 (batches of 4 frames, the last
    short), pixels and a random conv net; two layers and kept tokens; clean and corrupted, filling the cache and
    reading it back, normalised entries on and off, the corrupted run after the clean one in the same cache."""
    hf = name in ("vjepa2", "dinov2")                                       # tiny checkpoints need transformers
    enc = load_encoder(f"{name}:{request.getfixturevalue('tiny_hf')[name]}" if hf else name, device="cpu")
    store = moving_square_store(episodes=2, steps=21, size=40)             # 40 px: every encoder resizes
    kw = dict(layers=layers, keep_tokens=True, batch_size=4)
    for corruption in ("clean", "gaussian_noise:2"):
        plain = extract(enc, store, corruption=corruption, **kw)
        for normalised in (True, False):
            for _ in range(2):                                             # fill, then read
                same(extract(enc, store, corruption=corruption, frames_cache=tmp_path,
                             frames_normalised=normalised, **kw), plain)
        if corruption == "clean":
            clean = plain
    resized, norm = entries(tmp_path)
    assert len(resized) == len(norm) == 2 * store.n_episodes                # clean and corrupted: their own entries
    assert not np.array_equal(plain.pooled[layers[-1]], clean.pooled[layers[-1]])


def test_a_hit_maps_the_normalised_entry_and_needs_neither_the_resized_entry_nor_normalise(tmp_path, monkeypatch):
    store = moving_square_store(episodes=2, steps=6, size=40)
    enc = load_encoder("random-conv:2")
    plain = extract(enc, store, layers=["conv3"])
    extract(enc, store, layers=["conv3"], frames_cache=tmp_path)
    resized, norm = entries(tmp_path)
    for p in resized:                                                       # gone: not needed on a hit
        for f in p.iterdir():
            f.unlink()
        p.rmdir()

    def fail(*a, **k):
        raise AssertionError("a hit recomputed the frames")
    monkeypatch.setattr("wmprobe.extract._EpisodeNormaliser.__call__", fail)
    monkeypatch.setattr("wmprobe.extract._episode_frames", fail)
    same(extract(enc, store, layers=["conv3"], frames_cache=tmp_path), plain)
    monkeypatch.undo()
    cache = FramesCache(tmp_path, enc, store)
    x = cache.normalised(0, fail, fail)
    if os.path.exists("/proc/self/maps"):                                  # zero-copy: the file's own pages
        ptr = x.untyped_storage().data_ptr()
        maps = [line.split() for line in open("/proc/self/maps")]
        where = [m[-1] for m in maps if int(m[0].split("-")[0], 16) <= ptr < int(m[0].split("-")[1], 16)]
        assert where == [str(tmp_path / cache.normalised_key(0) / NORMALISED)]
    x.add_(1.0)                                                             # copy-on-write: the file is unchanged
    assert not torch.equal(cache.normalised(0, fail, fail), x)


class Unit(Encoder):
    """Per-frame encoder on the base class's resize and normalisation (bilinear to 8 px): token = the frame."""

    def __init__(self, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)):
        self.spec = EncoderSpec(name="unit", family="test", input_size=(8, 8), mean=mean, std=std)
        self.resizes = 0

    def resize_frames(self, frames):
        self.resizes += 1
        return super().resize_frames(frames)

    def forward_layers(self, x, layers):
        return {"out": x.flatten(2)[:, :, None, :].clone()}


def test_two_normalisations_share_one_resize_and_have_their_own_entries(tmp_path):
    store = moving_square_store(episodes=3, steps=5, size=40)
    a, b = Unit(), Unit(mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.4))
    assert a.resize_key() == b.resize_key() and a.normalise_key() != b.normalise_key()
    fa, fb = extract(a, store, frames_cache=tmp_path), extract(b, store, frames_cache=tmp_path)
    assert a.resizes == 3 and b.resizes == 0                              # b read a's resized frames
    resized, norm = entries(tmp_path)
    assert len(resized) == 3 and len(norm) == 6
    for enc, feats in ((Unit(), fa), (Unit(mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.4)), fb)):
        same(extract(enc, store, frames_cache=tmp_path), feats)
        same(extract(enc, store), feats)
        assert enc.resizes == 3                                            # only the uncached run resized
    ca, cb = FramesCache(tmp_path, a, store), FramesCache(tmp_path, b, store)
    assert ca.key(1) == cb.key(1) and ca.normalised_key(1) != cb.normalised_key(1)
    rec = json.loads((tmp_path / ca.normalised_key(1) / "entry.json").read_text())
    assert rec["source"] == ca.key(1) and rec["normalise"]["mean"] == [0.0, 0.0, 0.0]
    assert {"torch", "cpu", "dtype", "impl", "std"} <= set(rec["normalise"])


@pytest.mark.parametrize("damage", ["garbage", "truncate", "flip", "record"])
def test_a_damaged_normalised_entry_is_rebuilt_never_used(damage, tmp_path):
    store = moving_square_store(episodes=2, steps=6, size=40)
    enc = load_encoder("pixels:8")
    plain = extract(enc, store)
    extract(enc, store, frames_cache=tmp_path)
    entry = entries(tmp_path)[1][0]
    f = entry / NORMALISED
    if damage == "garbage":
        f.write_bytes(b"\x93NUMPY garbage")
    elif damage == "truncate":
        os.truncate(f, f.stat().st_size // 2)
    elif damage == "flip":                                                  # same size, other values, new mtime
        time.sleep(0.02)
        with open(f, "r+b") as fh:
            fh.seek(-64, os.SEEK_END)
            b = fh.read(16)
            fh.seek(-16, os.SEEK_CUR)
            fh.write(bytes(x ^ 0xFF for x in b))
    else:                                                                   # a record naming another layout
        rec = json.loads((entry / "entry.json").read_text())
        (entry / "entry.json").write_text(json.dumps({**rec, "shape": rec["shape"][::-1]}))
    same(extract(enc, store, frames_cache=tmp_path), plain)
    rec = json.loads((entry / "entry.json").read_text())
    assert rec["stamps"][NORMALISED]["size"] == f.stat().st_size            # rewritten whole
    same(extract(enc, store, frames_cache=tmp_path), plain)


def test_the_switch_keeps_resized_frames_only(tmp_path, monkeypatch):
    store = moving_square_store(episodes=2, steps=4, size=40)
    enc = load_encoder("pixels:8")
    plain = extract(enc, store)
    same(extract(enc, store, frames_cache=tmp_path / "a", frames_normalised=False), plain)
    assert [len(e) for e in entries(tmp_path / "a")] == [2, 0]
    monkeypatch.setenv(SWITCH, "0")
    same(extract(enc, store, frames_cache=tmp_path / "b"), plain)
    assert entries(tmp_path / "b")[1] == []
    monkeypatch.delenv(SWITCH)
    same(extract(enc, store, frames_cache=tmp_path / "b"), plain)
    assert len(entries(tmp_path / "b")[1]) == 2                             # on by default
    sizes = [sum(f.stat().st_size for f in p.glob("*.npy")) for p in entries(tmp_path / "b")[1]]
    assert min(sizes) > 4 * 4 * 8 * 8 * 3                                   # float32: 4 bytes a value


def test_an_encoder_with_its_own_normalisation_is_not_given_normalised_entries(tmp_path):
    store = moving_square_store(episodes=1, steps=4, size=40)
    enc = Unit()
    enc.normalise = lambda x, out=None: Encoder.normalise(enc, x) * 2      # patched: its inputs are unknown
    assert enc.normalise_key() is None
    feats = extract(enc, store, frames_cache=tmp_path)
    assert entries(tmp_path)[1] == [] and len(entries(tmp_path)[0]) == 1
    same(feats, extract(enc, store))


def test_dim_order_round_trips_the_layouts_a_file_can_hold():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 4, 5, 3)
    for t in (x.permute(0, 3, 1, 2), x.permute(0, 3, 1, 2).contiguous()):   # channels-last and contiguous
        order = _dim_order(t)
        back = t.permute(order).contiguous().permute([order.index(d) for d in range(4)])
        assert back.stride() == t.stride() and torch.equal(back, t)
    assert _dim_order(x.permute(0, 3, 1, 2)[:, :, ::2]) is None             # strided: not stored
