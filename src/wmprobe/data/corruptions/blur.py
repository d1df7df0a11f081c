"""Blur corruptions: the paper's Gaussian blur and ImageNet-C's defocus, glass, motion, zoom and Gaussian blur.

Each op maps ``x: (M, 3, H, W)`` float32 in [0, 1] to the same shape (the caller clips and rounds); the
ImageNet-C parameters are those of ``imagecorruptions`` 1.1.2, indexed by severity 1-5. glass_blur replaces
the reference's sequential random pixel swaps by one random local gather per iteration (same displacement
range).
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from wmprobe.data.corruptions.ops import (ClipRng, clipped_zoom, conv2d, gauss1d, gaussian, kernel_spectrum, motion,
                                         pad, sep_conv)
from wmprobe.data.corruptions.registry import corruption


@corruption("blur", "the paper's Gaussian blur, blur:K with a K x K kernel, sigma = 0.3*((K-1)/2-1)+0.8 "
            "(default 11)", param="kernel", default=11)
def paper_blur(x: torch.Tensor, k: int, rng: ClipRng) -> torch.Tensor:
    sigma = 0.3 * ((k - 1) * 0.5 - 1) + 0.8
    g = gauss1d(sigma, (k - 1) // 2)
    return sep_conv(x, g, g, "reflect101")


def _disk(radius: int, alias_blur: float) -> torch.Tensor:
    """imagecorruptions' anti-aliased disk kernel (normalised disk, then a small Gaussian blur)."""
    r, ks = (8, 3) if radius <= 8 else (radius, 5)
    ax = torch.arange(-r, r + 1, dtype=torch.float64)
    d = ((ax[None] ** 2 + ax[:, None] ** 2) <= radius ** 2).double()
    d /= d.sum()
    g = gauss1d(alias_blur, ks // 2).double()
    d = pad(d, ks // 2, ks // 2, "reflect101")
    d = F.conv2d(F.conv2d(d[None, None], g.view(1, 1, -1, 1)), g.view(1, 1, 1, -1))[0, 0]
    return d.float()


@functools.lru_cache(maxsize=16)
def _disk_cached(radius: int, alias_blur: float) -> torch.Tensor:
    """``_disk``, computed once per parameters (an ordinary tensor, never written to)."""
    with torch.inference_mode(False):
        return _disk(radius, alias_blur)


@functools.lru_cache(maxsize=16)
def _disk_spectrum(radius: int, alias_blur: float, size: tuple[int, int]) -> torch.Tensor:
    """``kernel_spectrum`` of ``_disk(radius, alias_blur)`` at ``size``, computed once per frame size (it and the
    disk were ~5% of a clip's defocus blur at 128 px). Never written to."""
    with torch.inference_mode(False):
        return kernel_spectrum(_disk_cached(radius, alias_blur), size)


@corruption("defocus_blur", "ImageNet-C disk-kernel defocus blur, severity 1-5")
def defocus_blur(x: torch.Tensor, s: int, rng: ClipRng) -> torch.Tensor:
    radius, alias = [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)][s - 1]
    return conv2d(x, _disk_cached(radius, alias), "reflect101", lambda size: _disk_spectrum(radius, alias, size))


@corruption("glass_blur", "ImageNet-C blur + local pixel shuffling + blur, severity 1-5")
def glass_blur(x: torch.Tensor, s: int, rng: ClipRng) -> torch.Tensor:
    sigma, delta, iters = [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)][s - 1]
    m, c, h, w = x.shape
    y = torch.floor(gaussian(x, sigma) * 255) / 255                     # the reference's np.uint8 cast
    hh, ww = torch.arange(h), torch.arange(w)
    inner = ((hh > delta) & (hh <= h - delta))[:, None] & ((ww > delta) & (ww <= w - delta))[None]
    for _ in range(iters):   # one local random gather per iteration (the reference swaps pixel by pixel)
        dy = rng.uniform(0, 1, h, w).mul_(2 * delta).floor_().long() - delta
        dx = rng.uniform(0, 1, h, w).mul_(2 * delta).floor_().long() - delta
        src = torch.where(inner, (hh[:, None] + dy).clamp(0, h - 1) * w + (ww[None] + dx).clamp(0, w - 1),
                          hh[:, None] * w + ww[None])
        y = y.reshape(m, c, h * w).gather(2, src.view(m, 1, h * w).expand(m, c, h * w)).view(m, c, h, w)
    return gaussian(y, sigma)


@corruption("motion_blur", "ImageNet-C one-sided motion blur at a random angle in [-45, 45] deg, severity 1-5")
def motion_blur(x: torch.Tensor, s: int, rng: ClipRng) -> torch.Tensor:
    radius, sigma = [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)][s - 1]
    return motion(x, radius, sigma, rng.uniform(-45, 45))


@corruption("zoom_blur", "ImageNet-C average of centre zooms, severity 1-5")
def zoom_blur(x: torch.Tensor, s: int, rng: ClipRng) -> torch.Tensor:
    stop, step = [(1.11, .01), (1.16, .01), (1.21, .02), (1.26, .02), (1.31, .03)][s - 1]
    zooms = torch.arange(1, stop, step, dtype=torch.float64).tolist()
    out = x.clone()
    for z in zooms:
        out += clipped_zoom(x, z)
    return out / (len(zooms) + 1)


@corruption("gaussian_blur", "ImageNet-C Gaussian blur (sigma 1,2,3,4,6), severity 1-5")
def gaussian_blur(x: torch.Tensor, s: int, rng: ClipRng) -> torch.Tensor:
    return gaussian(x, [1, 2, 3, 4, 6][s - 1])
