"""World-model families: a tokenizer plus an action-conditioned latent dynamics model, in the spirit of
Dreamer 4 (Hafner et al. 2025) "shortcut forcing". A simplified, single-phase version; exactly this:

Tokenizer: trunk ``backbone(C)`` -> ``z = tanh(trunk(frame))`` on the 8x8 grid (bounded latents, as Dreamer
4's tanh bottleneck), decoder ``decoder(C, C)`` -> pixels; loss MSE(decode(z), frame). No masking of the
tokenizer input (Dreamer 4 trains its tokenizer with MAE-style masking; here plain reconstruction).

Dynamics: a small conv net on the 8x8 grid, ``f(z_noisy, tau, d, z_t, a_t) -> z_t+1`` (x-prediction),
trained with shortcut forcing on pairs (t, t+1) of the same episode:
``z_noisy = tau * z_t+1 + (1 - tau) * eps`` (flow matching, tau = 1 is clean), step size
``d in {1, 1/2, 1/4, 1/8}`` (uniform), ``tau`` on the grid of multiples of ``d`` in ``[0, 1 - d]``.
For the smallest step (``d = 1/8``) the target is ``z_t+1`` itself (flow matching loss); for larger steps the
target is the bootstrap of two half steps of the model itself (no gradient): ``v1`` from
``f(z_noisy, tau, d/2)``, ``v2`` from ``f(z_noisy + v1 d/2, tau + d/2, d/2)``, target velocity
``(v1 + v2) / 2``, compared in x-space (``z_noisy + (1 - tau) v``, i.e. the velocity loss weighted by
``(1 - tau)^2``), clamped to the tanh range [-1, 1]. Loss = reconstruction + dynamics MSE. Dreamer 4's causal
transformer over long contexts,
its loss ramp weights and its separate training phases are NOT implemented: both losses are trained
jointly; the target ``z_t+1`` is stop-gradient, the context ``z_t`` passes gradient into the tokenizer.

- ``dynamics``: the action enters the dynamics net only (broadcast to the grid as extra channels).
- ``dynamics-actin``: the action is fed into the TRUNK instead: the tokenizer input is the frame plus ``A``
  constant channels holding ``a_t`` (the action taken at that frame), and the dynamics net gets no separate
  action input (the paper's action-conditioning paradox). At probe time the encoder has no action: the
  action channels are ZEROS (the training-set mean action, since actions are standardised).

Probed latents (layer ``out``): the tokenizer latents ``z = tanh(trunk(...))``, ``(64, C)``; ``decode`` is the
tokenizer's own decoder.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from wmprobe.zoo.models import ZooModel, backbone, decoder, flat, unflat

K_MAX = 3  # step sizes d = 2^-k, k = 0 .. K_MAX; the smallest (1/8) is trained with the flow-matching loss


def _grid(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``(B, K)`` -> ``(B, K, h, w)`` constant maps the size of ``like``."""
    return v[:, :, None, None].expand(-1, -1, *like.shape[-2:])


class Dynamics(ZooModel):
    act_in = False
    probe_input = "frame"

    def __init__(self, width: int, action_dim: int = 7):
        super().__init__()
        self.width, self.action_dim = width, action_dim
        self.trunk = backbone(width, in_ch=3 + (action_dim if self.act_in else 0))
        self.dec = decoder(width, width)
        c_in = 2 * width + 2 + (0 if self.act_in else action_dim)
        self.dyn = nn.Sequential(nn.Conv2d(c_in, 2 * width, 3, padding=1), nn.GELU(),
                                 nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.GELU(),
                                 nn.Conv2d(2 * width, width, 1))

    def encode(self, x: torch.Tensor, a: torch.Tensor | None = None) -> torch.Tensor:
        if self.act_in:
            a = torch.zeros(x.shape[0], self.action_dim, device=x.device, dtype=x.dtype) if a is None else a
            x = torch.cat([x, _grid(a.to(x.dtype), x)], dim=1)
        return torch.tanh(self.trunk(x))

    def latents(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.dec(z))

    def predict(self, zn, tau, d, ctx, a) -> torch.Tensor:
        parts = [zn, ctx, _grid(torch.stack([tau, d], dim=1), zn)]
        if not self.act_in:
            parts.append(_grid(a, zn))
        return self.dyn(torch.cat(parts, dim=1))

    def loss(self, x: torch.Tensor, a: torch.Tensor):
        b, L = x.shape[:2]
        xf = flat(x)
        z = self.encode(xf, flat(a) if self.act_in else None)
        rec = F.mse_loss(self.decode(z), xf)
        zc = unflat(z, b)
        ctx, z1 = flat(zc[:, :-1]), flat(zc[:, 1:]).detach()
        a0 = flat(a[:, :-1])
        n, dev = ctx.shape[0], ctx.device
        k = torch.randint(0, K_MAX + 1, (n,), device=dev)
        d = 2.0 ** (-k.float())
        tau = torch.floor(torch.rand(n, device=dev) * (1 / d)) * d           # multiples of d in [0, 1 - d]
        zn = tau[:, None, None, None] * z1 + (1 - tau[:, None, None, None]) * torch.randn_like(z1)
        pred = self.predict(zn, tau, d, ctx, a0)
        with torch.no_grad():
            c, h = ctx.detach(), d / 2
            one = (1 - tau)[:, None, None, None]
            v1 = (self.predict(zn, tau, h, c, a0) - zn) / one
            zm = zn + v1 * h[:, None, None, None]
            v2 = (self.predict(zm, tau + h, h, c, a0) - zm) / (one - h[:, None, None, None])
            boot = zn + one * 0.5 * (v1 + v2)
            boot = boot.clamp(-1, 1)              # z lives in (-1, 1) (tanh): a self-bootstrap target may not leave it
            target = torch.where((k == K_MAX)[:, None, None, None], z1, boot)
        dyn = F.mse_loss(pred, target)
        return rec + dyn, (None if self.act_in else zc)


class DynamicsActIn(Dynamics):
    act_in = True
    probe_input = "frame + action channels set to zeros (no action at probe time)"
