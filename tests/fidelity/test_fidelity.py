"""Fidelity: PSNR/SSIM against references, the decoder probe on decodable vs undecodable latents, own decoders."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from helpers import scene
from wmprobe.errors import ProbeError
from wmprobe.fidelity import (decoder_fidelity, own_decoder_fidelity, psnr, psnr_per_image, ssim,
                              ssim_per_image)


def patch_tokens(frames: np.ndarray, p: int = 4) -> np.ndarray:
    """``(P, H, W, 3) uint8`` -> ``(P, (H/p)*(W/p), p*p*3)`` float32: the pixels themselves as tokens."""
    n, h, w, _ = frames.shape
    t = frames.reshape(n, h // p, p, w // p, p, 3).transpose(0, 1, 3, 2, 4, 5)
    return t.reshape(n, (h // p) * (w // p), p * p * 3).astype(np.float32) / 255


def ssim_direct(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al. SSIM from its formula: 11x11 Gaussian window (sigma 1.5), valid region, mean over channels."""
    from scipy.signal import correlate2d
    r = np.arange(11) - 5
    g = np.exp(-r ** 2 / (2 * 1.5 ** 2))
    win = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for ch in range(3):
        x, y = a[..., ch].astype(np.float64), b[..., ch].astype(np.float64)
        f = lambda z: correlate2d(z, win, mode="valid")                       # noqa: E731
        mx, my = f(x), f(y)
        sxx, syy, sxy = f(x * x) - mx ** 2, f(y * y) - my ** 2, f(x * y) - mx * my
        vals.append(((2 * mx * my + c1) * (2 * sxy + c2) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))).mean())
    return float(np.mean(vals))


@pytest.fixture(scope="module")
def pair():
    a = scene(4, 32, seed=5)
    noise = np.random.default_rng(0).normal(0, 12, a.shape)
    return a, np.clip(a + noise, 0, 255).astype(np.uint8)


def test_psnr_matches_formula_and_skimage(pair):
    a, b = pair
    mse = ((a.astype(float) - b) ** 2).mean((1, 2, 3))
    assert np.allclose(psnr_per_image(a, b), 10 * np.log10(255 ** 2 / mse))
    assert psnr(a, a) == pytest.approx(100.0)                                     # identical images: capped
    metrics = pytest.importorskip("skimage.metrics")
    ref = [metrics.peak_signal_noise_ratio(x, y, data_range=255) for x, y in zip(a, b)]
    assert psnr(a, b) == pytest.approx(float(np.mean(ref)), abs=1e-9)


def test_ssim_matches_formula_and_skimage(pair):
    a, b = pair
    ours = ssim_per_image(a, b)
    assert np.allclose(ours, [ssim_direct(x, y) for x, y in zip(a, b)], atol=1e-4)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-6) and ssim(a, b) < 0.95
    metrics = pytest.importorskip("skimage.metrics")
    ref = [metrics.structural_similarity(x, y, data_range=255, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False) for x, y in zip(a, b)]
    assert np.allclose(ours, ref, atol=2e-3)


def test_metric_shape_errors():
    with pytest.raises(ProbeError, match="P, H, W, 3"):
        psnr(np.zeros((2, 8, 8, 3), np.uint8), np.zeros((2, 8, 9, 3), np.uint8))


@pytest.fixture(scope="module")
def data():
    frames = scene(160, 32, seed=3)
    episode = np.repeat(np.arange(16), 10)
    return frames, patch_tokens(frames), episode, episode < 12


def test_decoder_probe_recovers_pixels_but_not_noise(data):
    frames, tokens, ep, tr = data
    te = ~tr
    good = decoder_fidelity(tokens[tr], frames[tr], tokens[te], frames[te], ep[te], preset="tiny", n_boot=200,
                            threads=1)
    noise = np.random.default_rng(0).normal(size=tokens.shape).astype(np.float32)
    bad = decoder_fidelity(noise[tr], frames[tr], noise[te], frames[te], ep[te], preset="tiny", n_boot=200,
                           threads=1)
    assert good["psnr"] > 25 and good["ssim"] > 0.8, good
    assert bad["psnr"] < 15 and bad["ssim"] < 0.3, bad
    assert good["psnr_ci_low"] <= good["psnr"] <= good["psnr_ci_high"]
    assert good["ssim_ci_low"] <= good["ssim"] <= good["ssim_ci_high"]
    assert good["decoder"] == "probe" and good["decoder_params"] == bad["decoder_params"] > 0
    assert good["fidelity_seconds"] > 0


def test_decoder_probe_is_seeded_and_pools_non_square_tokens(data):
    frames, tokens, ep, tr = data
    small = frames[:, ::2, ::2]                                                     # 16 x 16 frames
    pooled = tokens[:, :3]                                                           # 3 tokens: not a square grid
    run = lambda seed: decoder_fidelity(pooled[tr], small[tr], pooled[~tr], small[~tr], ep[~tr],  # noqa: E731
                                        preset="tiny", seed=seed, n_boot=50, threads=1)
    a, b, c = run(0), run(0), run(1)
    assert a["psnr"] == b["psnr"] and a["ssim"] == b["ssim"]
    assert a["psnr"] != c["psnr"]
    with pytest.raises(ProbeError, match="grid"):
        decoder_fidelity(tokens[tr], frames[tr], tokens[~tr], frames[~tr], ep[~tr], preset="tiny", grid=5)
    with pytest.raises(ProbeError, match="preset"):
        decoder_fidelity(tokens[tr], frames[tr], tokens[~tr], frames[~tr], ep[~tr], preset="huge")
    with pytest.raises(ProbeError, match="uint8"):
        decoder_fidelity(tokens[tr], frames[tr] / 255.0, tokens[~tr], frames[~tr], ep[~tr], preset="tiny")


