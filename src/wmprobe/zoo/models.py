"""Mini-zoo models: one conv backbone vocabulary, family heads, and the +ID head.

Backbone (per preset width C): ``(B, 3, 64, 64) -> (B, C, 8, 8)``: two coordinate channels are appended to
the input (CoordConv), then three stride-2 convs + GELU and a 1x1 projection; tokens are the 64 grid cells
``(B, 64, C)``. Without the coordinate channels a conv net is translation-equivariant and MEAN-POOLED
features cannot say where the arm is (docs/footguns.md); ViTs get the same from position embeddings. Every
family uses the same backbone at the same width, so only the pretraining signal differs.

- ``VAE``: KL-regularised conv autoencoder (posterior mean as latents, small beta for high PSNR), with its own
  decoder (``decode``) used for "own decoder" fidelity.
- ``IDHead``: the +ID head on pooled latents of consecutive frames.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class AddCoords(nn.Module):
    """``(B, C, H, W) -> (B, C + 2, H, W)`` with x and y in [-1, 1]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype).view(1, 1, h, 1).expand(b, 1, h, w)
        xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype).view(1, 1, 1, w).expand(b, 1, h, w)
        return torch.cat([x, xs, ys], dim=1)


def backbone(width: int, in_ch: int = 3, out_ch: int | None = None) -> nn.Sequential:
    out_ch = out_ch or width
    return nn.Sequential(
        AddCoords(),
        nn.Conv2d(in_ch + 2, width // 2, 4, 2, 1), nn.GELU(),
        nn.Conv2d(width // 2, width, 4, 2, 1), nn.GELU(),
        nn.Conv2d(width, width, 4, 2, 1), nn.GELU(),
        nn.Conv2d(width, out_ch, 1),
    )


def decoder(width: int, in_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, width, 1), nn.GELU(),
        nn.ConvTranspose2d(width, width, 4, 2, 1), nn.GELU(),
        nn.ConvTranspose2d(width, width // 2, 4, 2, 1), nn.GELU(),
        nn.ConvTranspose2d(width // 2, 3, 4, 2, 1),
    )


class VAE(nn.Module):
    """``encode(x) -> (mu, logvar)`` each ``(B, C, 8, 8)``; ``decode(z) -> (B, 3, 64, 64)`` in [0, 1] space."""

    def __init__(self, width: int):
        super().__init__()
        self.width = width
        self.enc = backbone(width, out_ch=2 * width)
        self.dec = decoder(width, width)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.enc(x).chunk(2, dim=1)
        return mu, logvar.clamp(-10, 10)

    def latents(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.dec(z))

    def loss(self, x: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss, mu)``: pixel MSE + beta * KL per latent dim; x in [0, 1]."""
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        rec = F.mse_loss(self.decode(z), x)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).mean()
        return rec + beta * kl, mu


class IDHead(nn.Module):
    """+ID: pooled latents of steps t and t+1 -> the action between them (discarded after training)."""

    def __init__(self, width: int, action_dim: int, hidden: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 * width, hidden), nn.GELU(), nn.Linear(hidden, action_dim))

    def forward(self, z_t: torch.Tensor, z_t1: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z_t.mean(dim=(2, 3)), z_t1.mean(dim=(2, 3))], dim=1))


def id_loss(pred: torch.Tensor, target: torch.Tensor, objective: str) -> torch.Tensor:
    if objective == "l1":
        return F.l1_loss(pred, target)
    if objective == "l2":
        return F.mse_loss(pred, target)
    raise ValueError(f"unknown +ID objective '{objective}'")
