"""``vae``: KL-regularised conv autoencoder (as SD/SDXL VAEs), tuned for high PSNR (small beta).

Trunk: ``backbone(C, out_ch=2C)`` -> mean and log-variance on the 8x8 grid; decoder ``decoder(C, C)``.
Loss: pixel MSE + beta * KL per latent dim. Probed latents (layer ``out``): the posterior mean ``(64, C)``;
``decode`` is the model's own decoder (used for "own decoder" fidelity).
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from wmprobe.zoo.models import ZooModel, backbone, decoder, flat, unflat


class VAE(ZooModel):
    """``encode(x) -> (mu, logvar)`` each ``(B, C, 8, 8)``; ``decode(z) -> (B, 3, 64, 64)`` in [0, 1] space."""

    def __init__(self, width: int, action_dim: int = 7, beta: float = 1e-4):
        super().__init__()
        self.width, self.beta = width, beta
        self.enc = backbone(width, out_ch=2 * width)
        self.dec = decoder(width, width)

    @property
    def trunk(self):
        return self.enc

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.enc(x).chunk(2, dim=1)
        return mu, logvar.clamp(-10, 10)

    def latents(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.dec(z))

    def loss(self, x: torch.Tensor, a: torch.Tensor):
        """Pixel MSE + beta * KL per latent dim; x ``(B, L, 3, 64, 64)`` in [0, 1]."""
        b, xf = x.shape[0], flat(x)
        mu, logvar = self.encode(xf)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        rec = F.mse_loss(self.decode(z), xf)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).mean()
        return rec + self.beta * kl, unflat(mu, b)
