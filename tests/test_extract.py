from typing import Sequence

import numpy as np
import pytest
import torch

from helpers import moving_square_store
from wmprobe.encoders.base import Encoder, EncoderSpec
from wmprobe.encoders.registry import load_encoder
from wmprobe.extract import StepFeatures, extract, window_plan


class FrameId(Encoder):
    """Token = the raw value of pixel (0, 0, red) of the first frame of each step (identifies the frame)."""

    def __init__(self, fps: int = 1, clip_len: int | None = None, window: int | None = None):
        extra = {"window": window} if window else {}
        self.spec = EncoderSpec(name="frame-id", family="test", input_size=(8, 8), frames_per_step=fps,
                                clip_len=clip_len, extra=extra, resize="nearest")

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        return frames.permute(0, 1, 4, 2, 3).float()

    def forward_layers(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        v = x[:, :: self.spec.frames_per_step, 0, 0, 0]                   # (B, T')
        return {"out": v[..., None, None].expand(*v.shape, 2, 3).clone()}


def id_store(lengths):
    """Frames whose pixel (0, 0, red) holds their global row number (mod 256)."""
    from wmprobe.data.store import from_episodes
    eps, row = [], 0
    for n in lengths:
        fr = np.zeros((n, 8, 8, 3), np.uint8)
        fr[:, 0, 0, 0] = (np.arange(row, row + n) % 256).astype(np.uint8)
        eps.append((fr, np.zeros((n, 7), np.float32)))
        row += n
    return from_episodes(eps, [0] * len(lengths), fps=10, action_names=list("xyzrpwg"),
                         action_groups={"translation": [0, 1, 2]}, task_names=["t"], source={})


@pytest.mark.parametrize("enc,expect_steps", [
    (FrameId(), [7, 5]),                      # per-frame: every frame
    (FrameId(fps=2, window=4), [3, 2]),       # tubelets of 2, windows of 4, padding dropped
    (FrameId(fps=2, clip_len=4), [3, 2]),     # fixed-length clips (VideoMAE-style)
])
def test_step_frame_points_at_the_first_frame_of_each_step(enc, expect_steps):
    store = id_store([7, 5])
    feats = extract(enc, store, batch_size=3)
    assert np.bincount(feats.step_episode).tolist() == expect_steps
    # the feature of each step is the id of the frame it starts on
    np.testing.assert_array_equal(feats.pooled["out"][:, 0], feats.step_frame % 256)
    for e in range(2):
        rows = feats.step_frame[feats.step_episode == e]
        sl = store.episode_slice(e)
        assert rows.min() >= sl.start and rows.max() < sl.stop
        assert np.all(np.diff(rows) == enc.spec.frames_per_step)


def test_window_plan():
    assert window_plan(7, 2, 4) == [(0, 4), (4, 2)]
    assert window_plan(1, 2, 4) == []
    assert window_plan(9, 1, None) == [(0, 9)]


def test_features_are_deterministic_and_round_trip(tmp_path):
    store = moving_square_store(episodes=3, steps=6)
    enc = load_encoder("random-conv:3")
    a = extract(enc, store, layers=["conv2", "conv3"], keep_tokens=True, token_pool=2)
    b = extract(load_encoder("random-conv:3"), store, layers=["conv2", "conv3"], keep_tokens=True,
                token_pool=2)
    np.testing.assert_array_equal(a.pooled["conv3"], b.pooled["conv3"])
    # another batch size changes float summation order only (docs/footguns.md)
    c = extract(enc, store, layers=["conv3"], batch_size=5)
    np.testing.assert_allclose(a.pooled["conv3"], c.pooled["conv3"], atol=1e-5)
    assert a.tokens["conv3"].shape == (18, 16, 64) and a.pooled["conv2"].shape == (18, 64)
    a.save(tmp_path / "f")
    back = StepFeatures.load(tmp_path / "f")
    np.testing.assert_array_equal(back.tokens["conv2"], a.tokens["conv2"])
    assert back.spec["key"] == enc.spec.key()


def test_pixels_pooled_feature_is_the_image():
    store = moving_square_store(episodes=2, steps=3, size=16)
    feats = extract(load_encoder("pixels"), store)
    assert feats.pooled["out"].shape == (6, 16 * 16 * 3)
    img = feats.pooled["out"][4].reshape(3, 16, 16).transpose(1, 2, 0)
    np.testing.assert_allclose(img * 255, store.frames[4], atol=1)


def test_out_of_range_episode_is_an_error():
    from wmprobe.errors import StoreError
    with pytest.raises(StoreError, match="out of range"):
        extract(load_encoder("pixels"), moving_square_store(episodes=2, steps=3), episodes=[5])


@pytest.mark.parametrize("name", ["pixels:8", "random-conv:1"])
def test_frame_cache_gives_identical_features_and_survives_a_damaged_entry(name, tmp_path):
    store = moving_square_store(episodes=3, steps=6, size=40)                  # 40 px -> 8 / 64 px: resized
    enc = load_encoder(name)
    plain = extract(enc, store, corruption="shot_noise:1")
    # the resized entries alone (tests/test_frames_cache.py checks the normalised ones made from them)
    first = extract(enc, store, corruption="shot_noise:1", frames_cache=tmp_path, frames_normalised=False)
    entries = sorted(tmp_path.iterdir())
    files = [next(p.glob("frames*.npy")) for p in entries]                   # (T, 3, h, w) or (T, h, w, 3)
    assert len(entries) == 3 and sorted(np.load(files[0]).shape[1:]) == sorted((3, *enc.spec.input_size))
    files[0].write_bytes(b"\x93NUMPY garbage")                                 # a damaged entry is recomputed
    again = extract(enc, store, corruption="shot_noise:1", frames_cache=tmp_path, frames_normalised=False)
    for f in (first, again):
        np.testing.assert_array_equal(f.pooled[enc.spec.default_layer], plain.pooled[enc.spec.default_layer])
    assert np.load(next(entries[0].glob("frames*.npy"))).shape[0] == 6


def test_frames_already_at_the_input_size_are_not_cached(tmp_path):
    store = moving_square_store(episodes=2, steps=4, size=64)
    extract(load_encoder("random-conv:0"), store, frames_cache=tmp_path)      # 64 px in, 64 px input
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_frame_cache_keys_are_stable_and_a_copied_entry_is_reused_not_recomputed(tmp_path):
    import hashlib
    import json
    import os
    import shutil
    from wmprobe.frames_cache import FramesCache
    store = moving_square_store(episodes=2, steps=6, size=40)
    enc = load_encoder("pixels:8")
    cache = FramesCache(tmp_path / "a", enc, store)
    for e in (0, 1, 12345):   # the key hashes the same JSON as every earlier version: existing caches stay valid
        blob = json.dumps({**cache.base, "episode": e}, sort_keys=True, default=str)
        assert cache.key(e) == hashlib.sha256(blob.encode()).hexdigest()[:32]
    plain = extract(enc, store)
    extract(enc, store, frames_cache=tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")                  # a copy: same bytes, new mtimes
    for f in (tmp_path / "b").glob("*/frames*.npy"):
        os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))

    def recompute():
        raise AssertionError("an intact copied entry was recomputed")
    copy = FramesCache(tmp_path / "b", enc, store)
    for e in range(store.n_episodes):
        entry = tmp_path / "b" / copy.key(e)
        first = copy.episode(e, recompute)                           # re-hashed, matches: used and restamped
        rec = json.loads((entry / "entry.json").read_text())
        name = next(iter(rec["checksums"]))
        assert rec["stamps"][name]["mtime_ns"] == (entry / name).stat().st_mtime_ns
        assert torch.equal(copy.episode(e, recompute), first)        # the stamped read gives the same frames
    again = extract(enc, store, frames_cache=tmp_path / "b")
    np.testing.assert_array_equal(again.pooled["out"], plain.pooled["out"])


