"""Third-party encoders: the plugin file from docs/adding-an-encoder.md, loaded every way a user can.

The module is written into tmp_path (nothing installed) and put on sys.path; entry points are faked by
replacing the ``entry_points`` lookup the registry uses.
"""
from __future__ import annotations

import re
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import numpy as np
import pytest
import torch

from wmprobe.encoders import registry
from wmprobe.encoders.base import Encoder
from wmprobe.errors import EncoderError

DOC = Path(__file__).resolve().parents[2] / "docs" / "adding-an-encoder.md"


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """Write docs' ``acme_wm/encoder.py`` into tmp_path and make it importable; run-time registry isolated."""
    code = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(code) == 1, "the guide must hold exactly one python file"
    pkg = tmp_path / "acme_wm"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "encoder.py").write_text(code[0])
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry.ENCODERS, "_runtime", {})
    yield tmp_path
    for name in [m for m in sys.modules if m == "acme_wm" or m.startswith("acme_wm.")]:
        del sys.modules[name]


def frames(b=2, t=3, size=40, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (b, t, size, size, 3), dtype=np.uint8)


def test_dotted_path_loads_the_plugin(plugin):
    enc = registry.load_encoder("acme_wm.encoder:load", seed=3)
    assert isinstance(enc, Encoder) and enc.spec.family == "acme-wm"
    lat = enc.encode(frames(), ["conv1", "out"])
    assert lat.tokens["out"].shape == (2, 3, 64, 32) and lat.tokens["conv1"].shape == (2, 3, 256, 32)
    assert lat.frame_index.tolist() == [0, 1, 2]
    again = registry.load_encoder("acme_wm.encoder:load", seed=3).encode(frames())
    assert torch.equal(lat.tokens["out"], again.tokens["out"])


def test_register_encoder_with_a_checkpoint_round_trip(plugin, tmp_path):
    import acme_wm.encoder as mod
    torch.manual_seed(7)
    model = mod.TinyWorldModel()
    ckpt = mod.save_checkpoint(model, tmp_path / "ckpt")
    registry.register_encoder("acme-wm", "acme_wm.encoder:load", family="acme-wm", description="tiny world model")
    assert registry.list_encoders()["acme-wm"].family == "acme-wm"
    enc = registry.load_encoder(f"acme-wm:{ckpt}")
    with torch.no_grad():
        ref = mod.conv_tokens(model.encode(enc.preprocess(torch.from_numpy(frames(1, 1)))[:, 0])["out"])
    torch.testing.assert_close(enc.encode(frames(1, 1)).tokens["out"][:, 0], ref)
    # different weights -> different cache key; the same weights loaded again -> same key
    assert enc.spec.key() != registry.load_encoder("acme-wm").spec.key()
    assert enc.spec.key() == registry.load_encoder(f"acme-wm:{ckpt}").spec.key()
    with pytest.raises(EncoderError, match="no model.safetensors"):
        registry.load_encoder(f"acme-wm:{tmp_path / 'empty'}")


def test_register_encoder_with_a_callable(plugin):
    import acme_wm.encoder as mod
    registry.register_encoder("acme-callable", mod.load)
    assert registry.load_encoder("acme-callable").spec.layers == ("conv1", "out")


def test_entry_point_plugins_are_found_and_loaded(plugin, monkeypatch):
    def fake_entry_points(group=None, **_):
        eps = [EntryPoint("acme-ep", "acme_wm.encoder:load", registry.ENTRY_POINT_GROUP)]
        return [e for e in eps if group in (None, e.group)]
    monkeypatch.setattr(registry.metadata, "entry_points", fake_entry_points)
    assert registry.list_encoders()["acme-ep"].family == "plugin"
    enc = registry.load_encoder("acme-ep")
    assert enc.encode(frames(1, 2)).tokens["out"].shape == (1, 2, 64, 32)
    with pytest.raises(EncoderError, match="did you mean acme-ep"):
        registry.load_encoder("acme-e")


def test_plugin_features_feed_extraction(plugin):
    from helpers import moving_square_store
    from wmprobe.extract import extract
    store = moving_square_store(episodes=3, steps=6, size=32)
    feats = extract(registry.load_encoder("acme_wm.encoder:load"), store, layers=["out"])
    assert feats.pooled["out"].shape == (18, 32)
    assert feats.step_frame.tolist() == list(range(18))  # per-frame encoder: one step per store row


def test_broken_plugins_give_clear_errors(plugin, tmp_path):
    (tmp_path / "acme_wm" / "bad.py").write_text("def load(arg=None, **kw):\n    return 42\n")
    with pytest.raises(EncoderError, match="returned int, not an Encoder"):
        registry.load_encoder("acme_wm.bad:load")
    with pytest.raises(EncoderError, match="has no attribute 'nothere'"):
        registry.load_encoder("acme_wm.encoder:nothere")
    with pytest.raises(EncoderError, match="cannot import acme_wm.missing"):
        registry.load_encoder("acme_wm.missing:load")
