"""Noise corruptions: the paper's additive Gaussian noise and ImageNet-C's four noise types.

Each op maps ``x: (M, 3, H, W)`` float32 in [0, 1] to the same shape (the caller clips and rounds); the
ImageNet-C parameters are those of ``imagecorruptions`` 1.1.2, indexed by severity 1-5.
"""
from __future__ import annotations

import torch

from wmprobe.data.corruptions.ops import ClipRng
from wmprobe.data.corruptions.registry import corruption


@corruption("noise", "the paper's additive Gaussian noise, noise:SIGMA on [0,1] pixels (default 0.15)",
            param="sigma", default=0.15)
def additive_noise(x: torch.Tensor, sigma: float, rng: ClipRng) -> torch.Tensor:
    return rng.normal(*x.shape[1:]).mul_(float(sigma)).add_(x)          # x + sigma * n, in place on the draws


@corruption("gaussian_noise", "ImageNet-C additive Gaussian noise, severity 1-5")
def gaussian_noise(x: torch.Tensor, s: int, rng: ClipRng) -> torch.Tensor:
    return additive_noise(x, [.08, .12, 0.18, 0.26, 0.38][s - 1], rng)


@corruption("shot_noise", "ImageNet-C Poisson (shot) noise, severity 1-5")
def shot_noise(x: torch.Tensor, s: int, rng: ClipRng) -> torch.Tensor:
    c = [60, 25, 12, 5, 3][s - 1]
    return rng.poisson(x * c) / c


@corruption("impulse_noise", "ImageNet-C salt-and-pepper noise per channel, severity 1-5")
def impulse_noise(x: torch.Tensor, s: int, rng: ClipRng) -> torch.Tensor:
    c = [.03, .06, .09, 0.17, 0.27][s - 1]
    u = rng.uniform(0, 1, *x.shape[1:])          # u < c: flipped; u < c/2: salt (half of the flipped ones)
    return torch.where(u < c, (u < c / 2).float(), x)


@corruption("speckle_noise", "ImageNet-C multiplicative Gaussian noise, severity 1-5")
def speckle_noise(x: torch.Tensor, s: int, rng: ClipRng) -> torch.Tensor:
    c = [.15, .2, 0.35, 0.45, 0.6][s - 1]
    return rng.normal(*x.shape[1:]).mul_(x * c).add_(x)                  # x + (x * c) * n
