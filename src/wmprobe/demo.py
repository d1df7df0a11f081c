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
<= ~6 minutes on 2 quiet cores), ``compare`` (<= 45 minutes on 2 cores: the frozen families compared with
CIs) and ``paper`` (a GPU or a cluster); docs/zoo.md says what each can and cannot show. Everything is
deterministic for a seed.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from wmprobe.errors import ConfigError


@dataclass(frozen=True)
class DemoPreset:
    name: str
    episodes: int                       # per suite
    steps: int                          # control steps per episode
    size: int = 64
    suites: tuple[str, ...] = ("dynamic", "static")
    families: tuple[str, ...] = ()
    id_weight: float = 1.0
    zoo_preset: str = "demo"
    probes: tuple[str, ...] = ("mlp", "ridge", "mlp-shuffled")
    ks: tuple[int, ...] = (1,)
    seeds: tuple[int, ...] = (0, 1, 2)
    corruptions: tuple[str, ...] = ("clean", "noise:0.15", "blur:11")
    fidelity: bool = True
    mlp_steps: int = 3000
    n_boot: int = 1000
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return (f"{len(self.suites)} suite(s) x {self.episodes} episodes x {self.steps} steps at {self.size}px; "
                f"{len(self.families)} zoo families (frozen and +ID) and the ceiling, zoo preset {self.zoo_preset}; "
                f"probes {', '.join(self.probes)}; "
                f"k {list(self.ks)}; {len(self.seeds)} seeds; corruptions {', '.join(self.corruptions)}")


ALL_FAMILIES = ("vae", "image-ssl", "diffusion", "videomae", "vjepa", "dynamics", "dynamics-actin")  # zoo.FAMILIES
PRESETS = {
    "tiny": DemoPreset("tiny", episodes=12, steps=12, size=64, suites=("dynamic", "static"),
                       families=("vae",), zoo_preset="tiny", probes=("mlp", "ridge", "mlp-shuffled"),
                       ks=(1,), seeds=(0,), corruptions=("clean", "noise:0.15"), fidelity=False, mlp_steps=300, n_boot=200,
                       extra={"pixels": "pixels:8"}),
    # the demo trims the paper's MLP budget (3000 steps, batch 256, 2 lrs) to 500 steps, batch 128, 1 lr so
    # that 17 encoders x 2 suites x (clean, noise, blur) fit a 10-minute budget on 2 CPU cores (measured
    # 13.6 min with 1000 steps, probing ~45% of it); the probe config recorded with every row says what ran.
    # It headlines k = 4 (k = 1 is ~1 px of motion) and spends the time that saves on zoo steps (400: docs/zoo.md)
    "demo": DemoPreset("demo", episodes=48, steps=40, families=ALL_FAMILIES, ks=(4,), fidelity=True,
                       mlp_steps=500, extra={"pixels": "pixels:8", "mlp": {"batch_size": 128, "lrs": [1e-3]}}),
    # between demo and paper (<= 45 min on 2 cores): 2x the episodes, 5x the zoo steps, the MLP at 1000 steps;
    # sized so that the FROZEN families can be told apart with CIs (docs/zoo.md "Presets")
    "compare": DemoPreset("compare", episodes=96, steps=40, families=ALL_FAMILIES, zoo_preset="compare", ks=(4,),
                          fidelity=True, mlp_steps=1000,
                          extra={"pixels": "pixels:8", "mlp": {"batch_size": 128, "lrs": [1e-3]}}),
    # the paper's protocol at full budget (MLP 3000 steps, batch 256, 2 lrs; k in {1, 2, 4, 8}; ImageNet-C
    # at three severities): hours on a CPU, meant for a GPU or a cluster (`wmprobe run` with `preset: paper`)
    "paper": DemoPreset("paper", episodes=200, steps=60, families=ALL_FAMILIES, zoo_preset="paper",
                        probes=("mlp", "ridge", "mlp-shuffled", "mlp-single"), ks=(1, 2, 4, 8),
                        corruptions=("clean", "noise:0.15", "blur:11", "gaussian_noise:1", "gaussian_noise:3",
                                     "gaussian_noise:5", "defocus_blur:1", "defocus_blur:3", "defocus_blur:5",
                                     "jpeg_compression:3", "fog:3", "contrast:3"),
                        mlp_steps=3000, extra={"pixels": "pixels:16", "mlp": {"batch_size": 256,
                                                                               "lrs": [1e-3, 3e-4]}}),
}


def run_demo(out: str | os.PathLike = "wmprobe-demo", seed: int = 0, preset: str = "demo",
             cache: str | os.PathLike | None = None, progress: bool = True, overrides: Sequence[str] = (),
             log: Sequence[str] = ()) -> Path:
    """The preset's study through the study runner (so the demo shares its latent cache, resume and records);
    ``overrides``: dotted ``KEY=VALUE`` strings over the preset's study (``probe.steps=100``)."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown demo preset '{preset}': choose one of {sorted(PRESETS)}")
    from wmprobe.study.config import preset_dict
    from wmprobe.study.runner import run
    p = PRESETS[preset]
    if progress:
        print(f"[wmprobe demo] preset {p.name}: {p.describe()}", flush=True)
    study = {**preset_dict(preset), "name": f"demo-{preset}", "seed": seed}
    run(study, out=out, cache=cache, progress=progress, merge=False, overrides=overrides, log=log,
        extra_config={"command": "demo", "preset": asdict(p), "seed": seed})
    return Path(out)
