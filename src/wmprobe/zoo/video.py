"""Video families on clips of ``CLIP_LEN`` consecutive frames of one episode, with TUBE masking: the same
``MASK_RATIO`` of the 8x8 patches (8x8 pixels each) is masked in every frame of a clip.

Shared context encoder: per-frame trunk ``backbone(C, in_ch=4)`` on the masked frame (masked patches zeroed)
plus a mask channel (1 = masked), then ``TemporalMixer`` (residual 3-D convs across frames and cells) so
masked content can be inferred from neighbouring frames.

- ``videomae``: the mixed latents -> ``decoder`` per frame -> pixels; loss = MSE on the masked patches only
  (pixel space).
- ``vjepa``: the mixed latents -> 1x1 predictor -> the latents of an EMA copy of the trunk on the UNMASKED
  clip (target layer-normalised over channels, stop-gradient; momentum ``EMA_START`` 0.996 -> ``EMA_END`` 1.0
  linearly over training, the I-JEPA / V-JEPA schedule); loss = L1 on the masked cells only. No pixel decoder.
  (Code version 4 used 0.99 -> 0.999: at 2000 steps the target then tracked the online trunk so closely that
  the loss climbed 0.04 -> 0.2 after step ~400 and the frozen features' probe R2 swung 0.33-0.64 across data
  seeds; with 0.996 -> 1.0 the same two seeds gave 0.50 and 0.51: docs/zoo.md.)

Probed latents (layer ``out``), per frame: the online trunk on the clean frame with an all-zero mask
channel ("nothing masked"), ``(64, C)``. For ``vjepa`` that is the online (context) encoder, not the EMA
target (+ID gradients reach the online encoder directly; at this scale the two are close).
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from wmprobe.zoo.models import (CLIP_LEN, TemporalMixer, ZooModel, backbone, decoder, flat, from_clip, to_clip,
                                tube_mask)

MASK_RATIO = 0.75
EMA_START, EMA_END = 0.996, 1.0


class _MaskedVideo(ZooModel):
    clip_len = CLIP_LEN
    probe_input = "clean frame, mask channel all zeros (nothing masked)"

    def __init__(self, width: int, action_dim: int = 7):
        super().__init__()
        self.width = width
        self.trunk = backbone(width, in_ch=4)
        self.mixer = TemporalMixer(width)

    def latents(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(torch.cat([x, torch.zeros_like(x[:, :1])], dim=1))

    def context(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x (B, L, 3, 64, 64)`` -> mixed latents ``(B*L, C, 8, 8)`` and the grid / pixel masks per frame."""
        b, L = x.shape[:2]
        m_grid, m_pix = tube_mask(b, MASK_RATIO, device=x.device)
        m_grid = m_grid.to(x.dtype).repeat_interleave(L, 0)
        m_pix = m_pix.to(x.dtype).repeat_interleave(L, 0)
        xf = flat(x)
        h = self.trunk(torch.cat([xf * (1 - m_pix), m_pix], dim=1))
        return from_clip(self.mixer(to_clip(h, b))), m_grid, m_pix


class VideoMAE(_MaskedVideo):
    def __init__(self, width: int, action_dim: int = 7):
        super().__init__(width, action_dim)
        self.dec = decoder(width, width)

    def loss(self, x: torch.Tensor, a: torch.Tensor):
        h, _, m_pix = self.context(x)
        rec = torch.sigmoid(self.dec(h))
        err = (rec - flat(x)).pow(2) * m_pix
        return err.sum() / (m_pix.sum() * 3).clamp_min(1), None


class VJEPA(_MaskedVideo):
    def __init__(self, width: int, action_dim: int = 7):
        super().__init__(width, action_dim)
        self.pred = nn.Sequential(nn.GELU(), nn.Conv2d(width, width, 1))
        self.target = copy.deepcopy(self.trunk)
        for p in self.target.parameters():
            p.requires_grad_(False)

    def loss(self, x: torch.Tensor, a: torch.Tensor):
        h, m_grid, _ = self.context(x)
        xf = flat(x)
        with torch.no_grad():
            tgt = self.target(torch.cat([xf, torch.zeros_like(xf[:, :1])], dim=1))
            tgt = F.layer_norm(tgt.permute(0, 2, 3, 1), tgt.shape[1:2]).permute(0, 3, 1, 2)
        err = (self.pred(h) - tgt).abs() * m_grid
        return err.sum() / (m_grid.sum() * self.width).clamp_min(1), None

    @torch.no_grad()
    def after_step(self, step: int, steps: int) -> None:
        m = EMA_START + (EMA_END - EMA_START) * step / max(steps - 1, 1)
        for pt, po in zip(self.target.parameters(), self.trunk.parameters()):
            pt.mul_(m).add_(po.detach(), alpha=1 - m)
