"""Zoo training presets: the trunk width and the training budget, read from the ``zoo`` section of each preset
file (``wmprobe/presets/NAME.yaml``; docs/zoo.md "Presets" says what each can show)."""
from __future__ import annotations

from dataclasses import dataclass

from wmprobe import presets


@dataclass(frozen=True)
class Preset:
    """Trunk ``width``, AdamW ``steps`` at peak ``lr`` (warm-up ``warmup`` steps, then cosine), ``beta``;
    the ceiling trains ``ceiling_factor`` x ``steps`` (docs/zoo.md "The ceiling")."""

    width: int
    steps: int
    batch_size: int          # pairs per step: every family sees 2 * batch_size frames per step
    lr: float
    beta: float
    warmup: int
    ceiling_factor: int      # the ceiling (inverse dynamics alone) trains this many times the families' steps


PRESETS: dict[str, Preset] = presets.section("zoo", Preset)
