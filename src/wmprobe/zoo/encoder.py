"""A zoo model as an encoder: layer ``out`` = ``module.latents(frame)`` as ``(64, C)`` tokens."""
from __future__ import annotations

from typing import Sequence

import torch

from wmprobe.encoders.base import TorchEncoder, conv_tokens


class ZooEncoder(TorchEncoder):
    """A zoo model as an encoder: layer ``out`` = ``module.latents(frame)`` as ``(64, C)`` tokens."""

    def frame_layers(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        return {"out": conv_tokens(self.module.latents(x))}


class ZooDecodingEncoder(ZooEncoder):
    """Families with their own pixel decoder from the probed latents (vae, dynamics tokenizers)."""

    def decode_latents(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, T, N, C)`` tokens on the square grid -> ``(B, T, 64, 64, 3)`` uint8 frames (own decoder)."""
        b, t, n, c = tokens.shape
        g = int(round(n ** 0.5))
        z = tokens.reshape(b * t, g, g, c).permute(0, 3, 1, 2).to(self.device)
        with torch.inference_mode():
            img = self.module.decode(z)
        return (img.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).reshape(b, t, *img.shape[2:], 3)
