"""Does ``torch.compile`` make a zoo training step faster? One family's step (``model.loss`` forward + backward
+ AdamW, the preset's width and clips per step, random frames and actions) eager and compiled, one thread.

    .venv/bin/python bench/zoo_compile.py [--preset demo] [--families vae,diffusion,...] [--steps 40]
                                          [--action-dim 4] [--warm-cache]

Reference: the same step in eager mode (what ``zoo.train`` runs), timed in the same process right before the
compiled one, on a model of the same seed. Printed per family: eager and compiled milliseconds per step
(after 5 warm-up steps; the compiled warm-up holds the compilation), the compile seconds, the speed-up
``eager / compiled`` and the break-even: the training steps after which the compiled model has paid for its
compilation (none when it is not faster). The last line is JSON with the same numbers and ``preset_steps``, the
preset's training steps to set the break-even against.

Compile seconds are those of a cold compiler cache: the bench points inductor at a new temporary directory
(``TORCHINDUCTOR_CACHE_DIR``), as a fresh machine or CI runner would have; ``--warm-cache`` keeps the user's
cache instead (a rerun then compiles in about a second). Needs a C++ compiler at run time (inductor's CPU
backend). Not part of the test suite, which does not time anything. Bound: none; this bench only answers
whether compiling is worth it at the preset's step count.
"""
from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import sys
import tempfile
import time

if "--warm-cache" not in sys.argv:     # before torch reads it; removed when the bench exits
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = _cold = tempfile.mkdtemp(prefix="wmprobe-inductor-")
    atexit.register(shutil.rmtree, _cold, True)

import torch  # noqa: E402

from wmprobe import zoo  # noqa: E402
from wmprobe.zoo.families import build  # noqa: E402

WARMUP = 5


def time_steps(family: str, cfg: zoo.Preset, action_dim: int, steps: int, compiled: bool) -> tuple[float, float]:
    """``(warm-up seconds, seconds per step)`` of ``steps`` training steps after ``WARMUP`` warm-up steps, on
    the clips per step ``zoo.train`` draws (``2 * batch_size // clip_len``)."""
    torch.manual_seed(0)
    model = build(family, cfg.width, action_dim)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    L = model.clip_len
    clips = max(2, (2 * cfg.batch_size) // L)
    x = torch.rand(clips, L, 3, 64, 64)
    a = torch.randn(clips, L, action_dim)
    loss_fn = torch.compile(model.loss) if compiled else model.loss

    def step() -> None:
        loss, _ = loss_fn(x, a)
        opt.zero_grad()
        loss.backward()
        opt.step()
    t0 = time.perf_counter()
    for _ in range(WARMUP):
        step()
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return warm, (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="demo", choices=sorted(zoo.PRESETS))
    ap.add_argument("--families", default=",".join(zoo.FAMILIES))
    ap.add_argument("--steps", type=int, default=40, help="timed steps per mode after the warm-up")
    ap.add_argument("--action-dim", type=int, default=4)
    ap.add_argument("--warm-cache", action="store_true", help="keep inductor's own cache (default: a new one)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = zoo.PRESETS[args.preset]
    out = {}
    for fam in args.families.split(","):
        _, eager = time_steps(fam, cfg, args.action_dim, args.steps, compiled=False)
        warm, comp = time_steps(fam, cfg, args.action_dim, args.steps, compiled=True)
        compile_s = max(0.0, warm - WARMUP * comp)
        gain = eager - comp
        even = round(compile_s / gain) if gain > 0 else None
        out[fam] = {"eager_ms": round(eager * 1e3, 1), "compiled_ms": round(comp * 1e3, 1),
                    "compile_s": round(compile_s, 1), "speedup": round(eager / comp, 3), "break_even_steps": even}
        print(f"{fam:15s} eager {eager * 1e3:7.1f} ms  compiled {comp * 1e3:7.1f} ms  compile {compile_s:5.1f} s  "
              f"eager/compiled {eager / comp:.2f}x  break-even {even if even is not None else 'never'} steps",
              flush=True)
    eager = sum(v["eager_ms"] for v in out.values())
    comp = sum(v["compiled_ms"] for v in out.values())
    print(f"all families: eager {eager:.1f} ms, compiled {comp:.1f} ms per step (one step of each): "
          f"eager/compiled {eager / comp:.2f}x")
    print(json.dumps({"preset": args.preset, "preset_steps": cfg.steps, "threads": 1,
                      "cold_cache": not args.warm_cache, "speedup_all": round(eager / comp, 3), "families": out}))


if __name__ == "__main__":
    main()
