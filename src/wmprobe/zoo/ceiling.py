"""``ceiling``: the shared trunk trained end to end with the inverse-dynamics objective ALONE (no family loss).

The upper reference beside the floors (``pixels``, ``random-conv``): the same trunk ``backbone(C)``, the same
clips, steps, batch and schedule as every family, trained only by the +ID head (``objectives``: l1 inverse
dynamics over every pair of the clip on the +ID dims). It is what this trunk and budget can reach when the
probe's target is the whole training signal; an encoder's place between the best floor and the ceiling
(``r2_norm``) says how much of that its pretraining recovered. Probed latents (layer ``out``): the trunk
output on the clean frame ``(64, C)``; records: ``encoder = ceiling``, ``family = ceiling``.
"""
from __future__ import annotations

import torch

from wmprobe.zoo.models import ZooModel, backbone


class Ceiling(ZooModel):
    own_loss = False
    probe_input = "clean frame (trunk trained by inverse dynamics alone)"

    def __init__(self, width: int, action_dim: int = 7):
        super().__init__()
        self.trunk = backbone(width)

    def latents(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def loss(self, x: torch.Tensor, a: torch.Tensor):
        """No family loss: ``zoo.training._fit`` trains this model by the +ID term alone."""
        return x.new_zeros(()), None
