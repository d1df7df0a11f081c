import numpy as np
import pytest

from helpers import moving_square_store
from wmprobe import zoo
from wmprobe.encoders.registry import load_encoder
from wmprobe.errors import ConfigError, EncoderError


@pytest.fixture(scope="module")
def store():
    return moving_square_store(episodes=6, steps=8, size=64)


def test_train_reuse_and_round_trip(store, tmp_path):
    ck = zoo.train("vae", store, train_episodes=[0, 1, 2, 3], preset="tiny", cache_dir=tmp_path, progress=False)
    assert zoo.train("vae", store, train_episodes=[0, 1, 2, 3], preset="tiny", cache_dir=tmp_path,
                     progress=False) == ck                                   # same recipe: reused
    a = load_encoder(f"zoo:{ck}")
    b = zoo.load(ck)
    assert a.spec.weights_hash == b.spec.weights_hash and a.spec.family == "vae"
    frames = store.frames[:4][None]
    np.testing.assert_array_equal(a.encode(frames).tokens["out"], b.encode(frames).tokens["out"])
    assert a.encode(frames).tokens["out"].shape == (1, 4, 64, 16)
    assert a.decode_latents(a.encode(frames).tokens["out"]).shape == (1, 4, 64, 64, 3)


def test_same_seed_same_weights_and_id_changes_them(store, tmp_path):
    kw = dict(train_episodes=[0, 1, 2], preset="tiny", progress=False)
    h1 = zoo.load(zoo.train("vae", store, cache_dir=tmp_path / "a", **kw)).spec.weights_hash
    h2 = zoo.load(zoo.train("vae", store, cache_dir=tmp_path / "b", **kw)).spec.weights_hash
    h3 = zoo.load(zoo.train("vae", store, cache_dir=tmp_path / "c", id_weight=1.0, **kw)).spec.weights_hash
    assert h1 == h2 != h3


def test_training_refuses_test_episodes(store, tmp_path):
    with pytest.raises(ConfigError, match=r"overlaps the probe's test episodes \[2\]"):
        zoo.train("vae", store, train_episodes=[0, 1, 2], forbid_episodes=[2, 5], preset="tiny",
                  cache_dir=tmp_path, progress=False)
    with pytest.raises(ConfigError, match="unknown zoo family"):
        zoo.train("dino", store, train_episodes=[0], cache_dir=tmp_path)
    with pytest.raises(EncoderError, match="missing or corrupt"):
        zoo.load(tmp_path / "nope")
