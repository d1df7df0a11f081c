"""Mini-zoo building blocks: one conv backbone vocabulary shared by every family, plus the +ID head.

Backbone (per preset width C): ``(B, 3, 64, 64) -> (B, C, 8, 8)``: two coordinate channels are appended to
the input (CoordConv), then three stride-2 convs + GELU and a 1x1 projection; tokens are the 64 grid cells
``(B, 64, C)``. Without the coordinate channels a conv net is translation-equivariant and MEAN-POOLED
features cannot say where the arm is (docs/footguns.md); ViTs get the same from position embeddings. Every
family uses this backbone at the same width (a family may add input channels, e.g. a mask channel, or widen
the last 1x1 projection, e.g. the VAE's mean and log-variance), so only the pretraining signal differs.

- ``ZooModel``: the interface every family implements (``loss``, ``latents``, ``clip_len``, ``trunk``).
- ``decoder``: the shared pixel decoder shape ``(B, in_ch, 8, 8) -> (B, 3, 64, 64)`` (pre-activation).
- ``TemporalMixer``: a small residual 3-D conv over ``(B, C, T, 8, 8)`` used by the video families.
- ``IDHead`` / ``id_loss``: the +ID head on pooled latents of consecutive frames (see ``objectives``).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F


class AddCoords(nn.Module):
    """``(B, C, H, W) -> (B, C + 4, H, W)``: x and y in [-1, 1], and x and y times the image intensity ``g``
    (mean of the first 3 channels). Mean pooling a linear map of ``g*x, g*y`` gives the intensity's first
    moments, so even a pooled feature of a barely trained trunk moves when something in the image moves."""

    extra = 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype).view(1, 1, h, 1).expand(b, 1, h, w)
        xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype).view(1, 1, 1, w).expand(b, 1, h, w)
        g = x[:, :3].mean(dim=1, keepdim=True)
        return torch.cat([x, xs, ys, g * xs, g * ys], dim=1)


def backbone(width: int, in_ch: int = 3, out_ch: int | None = None) -> nn.Sequential:
    out_ch = out_ch or width
    return nn.Sequential(
        AddCoords(),
        nn.Conv2d(in_ch + AddCoords.extra, width // 2, 4, 2, 1), nn.GELU(),
        nn.Conv2d(width // 2, width, 4, 2, 1), nn.GELU(),
        nn.Conv2d(width, width, 4, 2, 1), nn.GELU(),
        nn.Conv2d(width, out_ch, 1),
    )


def decoder(width: int, in_ch: int, out_ch: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, width, 1), nn.GELU(),
        nn.ConvTranspose2d(width, width, 4, 2, 1), nn.GELU(),
        nn.ConvTranspose2d(width, width // 2, 4, 2, 1), nn.GELU(),
        nn.ConvTranspose2d(width // 2, out_ch, 4, 2, 1),
    )


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


CLIP_LEN = 4   # frames per training clip, for EVERY family (the same clips; +ID scores every pair, k = 1..3)


class ZooModel(nn.Module):
    """What ``zoo.train`` needs from a family.

    - ``clip_len``: consecutive frames of one episode per training sample: ``CLIP_LEN`` for every family
      (per-frame families treat a clip as ``CLIP_LEN`` frames), so every family and its +ID term see the
      same clips; ``zoo.train`` draws ``2 * batch_size // clip_len`` clips per step.
    - ``own_loss``: False for a model trained by +ID alone (the ``ceiling``); its ``loss`` is not used.
    - ``trunk``: the shared backbone module (its parameter count is recorded as ``trunk_params``).
    - ``loss(x, a) -> (loss, z)``: ``x (B, L, 3, 64, 64)`` in [0, 1], ``a (B, L, A)`` standardised actions
      (``a[:, t]`` moves frame t to t+1; the last one's effect is outside the clip). ``z``: the probed latents
      of every clip frame ``(B, L, C, 8, 8)`` with gradient when the family computed them anyway, else None
      (then +ID computes ``latents`` itself).
    - ``latents(x: (B, 3, 64, 64)) -> (B, C, 8, 8)``: what the probe sees (layer ``out``), deterministic.
    - ``after_step(step, steps)``: called after each optimiser step (EMA targets).
    """

    clip_len: int = CLIP_LEN
    own_loss: bool = True
    trunk: nn.Module

    def loss(self, x: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        raise NotImplementedError

    def latents(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def after_step(self, step: int, steps: int) -> None:
        pass


def flat(x: torch.Tensor) -> torch.Tensor:
    """``(B, L, ...) -> (B*L, ...)``."""
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def unflat(x: torch.Tensor, b: int) -> torch.Tensor:
    return x.reshape(b, x.shape[0] // b, *x.shape[1:])


def tube_mask(b: int, ratio: float, grid: int = 8, size: int = 64, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Random patch masks, one per clip (the same in every frame: a tube). Returns ``(grid_mask (B, 1, g, g),
    pixel_mask (B, 1, size, size))``, 1 = masked; exactly ``round(ratio * g * g)`` patches per clip."""
    n = grid * grid
    k = int(round(ratio * n))
    order = torch.rand(b, n, device=device).argsort(dim=1)
    m = torch.zeros(b, n, device=device)
    m.scatter_(1, order[:, :k], 1.0)
    m = m.view(b, 1, grid, grid)
    return m, F.interpolate(m, size=(size, size), mode="nearest")


class TemporalMixer(nn.Module):
    """Residual 3-D convs over ``(B, C, T, g, g)``: mixes neighbouring frames and cells (video families)."""

    def __init__(self, width: int, out_ch: int | None = None):
        super().__init__()
        self.a = nn.Conv3d(width, width, 3, padding=1)
        self.b = nn.Conv3d(width, width, 3, padding=1)
        self.out = nn.Conv3d(width, out_ch or width, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h + self.b(F.gelu(self.a(F.gelu(h))))
        return self.out(F.gelu(h))


def to_clip(h: torch.Tensor, b: int) -> torch.Tensor:
    """``(B*L, C, g, g) -> (B, C, L, g, g)``."""
    return unflat(h, b).transpose(1, 2)


def from_clip(h: torch.Tensor) -> torch.Tensor:
    """``(B, C, L, g, g) -> (B*L, C, g, g)``."""
    return flat(h.transpose(1, 2))


def standardise(d: int) -> nn.Module:
    """Batch standardisation of pooled latents (no learned affine), as the probe standardises its inputs: pooled
    latents of a fresh trunk vary by ~1e-4, and an unnormalised head would need ~1e4 weights to read them."""
    return nn.BatchNorm1d(d, affine=False)


class IDHead(nn.Module):
    """+ID: pooled latents of steps t and t+j -> the k-step action target between them (discarded after
    training; ``objectives.pair_targets``)."""

    def __init__(self, width: int, action_dim: int, hidden: int = 128):
        super().__init__()
        self.net = nn.Sequential(standardise(2 * width), nn.Linear(2 * width, hidden), nn.GELU(),
                                 nn.Linear(hidden, action_dim))

    def forward(self, z_t: torch.Tensor, z_t1: torch.Tensor) -> torch.Tensor:
        return self.pooled(z_t.mean(dim=(2, 3)), z_t1.mean(dim=(2, 3)))

    def pooled(self, p_t: torch.Tensor, p_t1: torch.Tensor) -> torch.Tensor:
        """``(N, C)`` pooled latents of both frames -> ``(N, action_dim)``."""
        return self.net(torch.cat([p_t, p_t1], dim=1))


def id_loss(pred: torch.Tensor, target: torch.Tensor, objective: str) -> torch.Tensor:
    if objective == "l1":
        return F.l1_loss(pred, target)
    if objective == "l2":
        return F.mse_loss(pred, target)
    raise ValueError(f"unknown +ID objective '{objective}'")

