"""Mini-zoo training budget: every family in one preset (default ``demo``), frozen and +ID, and the ceiling, on a
generated simulator dataset; seconds, parameter counts and loss plateau per model, and the total against the
demo's zoo budget (8 serial minutes on one quiet core: 4 minutes on the demo's 2 workers).

    .venv/bin/python bench/zoo.py [--preset demo] [--suite dynamic] [--episodes 48] [--steps 40]
                                  [--families vae,image-ssl,...] [--no-id] [--threads N] [--cache DIR]

Models are trained into a fresh temporary directory (nothing reused); the dataset is generated once into
``--cache`` (default ``$WMPROBE_CACHE`` or ``~/.cache/wmprobe``, ``data/``) and memory-mapped afterwards.
The last printed line is one JSON object: per-model seconds, params and plateau (``zoo.plateau``: the share
of the loss's improvement made in the last 20 % of the steps), total_seconds, budget_ratio = total_seconds /
480 (<= 1 on a quiet core fits the demo's zoo budget; docs/zoo.md "Presets" has the arithmetic).

Fraction of the machine's limit (``bench/roofline.py``, measured in this process): the FLOPs of one training
step of the model (``model.loss`` forward + backward on a batch of the recipe's shape, ``clips_per_step`` clips
of ``clip_len`` 64 x 64 frames; counted with ``torch.utils.flop_counter.FlopCounterMode``: convolutions,
transposed convolutions, matmuls, attention, 2 FLOPs per multiply-add; the +ID head's few FLOPs and the
optimizer are not counted) over the frames in that step give FLOPs per image; the GEMM-bound estimate is
``images/s = fp32 GEMM peak / FLOPs per image``, and each model's ``fraction`` = measured images/s (frames per
step x steps / the fit's own seconds) over it. ``fraction_of_limit`` and ``slowest_family`` name the lowest.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import roofline  # noqa: E402
from wmprobe import zoo
from wmprobe.data.sim import cached_generate

BUDGET_S = 480.0


def step_flops(family: str, width: int, clips: int, clip_len: int, action_dim: int) -> float:
    """FLOPs of one training step's ``model.loss`` forward + backward (see the module doc)."""
    from torch.utils.flop_counter import FlopCounterMode
    torch.manual_seed(0)
    model = zoo.build(family, width, action_dim)
    model.train()
    x = torch.rand(clips, clip_len, 3, 64, 64)
    a = torch.randn(clips, clip_len, action_dim)
    with FlopCounterMode(display=False) as fc:
        if getattr(model, "own_loss", True):
            loss, _ = model.loss(x, a)
        else:   # the ceiling: no family loss; its step is the trunk forward + backward (+ the small +ID head)
            loss = model.latents(x.flatten(0, 1)).float().pow(2).mean()
        loss.float().backward()
    return float(fc.get_total_flops())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="demo", choices=sorted(zoo.PRESETS))
    ap.add_argument("--suite", default="dynamic")
    ap.add_argument("--episodes", type=int, default=48)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--families", default=",".join(zoo.FAMILIES))
    ap.add_argument("--id-weight", type=float, default=1.0)
    ap.add_argument("--no-id", action="store_true", help="frozen models only")
    ap.add_argument("--no-ceiling", action="store_true", help="leave the ceiling out")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    ap.add_argument("--cache", default=None)
    ap.add_argument("--quick", action="store_true", help="preset tiny, 12 episodes of 20 steps, frozen only (CI)")
    a = ap.parse_args()
    if a.quick:
        a.preset, a.episodes, a.steps, a.no_id = "tiny", 12, 20, True
    if a.threads:
        torch.set_num_threads(a.threads)
    lim = roofline.measure(a.quick)
    print("machine limits:", roofline.describe(lim), flush=True)
    root = Path(a.cache or os.environ.get("WMPROBE_CACHE") or Path.home() / ".cache" / "wmprobe").expanduser()
    t0 = time.perf_counter()
    store = cached_generate(a.suite, root / "data", episodes=a.episodes, steps=a.steps, size=64, seed=0,
                            progress=False)
    data_s = time.perf_counter() - t0
    weights = (0.0,) if a.no_id else (0.0, a.id_weight)
    rows = []
    print(f"data: {a.suite} {store.n_episodes} episodes, {store.n_frames} frames ({data_s:.1f}s); preset "
          f"{a.preset} {zoo.PRESETS[a.preset]}; torch threads {torch.get_num_threads()}")
    print(f"{'family':16s} {'id':>5s} {'seconds':>8s} {'params':>8s} {'trunk':>7s} {'loss first->last':>20s} "
          f"{'img/s':>8s} {'MFLOP/img':>9s} {'bound img/s':>11s} {'fraction':>8s}")
    runs = [(fam, w) for fam in a.families.split(",") for w in weights]
    runs += [] if a.no_ceiling else [(zoo.CEILING, 1.0)]
    with tempfile.TemporaryDirectory() as tmp:
        for fam, w in runs:
            if True:
                t = time.perf_counter()
                ck = zoo.train(fam, store, train_episodes=list(range(store.n_episodes)), preset=a.preset,
                               id_weight=w, cache_dir=tmp, progress=False)
                sec = time.perf_counter() - t
                meta = json.loads((ck / "recipe.json").read_text())
                c = meta["loss_curve"]
                first, last = sum(c[:5]) / len(c[:5]), sum(c[-5:]) / len(c[-5:])
                frames_per_step = meta["clips_per_step"] * meta["clip_len"]
                flops = step_flops(fam, meta["recipe"]["width"], meta["clips_per_step"], meta["clip_len"],
                                   store.action_dim) / frames_per_step
                ips = frames_per_step * meta["recipe"]["steps"] / max(meta["seconds"], 1e-9)
                bound = roofline.limit("gemm") / flops
                rows.append({"family": fam, "id_weight": w, "seconds": round(sec, 2), "params": meta["params"],
                             "trunk_params": meta["trunk_params"], "loss_first": round(first, 5),
                             "loss_last": round(last, 5), "images_per_s": round(ips, 1),
                             "mflop_per_image": round(flops / 1e6, 2), "bound_images_per_s": round(bound, 1),
                             "fraction": round(ips / bound, 4),
                             "plateau": meta.get("plateau"), "id_plateau": meta.get("id_plateau")})
                print(f"{fam:16s} {w:5g} {sec:8.1f} {meta['params']:8d} {meta['trunk_params']:7d} "
                      f"{first:9.4f} -> {last:8.4f} {ips:8.1f} {flops / 1e6:9.2f} {bound:11.0f} "
                      f"{ips / bound:8.4f}  last-20% share {meta['plateau']['tail_share']:.3f}", flush=True)
    total = sum(r["seconds"] for r in rows)
    print(f"total {total:.1f}s for {len(rows)} models = {total / BUDGET_S:.2f} x the {BUDGET_S:.0f}s budget")
    slow = min(rows, key=lambda r: r["fraction"])
    print(f"slowest family against its GEMM-bound estimate: {slow['family']} (id {slow['id_weight']:g}) at "
          f"{slow['fraction']} ({slow['images_per_s']} of {slow['bound_images_per_s']} images/s)")
    print(json.dumps({"preset": a.preset, "suite": a.suite, "frames": store.n_frames,
                      "threads": torch.get_num_threads(), "models": rows, "total_seconds": round(total, 1),
                      "budget_seconds": BUDGET_S, "budget_ratio": round(total / BUDGET_S, 3),
                      "fraction_of_limit": slow["fraction"], "slowest_family": slow["family"], "limits": lim}))


if __name__ == "__main__":
    main()
