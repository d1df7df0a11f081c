"""`wmprobe demo`: the embedded study end to end on a CPU, no downloads.

1. Generate the embedded simulator suites (``dynamic`` and ``static``; cached by their parameters).
2. Split each by task (task-OOD: the probe is tested on held-out tasks).
3. Train the mini-zoo (every family, frozen and +ID, and the ceiling) on the TRAIN episodes of all suites
   pooled; both suites hold out the same task names, and the leakage check proves that no test episode or
   held-out task reached pretraining.
4. Extract per-step features once per (encoder, suite, corruption) and probe them: the paper's MLP protocol
   (3 seeds), ridge, and the shuffled-pairs control; k in the preset's list (the demo: k = 4); the paper's
   two corruptions.
5. Fit the decoder probe on frozen latents for fidelity (PSNR/SSIM), write records and the report.

Presets size the run: ``tiny`` (a smoke study in about a minute, used by tests), ``demo`` (the default,
~9 minutes on 2 quiet cores), ``compare`` (<= 45 minutes on 2 cores: the frozen families compared with
CIs) and ``paper`` (a GPU or a cluster); each is one file ``wmprobe/presets/NAME.yaml`` (its ``study`` section
is the study run here; study/presets.py), docs/zoo.md says what each can and cannot show. Everything is
deterministic for a seed.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from wmprobe.errors import ConfigError
from wmprobe.study.presets import StudyPreset, study_presets

PRESETS: dict[str, StudyPreset] = study_presets()   # tiny, demo, compare, paper (wmprobe/presets/*.yaml)


def run_demo(out: str | os.PathLike = "wmprobe-demo", seed: int = 0, preset: str = "demo",
             cache: str | os.PathLike | None = None, progress: bool = True, overrides: Sequence[str] = (),
             log: Sequence[str] = ()) -> Path:
    """The preset's study through the study runner (so the demo shares its latent cache, resume and records);
    ``overrides``: dotted ``KEY=VALUE`` strings over the preset's study (``probe.steps=100``)."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown demo preset '{preset}': choose one of {sorted(PRESETS)}")
    from wmprobe.study.runner import run
    p = PRESETS[preset]
    if progress:
        print(f"[wmprobe demo] preset {p.name}: {p.describe()}", flush=True)
    study = {**p.study_dict(), "name": f"demo-{preset}", "seed": seed}
    run(study, out=out, cache=cache, progress=progress, merge=False, overrides=overrides, log=log,
        extra_config={"command": "demo", "preset": {"name": p.name, "description": p.description,
                                                    "study": p.study_dict()}, "seed": seed})
    return Path(out)
