"""Readers stream: peak RSS of `wmprobe data import` when the source dataset grows 4x, and import frames/s.

For each format, a source of N and of 4N episodes is written (LeRobot v3.0 with mp4 video, through
``wmprobe data export``; CALVIN: one npz per step + ep_start_end_ids.npy; LIBERO: robomimic-style hdf5 with
images stored upside down), then imported into an EpisodeStore by ``import_dataset`` in a fresh process, whose
peak RSS (``VmHWM``, Linux) is the figure. ``rss_ratio`` = peak RSS at 4N / peak RSS at N (reference: the
N-episode import; goal <= 1.10: memory bounded, not growing with the dataset). A reader that held every frame
would add the raw frames (``raw_mb`` in the output) to its peak.

Fraction of the machine's limit (``bench/roofline.py``): an import must at least write every raw frame
once (``H x W x 3`` bytes) and read it back from its decoder, so its floor is the raw frame bytes at the
memory copy bandwidth; ``fraction = import raw MB/s / copy bandwidth`` (4N import). The imports are bound by
their decoders instead (mp4 video, zlib-compressed npz, hdf5), which the fraction makes visible; the lowest
over the formats is ``fraction_of_limit``.

Usage: ``python bench/readers.py [--episodes N] [--steps T] [--size S] [--quick]``; the last line is one JSON
object.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import roofline  # noqa: E402

# peak RSS from /proc/self/status VmHWM: ru_maxrss of a child carries its parent's high-water mark over fork,
# and the parent here has just built the source dataset in memory
CHILD = r"""
import json, re, sys, time
from wmprobe.data.formats import import_dataset
t0 = time.perf_counter()
dest = import_dataset(sys.argv[1], sys.argv[2], format=sys.argv[3], progress=False)
seconds = time.perf_counter() - t0
hwm = int(re.search(r"VmHWM:\s+(\d+) kB", open("/proc/self/status").read()).group(1))
print(json.dumps({"maxrss_mb": hwm / 1024, "seconds": seconds}))
"""


def episodes(n: int, steps: int, size: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Smooth moving images (so the video codec sees ordinary content) and 7-dim actions."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for _ in range(n):
        f = rng.uniform(1, 3, 3)
        frames = np.stack([np.stack([127 + 100 * np.sin(2 * np.pi * (f[c] * xx + 0.05 * t + c / 3) + yy)
                                     for c in range(3)], -1) for t in range(steps)]).astype(np.uint8)
        out.append((frames, rng.normal(size=(steps, 7)).astype(np.float32)))
    return out


def write_lerobot(root: Path, eps) -> Path:
    from wmprobe.data.formats import export_lerobot
    from wmprobe.data.store import from_episodes
    store = from_episodes(eps, [i % 4 for i in range(len(eps))], fps=10, action_names=list("xyzrpqg"),
                          action_groups={"translation": [0, 1, 2], "rotation": [3, 4, 5], "gripper": [6]},
                          task_names=[f"task {i}" for i in range(4)], source={"kind": "bench"}, name="bench")
    return export_lerobot(store, root, video_files_size_in_mb=20)


def write_calvin(root: Path, eps) -> Path:
    d = root / "training"
    d.mkdir(parents=True)
    ids, fid = [], 0
    for frames, acts in eps:
        start = fid
        for t in range(len(acts)):
            np.savez_compressed(d / f"episode_{fid:07d}.npz", rgb_static=frames[t], rel_actions=acts[t],
                                actions=acts[t])
            fid += 1
        ids.append((start, fid - 1))
    np.save(d / "ep_start_end_ids.npy", np.array(ids, dtype=np.int64))
    return root


def write_libero(root: Path, eps) -> Path:
    import h5py
    root.mkdir(parents=True)
    with h5py.File(root / "KITCHEN_SCENE1_bench_task_demo.hdf5", "w") as f:
        g = f.create_group("data")
        g.attrs["problem_info"] = json.dumps({"language_instruction": "bench task"})
        for i, (frames, acts) in enumerate(eps):
            dg = g.create_group(f"demo_{i}")
            dg.attrs["num_samples"] = len(acts)
            dg.create_dataset("actions", data=acts.astype(np.float64))
            dg.create_dataset("obs/agentview_rgb", data=frames[:, ::-1, ::-1])
    return root


WRITERS = {"lerobot": write_lerobot, "calvin": write_calvin, "libero": write_libero}


def run_import(src: Path, dest: Path, fmt: str) -> dict:
    r = subprocess.run([sys.executable, "-c", CHILD, str(src), str(dest), fmt], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"import of {src} failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--episodes", type=int, default=12, help="N (the larger source has 4N)")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--quick", action="store_true", help="2 episodes of 10 steps at 32 px (CI)")
    a = ap.parse_args()
    if a.quick:
        a.episodes, a.steps, a.size = 2, 10, 32
    lim = roofline.measure(a.quick)
    print("machine limits:", roofline.describe(lim), flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for fmt, write in WRITERS.items():
            row: dict = {"format": fmt}
            for label, n in (("n", a.episodes), ("4n", 4 * a.episodes)):
                t0 = time.perf_counter()
                src = write(root / f"{fmt}-{n}", episodes(n, a.steps, a.size))
                write_s = time.perf_counter() - t0
                got = run_import(src, root / f"{fmt}-{n}-store", fmt)
                frames = n * a.steps
                row[label] = {"episodes": n, "frames": frames, "raw_mb": round(frames * a.size ** 2 * 3 / 2 ** 20, 1),
                              "write_s": round(write_s, 2), "maxrss_mb": round(got["maxrss_mb"], 1),
                              "import_frames_per_s": round(frames / got["seconds"], 1)}
            row["rss_ratio"] = round(row["4n"]["maxrss_mb"] / row["n"]["maxrss_mb"], 3)
            raw_bytes_s = row["4n"]["import_frames_per_s"] * a.size * a.size * 3
            row["fraction_of_limit"] = roofline.fraction("copy", raw_bytes_s, 1.0)
            print(f"{fmt:8s} peak RSS {row['n']['maxrss_mb']:7.1f} MiB at {a.episodes} episodes, "
                  f"{row['4n']['maxrss_mb']:7.1f} MiB at {4 * a.episodes} (raw frames {row['n']['raw_mb']} -> "
                  f"{row['4n']['raw_mb']} MiB): {row['rss_ratio']:.3f}x (goal <= 1.10); import "
                  f"{row['4n']['import_frames_per_s']:.0f} frames/s", flush=True)
            rows.append(row)
    print(json.dumps({"bench": "readers", "reference": "the same import of N episodes", "goal_rss_ratio": 1.10,
                      "steps": a.steps, "size": a.size, "formats": rows,
                      "max_rss_ratio": max(r["rss_ratio"] for r in rows),
                      "fraction_of_limit": min(r["fraction_of_limit"] for r in rows), "limits": lim}))


if __name__ == "__main__":
    main()
