"""Zoo training with glibc's default allocator settings vs ``keep_freed_memory`` (src/wmprobe/_malloc.py), as the
study runs it: two worker processes, one torch thread each, each training one family side by side.

    .venv/bin/python bench/allocator.py [--preset compare] [--families vae,diffusion] [--steps 150] [--repeats 2]
                                        [--quick] [--cache DIR]

Reference: the same two trainings with ``WMPROBE_MALLOC=system`` (the allocator untouched), interleaved with
the kept-heap runs (system, kept, system, kept, ...) so that a drift in the machine's load hits both alike.
Printed per run: the pair's wall seconds, both processes' kernel (sys) seconds and minor page faults per step.
The last line is JSON: ``speedup`` = median system wall / median kept wall, ``faults_per_step`` and
``sys_share`` (kernel time / CPU time) for each mode, and ``same_result`` (both modes' final losses equal: the
allocator changes no number).

Bound: the kept heap removes work instead of doing it faster, so the limit is the time with no kernel time at
all: ``fraction_of_limit`` = (kept CPU - kept sys) / kept CPU, the share of the kept runs' CPU time spent in
user space (1.0 = no page-fault or other kernel time left).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from wmprobe.data.sim import cached_generate

WORKER = """
import json, resource, sys, tempfile
from wmprobe._malloc import keep_freed_memory
from wmprobe import zoo
from wmprobe.data.store import open_cached
applied = keep_freed_memory()
fam, preset, steps, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
store = open_cached(path)
r0 = resource.getrusage(resource.RUSAGE_SELF)
with tempfile.TemporaryDirectory() as d:
    ck = zoo.train(fam, store, train_episodes=list(range(store.n_episodes)), preset=preset, id_weight=1.0,
                   cache_dir=d, progress=False, threads=1, overrides={"steps": steps, "warmup": 10})
    loss = json.loads((ck / "recipe.json").read_text())["final_loss"]
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"applied": applied, "loss": loss, "user": r1.ru_utime - r0.ru_utime,
                  "sys": r1.ru_stime - r0.ru_stime, "faults": r1.ru_minflt - r0.ru_minflt}))
"""


def pair(mode: str, families: list[str], preset: str, steps: int, store_path: str) -> dict:
    """Train ``families`` in one process each, all at once; the pair's wall seconds and each process's figures."""
    env = {**os.environ, "WMPROBE_MALLOC": "system" if mode == "system" else ""}
    t = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, f, preset, str(steps), store_path], env=env,
                              stdout=subprocess.PIPE, text=True) for f in families]
    outs = [p.communicate()[0] for p in procs]
    wall = time.perf_counter() - t
    if any(p.returncode for p in procs):
        raise SystemExit(f"a training process failed ({mode}): exit codes {[p.returncode for p in procs]}")
    res = [json.loads(o.strip().splitlines()[-1]) for o in outs]
    if mode == "kept" and not all(r["applied"] for r in res):
        raise SystemExit("keep_freed_memory() did not apply (not glibc?): nothing to compare")
    return {"mode": mode, "wall": wall, "procs": res}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="compare")
    ap.add_argument("--families", default="vae,diffusion")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--episodes", type=int, default=48)
    ap.add_argument("--cache", default=None)
    ap.add_argument("--quick", action="store_true", help="20 steps, one repeat (CI)")
    a = ap.parse_args()
    if a.quick:
        a.steps, a.repeats, a.episodes = 20, 1, 12
    fams = a.families.split(",")
    root = Path(a.cache or os.environ.get("WMPROBE_CACHE") or Path.home() / ".cache" / "wmprobe").expanduser()
    store = cached_generate("dynamic", root / "data", episodes=a.episodes, steps=40, size=64, seed=0,
                            progress=False)
    runs = [pair(m, fams, a.preset, a.steps, str(store.path)) for _ in range(a.repeats) for m in ("system", "kept")]
    summary = {}
    for mode in ("system", "kept"):
        rs = [r for r in runs if r["mode"] == mode]
        procs = [p for r in rs for p in r["procs"]]
        cpu = sum(p["user"] + p["sys"] for p in procs)
        summary[mode] = {"wall_median": round(statistics.median(r["wall"] for r in rs), 2),
                         "walls": [round(r["wall"], 2) for r in rs],
                         "faults_per_step": round(sum(p["faults"] for p in procs) / (len(procs) * a.steps)),
                         "sys_share": round(sum(p["sys"] for p in procs) / cpu, 4),
                         "losses": sorted({p["loss"] for p in procs})}
        print(f"{mode:6s}: wall {summary[mode]['walls']} s (median {summary[mode]['wall_median']}), "
              f"{summary[mode]['faults_per_step']} page faults per step per process, kernel "
              f"{100 * summary[mode]['sys_share']:.1f} % of CPU time", flush=True)
    speedup = summary["system"]["wall_median"] / summary["kept"]["wall_median"]
    same = summary["system"]["losses"] == summary["kept"]["losses"]
    print(f"kept heap vs system allocator: {speedup:.2f}x ({'+'.join(fams)}, preset {a.preset}, {a.steps} steps, "
          f"2 processes x 1 thread); same final losses: {same}")
    print(json.dumps({"bench": "allocator", "preset": a.preset, "families": fams, "steps": a.steps,
                      "repeats": a.repeats, "speedup": round(speedup, 3), "same_result": same,
                      "fraction_of_limit": round(1 - summary["kept"]["sys_share"], 4), **summary}))


if __name__ == "__main__":
    main()