class PatchAutoencoder:
    """A fake encoder with its own decoder: tokens are 4x4 patches; ``scale`` < 1 loses half the detail."""

    class spec:
        name, default_layer = "patch-ae", "out"

    decoder_params = 0

    def __init__(self, blur: bool = False) -> None:
        self.blur = blur

    def encode(self, frames, layers):
        b, t = frames.shape[:2]
        tok = patch_tokens(frames.reshape(b * t, *frames.shape[2:]).numpy())
        return type("L", (), {"tokens": {"out": torch.from_numpy(tok).view(b, t, *tok.shape[1:])}})()

    def decode_latents(self, tokens):
        b, t, n, d = tokens.shape
        g = int(n ** 0.5)
        x = tokens.reshape(b * t, g, g, 4, 4, 3).permute(0, 1, 3, 2, 4, 5).reshape(b * t, 4 * g, 4 * g, 3)
        if self.blur:                                                                # average each 4x4 patch
            x = x.reshape(b * t, g, 4, g, 4, 3).mean((2, 4), keepdim=True).expand(-1, g, 4, g, 4, 3)
            x = x.reshape(b * t, 4 * g, 4 * g, 3)
        return (x * 255).round().to(torch.uint8).view(b, t, 4 * g, 4 * g, 3)


def test_own_decoder_fidelity_ranks_a_lossy_decoder_lower():
    frames = torch.from_numpy(scene(12, 32, seed=2)).view(4, 3, 32, 32, 3)
    exact = own_decoder_fidelity(PatchAutoencoder(), frames, np.arange(4), n_boot=100)
    lossy = own_decoder_fidelity(PatchAutoencoder(blur=True), frames, np.arange(4), n_boot=100)
    assert exact["decoder"] == "own" and exact["psnr"] == pytest.approx(100.0) and exact["ssim"] > 0.999
    assert lossy["psnr"] < 30 and lossy["ssim"] < exact["ssim"]
    with pytest.raises(ProbeError, match="decode_latents"):
        own_decoder_fidelity(object(), frames, np.arange(4))



def test_scores_pooled_clip_by_clip_equal_one_pass_over_all_frames():
    """The own-decoder pass scores one clip at a time (a generator) and keeps only per-image scores; its
    record equals scoring every frame at once."""
    from wmprobe.fidelity import own_decoder_fidelity_clips
    frames = torch.from_numpy(scene(12, 32, seed=3)).view(4, 3, 32, 32, 3)
    enc = PatchAutoencoder(blur=True)
    whole = own_decoder_fidelity(enc, frames, np.arange(4), n_boot=100, seed=1)
    clips = own_decoder_fidelity_clips(enc, (c for c in frames.numpy()), range(4), n_boot=100, seed=1)
    for k in ("psnr", "psnr_ci_low", "psnr_ci_high", "ssim", "ssim_ci_low", "ssim_ci_high"):
        assert clips[k] == pytest.approx(whole[k], rel=1e-12), k
    with pytest.raises(ProbeError, match="no clips"):
        own_decoder_fidelity_clips(enc, iter(()), ())

def test_row_gather_reads_rows_of_several_shards_in_any_order():
    from wmprobe.fidelity import RowGather
    rng = np.random.default_rng(0)
    parts = [rng.normal(size=(n, 4, 3)).astype(np.float32) for n in (5, 1, 7)]
    whole = np.concatenate(parts)
    rows = np.array([12, 0, 5, 6, 3])
    src = RowGather(parts, rows)
    assert len(src) == 5
    np.testing.assert_array_equal(src[np.array([4, 0, 2, 2])], whole[rows[[4, 0, 2, 2]]])
    with pytest.raises(ProbeError, match="outside"):
        RowGather(parts, np.array([13]))


def _rss_file_kb() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    return -1


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_row_gather_drops_the_mapped_pages_it_read_and_reads_them_back_the_same(tmp_path):
    """Random minibatches touch every page of a memory-mapped shard in time; RowGather (like the extraction
    and own-decoder passes) drops them after each gather, so RSS does not grow with the shard."""
    from wmprobe.fidelity import RowGather
    big = np.arange(64 * 1024 * 1024 // 4, dtype=np.float32).reshape(-1, 1024)   # 64 MiB
    np.save(tmp_path / "t.npy", big)
    m = np.load(tmp_path / "t.npy", mmap_mode="r")
    base = _rss_file_kb()
    assert float(m.sum()) == float(big.sum())          # reading every page maps them into this process
    assert _rss_file_kb() - base > 32 * 1024
    src = RowGather([m], np.arange(len(m)))
    rows = src[np.arange(0, len(m), 7)]
    assert _rss_file_kb() - base < 8 * 1024            # gone after the gather
    np.testing.assert_array_equal(rows, big[::7])
    np.testing.assert_array_equal(src[np.arange(len(m))], big)  # pages come back with the same bytes
    in_memory = RowGather([big], np.arange(4))         # plain arrays are left alone
    np.testing.assert_array_equal(in_memory[np.arange(4)], big[:4])