def test_the_episode_normaliser_reuses_one_buffer_with_normalise_s_bits_and_strides():
    """Extraction normalises each cached episode into one reused buffer; the values and strides are those of
    the adapter's own ``normalise`` for uint8 channels-last, contiguous and float frames, episode lengths up
    and down."""
    from types import SimpleNamespace

    from wmprobe.encoders.hf import normalise_stage
    from wmprobe.extract import _EpisodeNormaliser
    spec = SimpleNamespace(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))

    class Enc:
        device = torch.device("cpu")

        def normalise(self, x, out=None):
            return normalise_stage(x, spec, out)
    norm = _EpisodeNormaliser(Enc())
    g = torch.Generator().manual_seed(0)
    for t in (9, 4, 12):
        u8 = torch.randint(0, 256, (t, 20, 24, 3), dtype=torch.uint8, generator=g)
        for x in (u8.permute(0, 3, 1, 2), u8.permute(0, 3, 1, 2).contiguous(), u8.permute(0, 3, 1, 2).float() / 255):
            want = normalise_stage(x, spec)
            got = norm(x)
            assert torch.equal(got, want) and got.stride() == want.stride() and got.dtype == torch.float32
            assert got.untyped_storage().data_ptr() == norm.buffer.untyped_storage().data_ptr()


