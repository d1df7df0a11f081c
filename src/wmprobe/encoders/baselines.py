"""The two floors every study needs: raw pixels and a random-init conv encoder.

``pixels``: frames resized to ``size x size`` (default 16). Layer ``out`` is one token holding the whole
flattened image (so mean pooling keeps every pixel); layer ``patches`` is a grid of 4x4-pixel patch tokens
for token-level probes.

``random-conv``: a seeded, never-trained copy of the mini-zoo trunk (``wmprobe.zoo.models.backbone``:
CoordConv, 3 stride-2 convs + GELU, a 1x1 projection) giving an 8x8 token grid of width 64 at 64x64 input;
layers ``conv1`` .. ``conv3`` (after each GELU) and ``out`` (the 1x1 projection, the layer the zoo probes).
Same weights for the same seed on every machine.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from wmprobe.encoders.base import EncoderSpec, TorchEncoder, conv_tokens, hash_state_dict
from wmprobe.errors import EncoderError


class Pixels(TorchEncoder):
    def frame_layers(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        out = {}
        if "out" in layers:
            out["out"] = x.flatten(1).unsqueeze(1)                       # (B, 1, 3*s*s)
        if "patches" in layers:
            p = self.spec.extra["patch"]
            b, c, h, w = x.shape
            t = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
            out["patches"] = t.reshape(b, (h // p) * (w // p), c * p * p)  # (B, N, 3*p*p)
        return out


def _no_unknown(what: str, unknown: dict[str, Any], known: str) -> None:
    if unknown:
        raise EncoderError(f"{what}: unknown option(s) {sorted(unknown)} (known: {known})")


def pixels(arg: str | None = None, *, size: int | None = None, device: str = "cpu", **unknown: Any) -> Pixels:
    """``pixels`` or ``pixels:32`` (resolution). The pixel floor: no learning at all."""
    _no_unknown("pixels", unknown, "size, device")
    try:
        s = int(size or arg or 16)
    except ValueError:
        raise EncoderError(f"pixels: resolution must be an integer, got '{arg}'") from None
    if s < 4 or s % 4:
        raise EncoderError(f"pixels: resolution must be a multiple of 4 and >= 4, got {s}")
    spec = EncoderSpec(name=f"pixels:{s}", family="pixels", input_size=(s, s), layers=("out", "patches"),
                       default_layer="out", resize="area", extra={"patch": 4})
    return Pixels(spec, nn.Identity(), device)


class RandomConvNet(nn.Module):
    """The mini-zoo's CoordConv trunk (``wmprobe.zoo.models.backbone``) at its random init: the random floor
    has exactly the architecture every zoo family trains, so "training" is the only difference."""

    def __init__(self, width: int = 64):
        super().__init__()
        from wmprobe.zoo.models import backbone
        self.trunk = backbone(width)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        for i, layer in enumerate(self.trunk):
            x = layer(x)
            if isinstance(layer, nn.GELU) or i == len(self.trunk) - 1:
                maps.append(x)
        return maps                              # conv1, conv2, conv3 (after GELU), out (1x1 projection)


class RandomConv(TorchEncoder):
    def frame_layers(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        maps = self.module(x)
        return {l: conv_tokens(maps[3 if l == "out" else int(l[-1]) - 1]) for l in layers}


def random_conv(arg: str | None = None, *, seed: int | None = None, width: int = 64, size: int = 64,
                device: str = "cpu", **unknown: Any) -> RandomConv:
    """``random-conv`` or ``random-conv:SEED``: the random-init floor (ImageNet-normalised input)."""
    _no_unknown("random-conv", unknown, "seed, width, size, device")
    try:
        seed = int(seed if seed is not None else (arg or 0))
    except ValueError:
        raise EncoderError(f"random-conv: seed must be an integer, got '{arg}'") from None
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    net = RandomConvNet(width)
    torch.random.set_rng_state(gen_state)
    spec = EncoderSpec(name=f"random-conv:{seed}", family="random", input_size=(size, size),
                       mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), layers=("conv1", "conv2", "conv3", "out"),
                       default_layer="conv3", weights_hash=hash_state_dict(net.state_dict()),
                       extra={"seed": seed, "width": width})
    return RandomConv(spec, net, device)
