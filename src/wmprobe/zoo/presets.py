"""Zoo training presets: the trunk width and the training budget (docs/zoo.md "Presets")."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    """Trunk ``width``, AdamW ``steps`` at peak ``lr`` (warm-up ``warmup`` steps, then cosine), ``beta``."""

    width: int
    steps: int
    batch_size: int          # pairs per step: every family sees 2 * batch_size frames per step
    lr: float
    beta: float = 1e-4
    warmup: int = 50


# docs/zoo.md "Presets": what each can show, and the arithmetic behind the demo's and compare's budgets
PRESETS = {"tiny": Preset(width=16, steps=40, batch_size=16, lr=3e-3, warmup=10),
           "demo": Preset(width=32, steps=400, batch_size=24, lr=2e-3, warmup=40),
           "compare": Preset(width=32, steps=2000, batch_size=24, lr=2e-3, warmup=100),
           "paper": Preset(width=128, steps=20000, batch_size=128, lr=1e-3, warmup=500)}
