"""Mini-zoo training budget: every family in one preset (default ``demo``), frozen and +ID, on a generated
simulator dataset; seconds and parameter counts per model, and the total against the demo's 5-minute budget.

    .venv/bin/python bench/zoo.py [--preset demo] [--suite dynamic] [--episodes 48] [--steps 40]
                                  [--families vae,image-ssl,...] [--no-id] [--threads N] [--cache DIR]

Models are trained into a fresh temporary directory (nothing reused); the dataset is generated once into
``--cache`` (default ``$WMPROBE_CACHE`` or ``~/.cache/wmprobe``, ``data/``) and memory-mapped afterwards.
The last printed line is one JSON object: per-model seconds and params, total_seconds, budget_ratio =
total_seconds / 300 (<= 1 fits the demo's budget of 5 minutes for the whole zoo, frozen and +ID).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from wmprobe import zoo
from wmprobe.data.sim import cached_generate

BUDGET_S = 300.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="demo", choices=sorted(zoo.PRESETS))
    ap.add_argument("--suite", default="dynamic")
    ap.add_argument("--episodes", type=int, default=48)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--families", default=",".join(zoo.FAMILIES))
    ap.add_argument("--id-weight", type=float, default=1.0)
    ap.add_argument("--no-id", action="store_true", help="frozen models only")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    ap.add_argument("--cache", default=None)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    root = Path(a.cache or os.environ.get("WMPROBE_CACHE") or Path.home() / ".cache" / "wmprobe").expanduser()
    t0 = time.perf_counter()
    store = cached_generate(a.suite, root / "data", episodes=a.episodes, steps=a.steps, size=64, seed=0,
                            progress=False)
    data_s = time.perf_counter() - t0
    weights = (0.0,) if a.no_id else (0.0, a.id_weight)
    rows = []
    print(f"data: {a.suite} {store.n_episodes} episodes, {store.n_frames} frames ({data_s:.1f}s); preset "
          f"{a.preset} {zoo.PRESETS[a.preset]}; torch threads {torch.get_num_threads()}")
    print(f"{'family':16s} {'id':>5s} {'seconds':>8s} {'params':>8s} {'trunk':>7s} {'loss first->last':>20s}")
    with tempfile.TemporaryDirectory() as tmp:
        for fam in a.families.split(","):
            for w in weights:
                t = time.perf_counter()
                ck = zoo.train(fam, store, train_episodes=list(range(store.n_episodes)), preset=a.preset,
                               id_weight=w, cache_dir=tmp, progress=False)
                sec = time.perf_counter() - t
                meta = json.loads((ck / "recipe.json").read_text())
                c = meta["loss_curve"]
                first, last = sum(c[:5]) / len(c[:5]), sum(c[-5:]) / len(c[-5:])
                rows.append({"family": fam, "id_weight": w, "seconds": round(sec, 2), "params": meta["params"],
                             "trunk_params": meta["trunk_params"], "loss_first": round(first, 5),
                             "loss_last": round(last, 5)})
                print(f"{fam:16s} {w:5g} {sec:8.1f} {meta['params']:8d} {meta['trunk_params']:7d} "
                      f"{first:9.4f} -> {last:8.4f}", flush=True)
    total = sum(r["seconds"] for r in rows)
    print(f"total {total:.1f}s for {len(rows)} models = {total / BUDGET_S:.2f} x the {BUDGET_S:.0f}s budget")
    print(json.dumps({"preset": a.preset, "suite": a.suite, "frames": store.n_frames,
                      "threads": torch.get_num_threads(), "models": rows, "total_seconds": round(total, 1),
                      "budget_seconds": BUDGET_S, "budget_ratio": round(total / BUDGET_S, 3)}))


if __name__ == "__main__":
    main()
