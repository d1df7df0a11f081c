"""Embedded simulator throughput: frames/s per suite with the default worker pool vs one worker (the
reference), bytes per stored frame, and the time the demo's dataset (60 episodes x 40 steps) would take.

    .venv/bin/python bench/datagen.py [--episodes 8] [--steps 40] [--size 64] [--workers N]

The pybullet suites are in ``per_suite`` (and ``ratio``); the metaworld suite, when metaworld is installed,
is measured the same way under its own key ``metaworld`` (else ``{"skipped": reason}``).

Fraction of the machine's limit: generation is CPU-bound per worker process (physics and software rendering),
so the limit of a pool is linear scaling over the cores it can use: ``fraction = speed-up over one worker /
min(workers, cores)`` per suite; ``fraction_of_limit`` is the lowest over the suites. (``bench/roofline.py``'s
figures are printed beside it for the machine; a renderer has no FLOP or byte count to hold against them.)

The last printed line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import roofline  # noqa: E402
from wmprobe.data.sim import SUITES, generate  # noqa: E402


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


def measure(suite: str, episodes: int, steps: int, size: int, workers: int) -> tuple[float, object]:
    """``(frames per second, store)`` of one generation run (worker start-up included)."""
    t0 = time.perf_counter()
    store = generate(suite, episodes, steps=steps, size=size, seed=0, workers=workers, progress=False)
    return store.n_frames / (time.perf_counter() - t0), store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=8)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 4))
    ap.add_argument("--quick", action="store_true", help="2 episodes of 10 steps (CI)")
    a = ap.parse_args()
    if a.quick:
        a.episodes, a.steps = 2, 10
    lim = roofline.measure(a.quick)
    print("machine limits:", roofline.describe(lim), file=sys.stderr)
    usable = max(1, min(a.workers, os.cpu_count() or 1))
    per_suite = {}
    print(f"{'suite':8s} {'workers':>7s} {'frames/s':>9s} {'1 worker':>9s} {'speed-up':>8s} {'bytes/frame':>11s}",
          file=sys.stderr)
    for suite in [s for s in SUITES if s != "metaworld"]:
        fps_1, _ = measure(suite, a.episodes, a.steps, a.size, 1)
        fps_n, store = measure(suite, a.episodes, a.steps, a.size, a.workers)
        with tempfile.TemporaryDirectory() as tmp:
            bpf = _dir_bytes(store.save(Path(tmp) / "store")) / store.n_frames
        per_suite[suite] = {"frames_per_s": round(fps_n, 1), "frames_per_s_1_worker": round(fps_1, 1),
                            "speedup": round(fps_n / fps_1, 2), "bytes_per_frame": round(bpf, 1),
                            "demo_60x40_s": round(60 * 40 / fps_n, 1),
                            "fraction_of_limit": round(fps_n / fps_1 / usable, 3)}
        r = per_suite[suite]
        print(f"{suite:8s} {a.workers:7d} {fps_n:9.1f} {fps_1:9.1f} {r['speedup']:8.2f} {bpf:11.1f}", file=sys.stderr)
    ratios = [r["speedup"] for r in per_suite.values()]
    mw = measure_metaworld(a)
    print(json.dumps({"bench": "datagen", "reference": "the same generation with 1 worker process",
                      "episodes": a.episodes, "steps": a.steps, "size": a.size, "workers": a.workers,
                      "cpus": os.cpu_count(), "ratio": round(min(ratios), 2), "per_suite": per_suite,
                      "metaworld": mw, "limit": f"linear scaling over min(workers, cores) = {usable}",
                      "fraction_of_limit": min(r["fraction_of_limit"] for r in per_suite.values()),
                      "limits": lim}))


def measure_metaworld(a: argparse.Namespace) -> dict:
    """The metaworld suite's numbers (default tasks, camera 'corner'), or ``{"skipped": reason}``."""
    from wmprobe.errors import ConfigError
    try:
        fps_1, _ = measure("metaworld", a.episodes, a.steps, a.size, 1)
        fps_n, store = measure("metaworld", a.episodes, a.steps, a.size, a.workers)
    except ConfigError as exc:
        print(f"metaworld skipped: {exc}", file=sys.stderr)
        return {"skipped": str(exc)}
    with tempfile.TemporaryDirectory() as tmp:
        bpf = _dir_bytes(store.save(Path(tmp) / "store")) / store.n_frames
    r = {"frames_per_s": round(fps_n, 1), "frames_per_s_1_worker": round(fps_1, 1),
         "speedup": round(fps_n / fps_1, 2), "bytes_per_frame": round(bpf, 1),
         "demo_60x40_s": round(60 * 40 / fps_n, 1), "camera": store.meta["source"]["camera"]}
    print(f"{'metaworld':8s} {a.workers:7d} {fps_n:9.1f} {fps_1:9.1f} {r['speedup']:8.2f} {bpf:11.1f}", file=sys.stderr)
    return r


if __name__ == "__main__":
    main()
