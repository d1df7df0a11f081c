"""Weather corruptions (ImageNet-C): snow, frost and fog.

Each op maps ``x: (M, 3, H, W)`` float32 in [0, 1] to the same shape (the caller clips and rounds), with the
parameters of ``imagecorruptions`` 1.1.2 indexed by severity 1-5. frost uses a procedural ridged-noise ice
texture with the reference images' mean colour and contrast instead of its six photographs (not shipped);
fog's plasma fractal uses torch's generator, so it matches the reference in distribution, not value.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from wmprobe.data.corruptions.ops import ClipRng, clipped_zoom, gray, motion
from wmprobe.data.corruptions.registry import corruption


@corruption("snow", "ImageNet-C snow flakes (motion-blurred noise layer) and whitening, severity 1-5")
def snow(x: torch.Tensor, s: int, rng: ClipRng) -> torch.Tensor:
    loc, scale, zoom, thr, radius, sigma, keep = [
        (0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7), (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65), (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)][s - 1]
    h, w = x.shape[-2:]
    layer = clipped_zoom(rng.normal(1, h, w) * scale + loc, zoom)
    layer = torch.where(layer < thr, torch.zeros(()), layer).clamp(0, 1)
    layer = motion(layer, radius, sigma, rng.uniform(-135, -45))
    layer = torch.round(layer * 255) / 255
    x = keep * x + (1 - keep) * torch.maximum(x, gray(x) * 1.5 + 0.5)
    return x + layer + layer.flip(-1, -2)


def _frost_texture(m: int, h: int, w: int, rng: ClipRng) -> torch.Tensor:
    """``(M, 3, H, W)`` ridged multi-octave noise with the reference frost photos' mean colour and contrast."""
    acc = torch.zeros(m, 1, h, w)
    for o, cells in enumerate((3, 6, 12, 24, 48)):
        g = rng.normal(1, cells + 1, cells + 1)
        acc += 0.6 ** o * F.interpolate(g, size=(h, w), mode="bicubic", align_corners=True)
    ridge = (1 - acc.abs()) ** 3                                         # thin bright ice veins
    ridge = (ridge - ridge.mean((2, 3), keepdim=True)) / (ridge.std((2, 3), keepdim=True) + 1e-6)
    mean = torch.tensor([0.572, 0.656, 0.702]).view(1, 3, 1, 1)
    return (mean + 0.14 * ridge).clamp(0, 1)


@corruption("frost", "ImageNet-C frost overlay (procedural ice texture, see docs), severity 1-5")
def frost(x: torch.Tensor, s: int, rng: ClipRng) -> torch.Tensor:
    a, b = [(1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)][s - 1]
    h, w = x.shape[-2:]
    return a * x + b * _frost_texture(x.shape[0], h, w, rng)


def _plasma(m: int, size: int, decay: float, rng: ClipRng) -> torch.Tensor:
    """imagecorruptions' diamond-square ``plasma_fractal``, batched: ``(M, size, size)`` in [0, 1]."""
    a = torch.zeros(m, size, size, dtype=torch.float64)
    step, wib = size, 100.0

    def wibbled(arr: torch.Tensor) -> torch.Tensor:
        return arr / 4 + wib * rng.uniform(-wib, wib, *arr.shape[1:]).double()

    while step >= 2:
        half = step // 2
        corner = a[:, 0:size:step, 0:size:step]
        sq = corner + corner.roll(-1, 1)
        sq = sq + sq.roll(-1, 2)
        a[:, half:size:step, half:size:step] = wibbled(sq)
        dr, ul = a[:, half:size:step, half:size:step], a[:, 0:size:step, 0:size:step]
        a[:, 0:size:step, half:size:step] = wibbled(dr + dr.roll(1, 1) + ul + ul.roll(-1, 2))
        a[:, half:size:step, 0:size:step] = wibbled(dr + dr.roll(1, 2) + ul + ul.roll(-1, 1))
        step //= 2
        wib /= decay
    a -= a.amin((1, 2), keepdim=True)
    return (a / a.amax((1, 2), keepdim=True)).float()


@corruption("fog", "ImageNet-C plasma-fractal fog, severity 1-5")
def fog(x: torch.Tensor, s: int, rng: ClipRng) -> torch.Tensor:
    c0, decay = [(1.5, 2), (2., 2), (2.5, 1.7), (2.5, 1.5), (3., 1.4)][s - 1]
    h, w = x.shape[-2:]
    size = 1 << (max(h, w) - 1).bit_length()
    vmax = x.amax((1, 2, 3), keepdim=True)
    x = x + c0 * _plasma(x.shape[0], size, decay, rng)[:, None, :h, :w]
    return x * vmax / (vmax + c0)
