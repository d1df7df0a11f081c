"""Pretrained-encoder adapters on tiny random-init checkpoints saved and loaded back the way a user does.

Each checkpoint is built with hidden size 32, 2 layers, 32x32 input, saved with save_pretrained
(safetensors) into tmp_path, and loaded through ``load_encoder("name:" + dir)``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")
diffusers = pytest.importorskip("diffusers")

from fixtures.checkpoints import ADAPTERS, EXPECT, OPTIONS, save  # noqa: E402
from fixtures.checkpoints import vae as _vae  # noqa: E402
from wmprobe.encoders.registry import load_encoder  # noqa: E402
from wmprobe.errors import EncoderError  # noqa: E402


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ckpts")
    return {n: save(n, root / n) for n in ADAPTERS}


def frames(b: int = 2, t: int = 4, h: int = 40, w: int = 48, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (b, t, h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", ADAPTERS)
def test_shapes_layers_and_time_alignment(name, ckpts):
    enc = load_encoder(f"{name}:{ckpts[name]}", device="cpu", **OPTIONS.get(name, {}))
    fps, n_layers, n_tok, dim = EXPECT[name]
    assert enc.spec.frames_per_step == fps and len(enc.spec.layers) == n_layers
    lat = enc.encode(frames(), enc.spec.layers)
    assert set(lat.tokens) == set(enc.spec.layers)
    for layer, tok in lat.tokens.items():
        assert tok.dtype == torch.float32 and tok.shape[:2] == (2, 4 // fps), layer
        if n_tok and layer not in ("cls", "pooled"):
            assert tok.shape[2:] == (n_tok, dim), layer
        assert torch.isfinite(tok).all()
    # latent step s starts at frame s * frames_per_step (tubelet 2 for the video models)
    assert lat.frame_index.tolist() == list(range(0, 4, fps))
    # deterministic: same frames, same features; a fresh load of the same files gives the same key
    again = enc.encode(frames(), enc.spec.layers)
    assert all(torch.equal(lat.tokens[l], again.tokens[l]) for l in lat.tokens)
    assert load_encoder(f"{name}:{ckpts[name]}", device="cpu", **OPTIONS.get(name, {})).spec.key() == enc.spec.key()


@pytest.mark.parametrize("name", ADAPTERS)
def test_weights_change_the_cache_key_but_location_does_not(name, ckpts, tmp_path):
    key = load_encoder(f"{name}:{ckpts[name]}", device="cpu", **OPTIONS.get(name, {})).spec.key()
    moved = load_encoder(f"{name}:{save(name, tmp_path / 'copy', seed=0)}", device="cpu", **OPTIONS.get(name, {}))
    other = load_encoder(f"{name}:{save(name, tmp_path / 'other', seed=1)}", device="cpu", **OPTIONS.get(name, {}))
    assert moved.spec.key() == key
    assert other.spec.key() != key


def test_layers_are_the_models_own_hidden_states_and_early_exit_agrees(ckpts):
    enc = load_encoder(f"vjepa2:{ckpts['vjepa2']}", device="cpu")
    clip = frames(1, 6, 32, 32)
    x = enc.preprocess(torch.from_numpy(clip))
    with torch.no_grad():
        ref = enc.model(pixel_values_videos=x, skip_predictor=True, output_hidden_states=True)
    full = enc.encode(clip, enc.spec.layers)
    for i in range(2):  # hidden_states[0] is the patch embedding
        torch.testing.assert_close(full.tokens[f"layer_{i}"].reshape(1, -1, 32), ref.hidden_states[i + 1])
    torch.testing.assert_close(full.tokens["out"].reshape(1, -1, 32), ref.last_hidden_state)
    early = enc.encode(clip, ["layer_0"])  # only block 0 runs
    assert torch.equal(early.tokens["layer_0"], full.tokens["layer_0"])
    assert full.tokens["out"].shape == (1, 3, 16, 32)  # any even clip length: 6 frames -> 3 steps


def test_dinov3_drops_register_tokens_and_exposes_cls(ckpts):
    enc = load_encoder(f"dinov3:{ckpts['dinov3']}", device="cpu")
    assert enc.spec.extra["register_tokens"] == 2
    clip = frames(1, 1, 32, 32)
    with torch.no_grad():
        ref = enc.model(pixel_values=enc.preprocess(torch.from_numpy(clip))[:, 0]).last_hidden_state  # (1, 1+2+16, D)
    lat = enc.encode(clip, ["out", "cls"])
    torch.testing.assert_close(lat.tokens["out"][0, 0], ref[0, 3:])
    torch.testing.assert_close(lat.tokens["cls"][0, 0], ref[0, :1])


def test_preprocessing_comes_from_the_processor_config_and_keys_the_cache(tmp_path):
    d = save("dinov2", tmp_path / "d")
    base = load_encoder(f"dinov2:{d}", device="cpu")
    assert base.spec.extra["processor"] == "defaults"
    pp = {"do_resize": True, "size": {"shortest_edge": 40}, "do_center_crop": True,
          "crop_size": {"height": 32, "width": 32}, "do_normalize": True, "image_mean": [0.1, 0.2, 0.3],
          "image_std": [0.5, 0.5, 0.5], "resample": 3, "do_rescale": True, "rescale_factor": 1 / 255}
    (d / "preprocessor_config.json").write_text(json.dumps(pp))
    enc = load_encoder(f"dinov2:{d}", device="cpu")
    s = enc.spec
    assert s.input_size == (32, 32) and s.extra["resize_short"] == 40 and s.resize == "bicubic"
    assert s.mean == pytest.approx((0.1, 0.2, 0.3)) and s.std == pytest.approx((0.5, 0.5, 0.5))
    assert s.key() != base.spec.key()
    x = enc.preprocess(torch.from_numpy(frames(1, 1, 60, 80)))  # short side 60 -> 40, then 32x32 center crop
    assert x.shape == (1, 1, 3, 32, 32)
    pp["image_mean"] = [0.1, 0.2, 0.31]
    (d / "preprocessor_config.json").write_text(json.dumps(pp))
    assert load_encoder(f"dinov2:{d}", device="cpu").spec.key() != s.key()


def test_videomae_needs_its_exact_clip_length(ckpts):
    enc = load_encoder(f"videomae:{ckpts['videomae']}", device="cpu")
    assert enc.spec.clip_len == 4 and enc.spec.extra["pad"] == "repeat_last"
    with pytest.raises(EncoderError, match="exactly 4 frames, got 6"):
        enc.encode(frames(1, 6))


def test_extraction_follows_the_video_windowing_rule(ckpts):
    from helpers import moving_square_store
    from wmprobe.extract import extract
    store = moving_square_store(episodes=2, steps=11, size=32)
    enc = load_encoder(f"videomae:{ckpts['videomae']}", device="cpu")
    feats = extract(enc, store, layers=["out", "layer_1"])
    # 11 frames -> 10 usable (tubelet 2) -> windows of 4: [0..3] [4..7] [8,9 + 2 padded] -> 5 steps per episode
    assert feats.step_frame.tolist() == [0, 2, 4, 6, 8, 11, 13, 15, 17, 19]
    assert feats.pooled["out"].shape == (10, 32)


def test_vae_decode_round_trips_shapes(ckpts):
    enc = load_encoder(f"sd-vae:{ckpts['sd-vae']}", device="cpu")
    lat = enc.encode(frames(2, 3))
    img = enc.decode_latents(lat.tokens["out"])
    assert img.shape == (2, 3, 32, 32, 3) and img.dtype == torch.uint8
    with pytest.raises(EncoderError, match="expects 256 tokens"):
        enc.decode_latents(lat.tokens["out"][:, :, :10])


def test_diffusion_timestep_and_seed_are_in_the_spec(ckpts):
    d = ckpts["diffusion-unet"]
    a, b = load_encoder(f"diffusion-unet:{d}", device="cpu", t=50), load_encoder(f"diffusion-unet:{d}", t=400)
    c = load_encoder(f"diffusion-unet:{d}", device="cpu", t=50, seed=1)
    assert len({a.spec.key(), b.spec.key(), c.spec.key()}) == 3
    clip = frames(1, 2, 32, 32)
    fa, fb = a.encode(clip).tokens["up_blocks.1"], b.encode(clip).tokens["up_blocks.1"]
    assert not torch.allclose(fa, fb)
    assert torch.equal(fa, load_encoder(f"diffusion-unet:{d}", device="cpu", t=50).encode(clip).tokens["up_blocks.1"])
    with pytest.raises(EncoderError, match="timestep t=5000"):
        load_encoder(f"diffusion-unet:{d}", t=5000)


def test_latent_diffusion_pipeline_dir_with_conditional_unet(tmp_path):
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(16, 32),
                                          layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                          up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16,
                                          norm_num_groups=8, attention_head_dim=8)
    unet.save_pretrained(tmp_path / "unet")
    _vae().save_pretrained(tmp_path / "vae")
    diffusers.DDIMScheduler().save_pretrained(tmp_path / "scheduler")
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    enc = load_encoder(f"diffusion-unet:{tmp_path}", device="cpu")
    assert enc.spec.extra["latent"] and enc.spec.input_size == (16, 16)  # 8x8 latent, VAE downsamples by 2
    tok = enc.encode(frames(1, 2)).tokens[enc.spec.default_layer]
    assert tok.shape[:2] == (1, 2) and torch.isfinite(tok).all()


def test_bf16_autocast_stays_close_to_fp32(ckpts):
    d = ckpts["dinov2"]
    f32 = load_encoder(f"dinov2:{d}", device="cpu").encode(frames(1, 2)).tokens["out"]
    b16 = load_encoder(f"dinov2:{d}", device="cpu", bf16=True).encode(frames(1, 2)).tokens["out"]
    assert b16.dtype == torch.float32
    assert torch.corrcoef(torch.stack([f32.flatten(), b16.flatten()]))[0, 1] > 0.99


# ---- clear errors --------------------------------------------------------------------------------------------
def test_missing_checkpoint_dir(tmp_path):
    with pytest.raises(EncoderError, match="checkpoint directory .*nope.* does not exist"):
        load_encoder(f"dinov2:{tmp_path / 'nope'}")


def test_default_hub_id_offline_says_how_to_provide_it(monkeypatch, tmp_path):
    import huggingface_hub.constants as hc
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(EncoderError, match="facebook/vjepa2-vitl-fpc64-256' is not on disk.*HF_HOME.*vjepa2:/path"):
        load_encoder("vjepa2")


def test_unknown_name_suggests_close_names():
    with pytest.raises(EncoderError, match="did you mean.*siglip"):
        load_encoder("siglipp:/x")


def test_remote_code_is_refused_unless_opted_in(tmp_path):
    d = save("dinov2", tmp_path / "d")
    cfg = json.loads((d / "config.json").read_text())
    cfg["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(EncoderError, match="ships its own Python code.*trust_remote_code=True"):
        load_encoder(f"dinov2:{d}")


def test_pickle_only_and_wrong_family_checkpoints_are_refused(tmp_path):
    d = save("dinov2", tmp_path / "d")
    with pytest.raises(EncoderError, match="is a 'dinov2' model, expected vjepa2"):
        load_encoder(f"vjepa2:{d}")
    (d / "model.safetensors").rename(d / "pytorch_model.bin")
    with pytest.raises(EncoderError, match="no \\*.safetensors weights.*pytorch_model.bin"):
        load_encoder(f"dinov2:{d}")


def test_unknown_option_and_layer_are_named(ckpts):
    with pytest.raises(EncoderError, match="unknown option.*colour"):
        load_encoder(f"dinov2:{ckpts['dinov2']}", colour="red")
    enc = load_encoder(f"dinov2:{ckpts['dinov2']}", device="cpu")
    with pytest.raises(EncoderError, match="no layer.*layer_7"):
        enc.encode(frames(1, 1), ["layer_7"])


def test_fast_uint8_resize_matches_the_float_reference(ckpts):
    from wmprobe.encoders.base import Encoder
    enc = load_encoder(f"vjepa2:{ckpts['vjepa2']}", device="cpu")  # bilinear, no crop, ImageNet mean/std
    f = torch.from_numpy(frames(2, 2, 96, 80))
    fast, ref = enc.preprocess(f), Encoder.preprocess(enc, f)
    assert fast.shape == ref.shape == (2, 2, 3, 32, 32)
    assert (fast - ref).abs().max() < 1.5 / 255 / min(enc.spec.std)  # uint8 rounding only


@pytest.mark.slow
def test_cosmos_drops_the_repeated_first_frame_step_and_aligns_like_a_tubelet(ckpts):
    """A clip of r*k frames goes in with frame 0 repeated in front; the model's own latent of that padded clip,
    minus step 0, is what the adapter returns, and step i starts at frame r*i."""
    enc = load_encoder(f"cosmos:{ckpts['cosmos']}", device="cpu", size=32)
    assert enc.spec.frames_per_step == 2 and enc.spec.extra["downsample"] == 2 and enc.spec.extra["window"] == 4
    clip = frames(1, 6, 32, 32)
    x = enc.preprocess(torch.from_numpy(clip))                                   # (1, 6, 3, 32, 32)
    with torch.no_grad():
        padded = torch.cat([x[:, :1], x], dim=1).transpose(1, 2)                 # (1, 3, 7, 32, 32)
        ref = enc.vae.encode(padded).latent_dist.mode()                          # (1, 4, 4, 16, 16)
    lat = enc.encode(clip)
    assert lat.tokens["out"].shape == (1, 3, 256, 4) and lat.frame_index.tolist() == [0, 2, 4]
    torch.testing.assert_close(lat.tokens["out"], ref[:, :, 1:].permute(0, 2, 3, 4, 1).reshape(1, 3, 256, 4))
    # causal: the latents of the first 4 frames do not depend on the frames after them
    head = enc.encode(clip[:, :4]).tokens["out"]
    torch.testing.assert_close(head, lat.tokens["out"][:, :2], atol=1e-5, rtol=1e-4)
    with pytest.raises(EncoderError, match="multiple of its 2 frames"):
        enc.encode(frames(1, 3, 32, 32))
    with pytest.raises(EncoderError, match="window=3"):
        load_encoder(f"cosmos:{ckpts['cosmos']}", device="cpu", window=3)
    with pytest.raises(EncoderError, match="AutoencoderKLCosmos"):
        load_encoder(f"cosmos:{ckpts['sd-vae']}", device="cpu")
    from helpers import moving_square_store
    from wmprobe.extract import extract
    feats = extract(enc, moving_square_store(episodes=1, steps=11, size=32))
    assert feats.step_frame.tolist() == [0, 2, 4, 6, 8]  # windows of 4 frames; the last one padded


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vjepa2", "dinov2", "siglip", "sd-vae", "cosmos"])
def test_extraction_through_the_frame_cache_gives_identical_features(name, ckpts, tmp_path):
    from helpers import moving_square_store
    from wmprobe.extract import extract
    store = moving_square_store(episodes=2, steps=9, size=40)                 # 40 px: every adapter resizes
    enc = load_encoder(f"{name}:{ckpts[name]}", device="cpu", **OPTIONS.get(name, {}))
    layer = enc.spec.layers[-1] if name != "sd-vae" else enc.spec.default_layer
    plain = extract(enc, store, layers=[layer], corruption="gaussian_noise:2", batch_size=4)
    for _ in range(2):                                                         # fill, then read the cache
        cached = extract(enc, store, layers=[layer], corruption="gaussian_noise:2", batch_size=4,
                         frames_cache=tmp_path)
        np.testing.assert_array_equal(cached.pooled[layer], plain.pooled[layer])
        np.testing.assert_array_equal(cached.step_frame, plain.step_frame)
    # one entry per episode of resized frames, and (on CPU) one of the same frames normalised
    assert len([p for p in tmp_path.iterdir() if not p.name.startswith(".")]) == 2 * 2


def test_encoders_sharing_a_resize_share_frame_cache_entries(ckpts, tmp_path):
    from helpers import moving_square_store
    from wmprobe.extract import extract
    store = moving_square_store(episodes=2, steps=8, size=40)
    vj = load_encoder(f"vjepa2:{ckpts['vjepa2']}", device="cpu")
    vm = load_encoder(f"videomae:{ckpts['videomae']}", device="cpu")
    assert vj.resize_key() == vm.resize_key()
    extract(vj, store, frames_cache=tmp_path)
    entries = sorted(p.name for p in tmp_path.iterdir())
    feats = extract(vm, store, frames_cache=tmp_path)                          # reuses them
    assert sorted(p.name for p in tmp_path.iterdir()) == entries
    np.testing.assert_array_equal(feats.pooled["out"], extract(vm, store).pooled["out"])
    extract(vj, store, frames_cache=tmp_path, corruption="contrast:1")         # new pixels: new entries
    assert len(list(tmp_path.iterdir())) == 2 * len(entries)


def test_normalisation_is_the_processor_formula_bit_for_bit_in_every_layout():
    """The frame-shaped factor tables give exactly ``-mean / std + x * (scale / std)`` (the broadcast form),
    with the same output strides, for channels-last and contiguous, uint8 and float frames."""
    from types import SimpleNamespace
    from wmprobe.encoders.hf import normalise_stage
    spec = SimpleNamespace(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    m, s = torch.tensor(spec.mean).view(3, 1, 1), torch.tensor(spec.std).view(3, 1, 1)
    g = torch.Generator().manual_seed(0)
    u8 = torch.randint(0, 256, (2, 5, 24, 20, 3), dtype=torch.uint8, generator=g)
    for frames in (u8, torch.rand(u8.shape, generator=g)):
        scale = 1.0 / 255.0 if frames.dtype == torch.uint8 else 1.0
        for x in (frames.permute(0, 1, 4, 2, 3), frames.permute(0, 1, 4, 2, 3).contiguous(),
                  frames.permute(0, 1, 4, 2, 3)[..., 1:, 2:]):
            want = torch.addcmul(-m / s, x.float(), scale / s)
            got = normalise_stage(x, spec)
            assert got.dtype == torch.float32 and got.stride() == want.stride()
            assert torch.equal(got, want)
