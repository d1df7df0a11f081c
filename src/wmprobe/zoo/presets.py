"""Zoo training presets: the trunk width and the training budget, read from the ``zoo`` section of each preset
file (``wmprobe/presets/NAME.yaml``; docs/zoo.md "Presets" says what each can show)."""
from __future__ import annotations

from dataclasses import dataclass

from wmprobe import presets


@dataclass(frozen=True)
class Preset:
    """Trunk ``width``, AdamW ``steps`` at peak ``lr`` (warm-up ``warmup`` steps, then cosine), ``beta``."""

    width: int
    steps: int
    batch_size: int          # pairs per step: every family sees 2 * batch_size frames per step
    lr: float
    beta: float
    warmup: int


PRESETS: dict[str, Preset] = presets.section("zoo", Preset)
