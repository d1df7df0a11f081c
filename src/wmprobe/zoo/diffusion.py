"""``diffusion``: pixel-space denoising diffusion with v-prediction, the shared trunk as the denoiser's encoder.

Noising (variance preserving, cosine schedule): ``x0 = 2 * frame - 1`` in [-1, 1], ``t ~ U(0, 1)`` per frame,
``x_t = alpha x0 + sigma eps`` with ``alpha = cos(pi t / 2)``, ``sigma = sin(pi t / 2)``; target
``v = alpha eps - sigma x0``; loss MSE(v_hat, v).

Denoiser (UNet-ish, small): trunk ``backbone(C)`` on ``x_t`` -> 8x8 grid, FiLM by a sinusoidal embedding
of ``t`` (MLP -> per-channel scale and shift), ``decoder(C, C)`` back to 64x64, plus a full-resolution
skip of the noisy input with a per-channel gain predicted from ``t`` (EDM's c_skip, learned):
``v_hat = dec(h) + gain(t) * x_t``. (Full-resolution convs over a concatenated skip cost 2x on CPU.)

Probed latents (layer ``out``): the trunk output on the frame noised at the FIXED level ``PROBE_T = 0.1``
(alpha 0.988, sigma 0.156) with a FIXED noise field (a buffer drawn once from seed 0, saved with the
weights, the same for every frame), so extraction is deterministic. The trunk never sees ``t``; it is
conditioned only through the decoder's FiLM, so the probed latents are the denoiser's encoder features.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from wmprobe.zoo.models import ZooModel, backbone, decoder, flat

PROBE_T = 0.1


def _alpha_sigma(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cos(0.5 * math.pi * t), torch.sin(0.5 * math.pi * t)


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    freqs = torch.exp(torch.arange(dim // 2, device=t.device, dtype=t.dtype) * (-math.log(1000.0) / (dim // 2)))
    ang = 1000.0 * t[:, None] * freqs[None]
    return torch.cat([ang.sin(), ang.cos()], dim=1)


class Diffusion(ZooModel):
    probe_input = f"frame noised at t={PROBE_T} with a fixed noise field"

    def __init__(self, width: int, action_dim: int = 7):
        super().__init__()
        self.width = width
        self.trunk = backbone(width)
        self.temb = nn.Sequential(nn.Linear(32, width), nn.GELU(), nn.Linear(width, 2 * width + 3))
        self.dec = decoder(width, width)
        g = torch.Generator().manual_seed(0)
        self.register_buffer("probe_noise", torch.randn(1, 3, 64, 64, generator=g))

    def denoise(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = self.trunk(xt)
        e = self.temb(time_embedding(t, 32))
        scale, shift, gain = e[:, : self.width], e[:, self.width: 2 * self.width], e[:, 2 * self.width:]
        h = h * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
        return self.dec(h) + gain[:, :, None, None] * xt

    def latents(self, x: torch.Tensor) -> torch.Tensor:
        a, s = _alpha_sigma(torch.tensor(PROBE_T))
        noise = self.probe_noise.to(x.dtype)
        if noise.shape[-2:] != x.shape[-2:]:
            noise = F.interpolate(noise, size=x.shape[-2:], mode="nearest")
        return self.trunk(a * (2 * x - 1) + s * noise)

    def loss(self, x: torch.Tensor, a: torch.Tensor):
        x0 = 2 * flat(x) - 1
        t = torch.rand(x0.shape[0], device=x0.device)
        eps = torch.randn_like(x0)
        al, si = (v[:, None, None, None] for v in _alpha_sigma(t))
        xt = al * x0 + si * eps
        v = al * eps - si * x0
        return F.mse_loss(self.denoise(xt, t), v), None
