"""Image fidelity metrics, functional: PSNR and SSIM of uint8 image batches, and the record fields.

- ``psnr(a, b)`` / ``ssim(a, b)``: ``a, b: (P, H, W, 3) uint8`` -> mean over images; ``psnr_per_image`` and
  ``ssim_per_image`` give ``(P,)``. PSNR uses peak 255 and caps identical images at 100 dB; SSIM is
  pytorch_msssim's (Gaussian window 11, sigma 1.5, K = 0.01/0.03, valid region), equal to
  ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``.
- ``Scores`` accumulates per-image scores chunk by chunk; ``Scores.summary`` / ``summarise`` give the record
  fields: means of per-image values, with 95% CIs resampling test EPISODES (``metrics.bootstrap_mean_ci``).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from wmprobe.errors import ProbeError
from wmprobe.metrics import bootstrap_mean_ci

PSNR_CAP = 100.0
METRIC_CHUNK = 64   # images per metric pass: memory independent of the number of test images


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.as_tensor(np.ascontiguousarray(a)).double(), torch.as_tensor(np.ascontiguousarray(b)).double()


def _check_pair(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 4 or a.shape[-1] != 3:
        raise ProbeError(f"fidelity metrics need two (P, H, W, 3) uint8 batches of one shape, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    return a, b


def psnr_per_image(a: Any, b: Any) -> np.ndarray:
    """``(P,)`` PSNR in dB of uint8 images (peak 255), capped at 100 dB for identical images."""
    a, b = _check_pair(a, b)
    out = []
    for i in range(0, len(a), METRIC_CHUNK):
        ta, tb = _pair(a[i:i + METRIC_CHUNK], b[i:i + METRIC_CHUNK])
        mse = ((ta - tb) ** 2).mean((1, 2, 3)).clamp_min(255.0 ** 2 * 10 ** (-PSNR_CAP / 10))
        out.append((10 * torch.log10(255.0 ** 2 / mse)).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def ssim_per_image(a: Any, b: Any) -> np.ndarray:
    """``(P,)`` SSIM (pytorch_msssim, data range 255); images smaller than 11 px use a smaller odd window."""
    from pytorch_msssim import ssim as _ssim
    a, b = _check_pair(a, b)
    win = min(11, min(a.shape[1:3]) - (1 - min(a.shape[1:3]) % 2))
    out = []
    for i in range(0, len(a), METRIC_CHUNK):
        ta, tb = _pair(a[i:i + METRIC_CHUNK], b[i:i + METRIC_CHUNK])
        out.append(_ssim(ta.permute(0, 3, 1, 2).float(), tb.permute(0, 3, 1, 2).float(), data_range=255.0,
                         size_average=False, win_size=win).double().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def psnr(a: Any, b: Any) -> float:
    """Mean per-image PSNR (dB) of ``a, b: (P, H, W, 3) uint8``."""
    return float(psnr_per_image(a, b).mean())


def ssim(a: Any, b: Any) -> float:
    """Mean per-image SSIM of ``a, b: (P, H, W, 3) uint8``."""
    return float(ssim_per_image(a, b).mean())


class Scores:
    """Per-image PSNR / SSIM accumulated chunk by chunk (only the scores are kept, never the images)."""

    def __init__(self) -> None:
        self.psnr: list[np.ndarray] = []
        self.ssim: list[np.ndarray] = []
        self.episode: list[np.ndarray] = []

    def add(self, pred: Any, target: Any, episode: Any) -> None:
        """Score ``pred`` against ``target`` (``(P, H, W, 3) uint8`` each), ``episode: (P,)`` for the CIs."""
        episode = np.asarray(episode).reshape(-1)
        if episode.shape[0] != len(target):
            raise ProbeError(f"fidelity: {episode.shape[0]} episode ids for {len(target)} test frames")
        self.psnr.append(psnr_per_image(pred, target))
        self.ssim.append(ssim_per_image(pred, target))
        self.episode.append(episode)

    def summary(self, *, decoder: str, params: int, seconds: float, n_boot: int, seed: int) -> dict[str, Any]:
        """Record fields: psnr, ssim (+ ``_ci_low`` / ``_ci_high``), decoder, decoder_params, fidelity_seconds."""
        if not self.psnr:
            raise ProbeError("fidelity: no test frames to score")
        p, s, episode = (np.concatenate(x) for x in (self.psnr, self.ssim, self.episode))
        pl, ph = bootstrap_mean_ci(p, episode, n_boot=n_boot, seed=seed)
        sl, sh = bootstrap_mean_ci(s, episode, n_boot=n_boot, seed=seed)
        return {"psnr": float(p.mean()), "psnr_ci_low": pl, "psnr_ci_high": ph, "ssim": float(s.mean()),
                "ssim_ci_low": sl, "ssim_ci_high": sh, "decoder": decoder, "decoder_params": int(params),
                "fidelity_seconds": float(seconds)}


def summarise(pred: np.ndarray, target: np.ndarray, episode: np.ndarray, *, decoder: str, params: int,
              seconds: float, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Record fields (psnr, ssim with episode CIs, decoder, decoder_params, fidelity_seconds)."""
    scores = Scores()
    scores.add(pred, target, episode)
    return scores.summary(decoder=decoder, params=params, seconds=seconds, n_boot=n_boot, seed=seed)
