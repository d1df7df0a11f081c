"""``image-ssl``: VICReg joint-embedding self-supervision on single frames with augmentations.

Two augmented views of every frame go through the shared trunk ``backbone(C)``; the mean-pooled trunk
output goes through a projector (``C -> 4C -> 4C``, LayerNorm + GELU) and VICReg's loss is applied to the
projections: 25 * invariance (MSE between views) + 25 * variance (hinge on each dim's std at 1) + 1 *
covariance (off-diagonal squared covariance) (Bardes et al. 2022). The projector is discarded; the probed
latents (layer ``out``) are the trunk output on the clean frame ``(64, C)``.

Augmentations (all in torch, seeded by the global torch RNG, so deterministic for a seed):
random resized crop (area 40-100 %, aspect 3/4-4/3, bilinear via ``affine_grid``/``grid_sample``),
colour jitter (brightness, contrast, saturation +-40 %, hue-like channel mixing), random grayscale (p 0.2)
and Gaussian pixel noise. No horizontal flip: it would swap left and right, which the actions distinguish.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from wmprobe.zoo.models import ZooModel, backbone, flat


def random_resized_crop(x: torch.Tensor, area=(0.4, 1.0), ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    """Per-sample crop of ``x (B, 3, H, W)`` resized back to ``H x W`` via an affine sampling grid."""
    b = x.shape[0]
    dev = x.device
    s = torch.empty(b, device=dev).uniform_(*area)
    logr = torch.empty(b, device=dev).uniform_(math.log(ratio[0]), math.log(ratio[1]))
    r = logr.exp()
    w = (s * r).sqrt().clamp(max=1.0)      # crop width / height as fractions of the frame
    h = (s / r).sqrt().clamp(max=1.0)
    cx = (torch.rand(b, device=dev) * 2 - 1) * (1 - w)
    cy = (torch.rand(b, device=dev) * 2 - 1) * (1 - h)
    theta = torch.zeros(b, 2, 3, device=dev, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w, cx, h, cy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def colour_jitter(x: torch.Tensor, strength: float = 0.4, p_gray: float = 0.2, noise: float = 0.02) -> torch.Tensor:
    b, dev = x.shape[0], x.device

    def u(*shape):
        return 1 + (torch.rand(b, *shape, device=dev) * 2 - 1) * strength

    x = x * u(1, 1, 1)                                                     # brightness
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * u(1, 1, 1) + mean                                     # contrast
    gray = (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:]).expand_as(x)
    x = (x - gray) * u(1, 1, 1) + gray                                     # saturation
    mix = torch.eye(3, device=dev) + (torch.rand(b, 3, 3, device=dev) - 0.5) * 0.2 * strength
    x = torch.einsum("bij,bjhw->bihw", mix, x)                             # hue-like channel mixing
    g = (torch.rand(b, 1, 1, 1, device=dev) < p_gray).to(x.dtype)
    gray = (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:]).expand_as(x)
    x = g * gray + (1 - g) * x                                             # random grayscale
    x = x + noise * torch.randn_like(x)
    return x.clamp(0, 1)


def augment(x: torch.Tensor) -> torch.Tensor:
    return colour_jitter(random_resized_crop(x))


def vicreg(p1: torch.Tensor, p2: torch.Tensor, inv: float = 25.0, var: float = 25.0, cov: float = 1.0) -> torch.Tensor:
    n, d = p1.shape
    loss = inv * F.mse_loss(p1, p2)
    for p in (p1, p2):
        p = p - p.mean(0)
        std = (p.var(0) + 1e-4).sqrt()
        c = (p.T @ p) / max(n - 1, 1)
        off = c - torch.diag(torch.diag(c))
        loss = loss + var * F.relu(1 - std).mean() / 2 + cov * off.pow(2).sum() / d / 2
    return loss


class ImageSSL(ZooModel):
    def __init__(self, width: int, action_dim: int = 7):
        super().__init__()
        self.trunk = backbone(width)
        self.proj = nn.Sequential(nn.Linear(width, 4 * width), nn.LayerNorm(4 * width), nn.GELU(),
                                  nn.Linear(4 * width, 4 * width))

    def latents(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def loss(self, x: torch.Tensor, a: torch.Tensor):
        xf = flat(x)
        views = torch.cat([augment(xf), augment(xf)])
        p = self.proj(self.trunk(views).mean(dim=(2, 3)))
        p1, p2 = p.chunk(2)
        return vicreg(p1, p2), None