def test_a_rewritten_cache_record_is_read_again_not_taken_from_memory(tmp_path):
    """Cache records are kept in memory between hits while entry.json is unchanged; a replaced one is re-read."""
    import json
    import os

    from wmprobe.frames_cache import _record
    (tmp_path / "entry.json").write_text(json.dumps({"shape": [1, 3, 2, 2]}))
    assert _record(tmp_path) == {"shape": [1, 3, 2, 2]}
    first = _record(tmp_path)
    first["shape"] = "edited by a caller"                          # a caller's copy, not the kept record
    assert _record(tmp_path) == {"shape": [1, 3, 2, 2]}
    (tmp_path / "new.json").write_text(json.dumps({"shape": [2, 3, 2, 2]}))
    os.replace(tmp_path / "new.json", tmp_path / "entry.json")      # how entries are rewritten: a rename
    assert _record(tmp_path) == {"shape": [2, 3, 2, 2]}
    (tmp_path / "entry.json").write_text("not json")
    assert _record(tmp_path) == {}


def test_shards_are_written_as_np_save_writes_them(tmp_path):
    """``StepFeatures.save`` writes each array in two system calls; the files are np.save's, byte for byte."""
    feats = extract(load_encoder("random-conv:0"), moving_square_store(episodes=2, steps=3),
                    layers=["conv2", "conv3"], keep_tokens=True)
    feats.save(tmp_path / "f")
    for name, arr in feats.arrays().items():
        np.save(tmp_path / "ref.npy", np.ascontiguousarray(arr))
        assert (tmp_path / "f" / f"{name}.npy").read_bytes() == (tmp_path / "ref.npy").read_bytes(), name


@pytest.mark.parametrize("name", ["pixels:8", "random-conv:3", "frame-id"])
def test_spec_to_dict_is_dataclasses_asdict_with_lists(name):
    import dataclasses
    enc = FrameId(fps=2, window=4) if name == "frame-id" else load_encoder(name)
    spec = enc.spec
    want = dataclasses.asdict(spec)
    want.update(input_size=list(spec.input_size), mean=list(spec.mean), std=list(spec.std), layers=list(spec.layers))
    got = spec.to_dict()
    assert got == want and list(got) == list(want) and got["extra"] is not spec.extra
    odd = dataclasses.replace(spec, extra={"nested": {"a": [1, 2]}})          # not scalars: asdict itself
    assert odd.to_dict()["extra"] == {"nested": {"a": [1, 2]}} and odd.key() != spec.key()
