"""Study runner costs: warm vs cold re-run, peak RSS vs dataset size, cached extraction vs pure forward.

The last printed line is one JSON object with every figure and its ratio against the named reference:

(a) ``warm_over_cold``: wall time of a second `wmprobe demo` (same seed, same cache, same out dir) over the
    first, cold one (fresh cache: simulation, zoo training, extraction, probes, report). Goal <= 0.05.
    Reference: the cold run. Each run is a fresh `wmprobe` process (imports included).
(b) ``rss_ratio``: peak RSS of a study (pixels + random-conv, clean + noise, ridge + mlp probes, the
    decoder probe for fidelity, local executor, 1 worker, in-process) on 4N episodes over the same study on N
    episodes. Goal <= 1.10.
    Reference: the N-episode run. Each run is a fresh process; ru_maxrss of that process.
(c) ``extract_over_forward``: a study's extraction path (ExtractTask: memory-mapped frames, per-episode
    windows, encode, then the cache write: .npy files, BLAKE2 checksums, atomic rename) over the pure forward
    of the same encoder on the same frames already in memory in the same batches. Goal <= 1.10.
    Reference: the pure forward. Encoder: a zoo VAE of the demo preset's size (the study's own kind of encoder).

Fraction of the machine's limit (``bench/roofline.py``): the extraction in (c) is bound by the encoder's
forward, FLOP-bound: its FLOPs (``torch.utils.flop_counter.FlopCounterMode`` over one pure-forward pass,
2 per multiply-add) over the one-thread fp32 GEMM peak (the task runs on one thread) give the shortest
possible time; ``forward_fraction`` and ``extract_fraction`` are that over the measured times, and
``fraction_of_limit`` the lower.

Usage: ``python bench/study.py [--preset tiny|demo] [--episodes N] [--skip-demo] [--quick]``
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import roofline  # noqa: E402

RSS_CHILD = r"""
import json, resource, sys
from wmprobe.study.runner import run
cfg = json.loads(sys.argv[1])
run(cfg, out=sys.argv[2], cache=sys.argv[3], progress=False, report=False)
print(json.dumps({"maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def demo_runs(preset: str, root: Path) -> dict:
    cmd = [sys.executable, "-m", "wmprobe.cli", "--quiet", "demo", "--preset", preset, "--out", str(root / "out"),
           "--cache", str(root / "cache")]
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return {"preset": preset, "cold_s": round(times[0], 2), "warm_s": round(times[1], 2),
            "warm_over_cold": round(times[1] / times[0], 4)}


def rss_runs(episodes: int, root: Path) -> dict:
    out = {}
    for n in (episodes, 4 * episodes):
        cfg = {"name": f"rss{n}", "datasets": [{"name": "dynamic", "sim": "dynamic", "episodes": n, "steps": 40}],
               "encoders": [{"name": "pixels:8", "label": "pixels"}, "random-conv:0"],
               "corruptions": ["clean", "noise:0.15"], "probes": ["ridge", "mlp"], "seeds": [0],
               "probe": {"steps": 300}, "n_boot": 200, "fidelity": True, "fidelity_preset": "tiny",
               "executor": {"workers": 1}}
        # the simulator's worker processes are not this process: generate first, then measure the study
        subprocess.run([sys.executable, "-m", "wmprobe.cli", "--quiet", "data", "gen", "dynamic",
                        str(root / f"gen{n}"), "--episodes", str(n)], check=True, capture_output=True,
                       env={**os.environ, "WMPROBE_CACHE": str(root / "cache")})
        r = subprocess.run([sys.executable, "-c", RSS_CHILD, json.dumps(cfg), str(root / f"rss{n}"),
                            str(root / "cache")], check=True, capture_output=True, text=True)
        out[n] = json.loads(r.stdout.strip().splitlines()[-1])["maxrss_mb"]
    small, big = out[episodes], out[4 * episodes]
    return {"episodes": [episodes, 4 * episodes], "maxrss_mb": [round(small, 1), round(big, 1)],
            "rss_ratio": round(big / small, 3)}


def extract_vs_forward(root: Path, episodes: int) -> dict:
    import numpy as np
    import torch

    from wmprobe import zoo
    from wmprobe.data.sim import cached_generate
    from wmprobe.encoders.registry import load_encoder
    from wmprobe.study.cache import Cache
    from wmprobe.study.plan import DatasetRef, EncoderRef, ExtractTask, extract_key
    from wmprobe.study.tasks import run_task
    torch.set_num_threads(1)
    store = cached_generate("dynamic", root / "cache" / "data", episodes=episodes, steps=40, progress=False)
    # the demo preset's model size (weights barely trained: only the forward cost matters here)
    ckpt = zoo.train("vae", store, train_episodes=range(store.n_episodes), preset="demo", overrides={"steps": 2},
                     cache_dir=root / "cache" / "zoo", progress=False)
    enc = load_encoder(f"zoo:{ckpt}")
    spec = enc.spec
    ref = EncoderRef("zoo:vae", f"zoo:{ckpt}", (), (spec.default_layer,), spec.family, 0.0, spec.key())
    ds = DatasetRef("dynamic", str(store.path), store.fingerprint, store.n_episodes, "episode", (), ())
    eps = tuple(range(store.n_episodes))
    frames = [torch.from_numpy(np.array(store.frames[store.episode_slice(e)])) for e in eps]
    batch = 32

    def forward():
        with torch.inference_mode():
            for f in frames:
                for b in range(0, f.shape[0], batch):
                    enc.encode(f[b:b + batch, None], [spec.default_layer])

    def cached_extract(i):
        # each run has its own cache root, so the same key is computed afresh every time
        task = ExtractTask(extract_key(ref, ds, eps, "clean", False), ref, ds, eps, "clean", False)
        run_task(task, str(root / f"xcache{i}"), threads=1)
    forward()
    cached_extract(-1)  # warm-up (imports, page cache)
    best_f, best_x = float("inf"), float("inf")
    for i in range(3):
        t0 = time.perf_counter()
        forward()
        best_f = min(best_f, time.perf_counter() - t0)
        t0 = time.perf_counter()
        cached_extract(i)
        best_x = min(best_x, time.perf_counter() - t0)
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc:
        forward()
    flops = fc.get_total_flops()
    assert Cache(root / "xcache0").has_latents(next(p.name for p in (root / "xcache0" / "latents").iterdir()
                                                    if not p.name.startswith(".")))
    return {"encoder": "zoo:vae (demo-preset size)", "frames": int(sum(f.shape[0] for f in frames)),
            "forward_s": round(best_f, 3), "extract_s": round(best_x, 3),
            "extract_over_forward": round(best_x / best_f, 3), "forward_gflop": round(flops / 1e9, 3),
            "forward_fraction": roofline.fraction("gemm", flops, best_f, one_thread=True),
            "extract_fraction": roofline.fraction("gemm", flops, best_x, one_thread=True)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="demo", choices=["tiny", "demo"], help="demo preset for (a)")
    ap.add_argument("--episodes", type=int, default=24, help="N for (b) and (c)")
    ap.add_argument("--skip-demo", action="store_true", help="skip (a), the slowest part")
    ap.add_argument("--quick", action="store_true", help="4 episodes, (c) only: skips (a) and (b) (CI)")
    a = ap.parse_args()
    if a.quick:
        a.episodes, a.skip_demo = 4, True
    result: dict = {"bench": "study", "limits": roofline.measure(a.quick)}
    print("machine limits:", roofline.describe(result["limits"]), flush=True)
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        x = extract_vs_forward(root, a.episodes)
        print(f"(c) extraction through the cache {x['extract_s']}s vs pure forward {x['forward_s']}s "
              f"({x['frames']} frames): {x['extract_over_forward']}x (goal <= 1.10)", flush=True)
        result["extract"] = x
        if a.quick:
            result["fraction_of_limit"] = min(x["forward_fraction"], x["extract_fraction"])
            print(json.dumps(result))
            return
        r = rss_runs(a.episodes, root)
        print(f"(b) peak RSS {r['maxrss_mb'][0]} MiB at {a.episodes} episodes, {r['maxrss_mb'][1]} MiB at "
              f"{4 * a.episodes}: {r['rss_ratio']}x (goal <= 1.10)", flush=True)
        result["rss"] = r
        if not a.skip_demo:
            w = demo_runs(a.preset, root)
            print(f"(a) wmprobe demo --preset {a.preset}: cold {w['cold_s']}s, warm {w['warm_s']}s: "
                  f"{w['warm_over_cold']} (goal <= 0.05)", flush=True)
            result["demo"] = w
    result["fraction_of_limit"] = min(x["forward_fraction"], x["extract_fraction"])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
