"""Extraction overhead and CPU throughput of pretrained-encoder adapters; the last printed line is one JSON object.

(a) Overhead. For a tiny and a base-size (ViT-B: hidden 768, 12 layers, 12 heads) random-init V-JEPA 2 and
    DINOv2, saved with save_pretrained and loaded through ``load_encoder``:
    - ``extract_s``: ``wmprobe.extract.extract`` over an EpisodeStore on disk through the frame cache
      (``wmprobe.frames_cache``, warm: the resized frames of each episode read back, as for every encoder after
      the first that shares the resize), windowed, normalised, encoded, plus ``StepFeatures.save`` (the .npy
      files, into a new directory each run as the study's cache and ``wmprobe extract`` write: overwriting
      the same files each run made ext4 flush the truncated ones, ~2 ms per file under load);
      ``extract_uncached_s`` the same without the frame cache (read, resize, normalise, encode, save);
    - ``forward_s`` (the reference): the bare transformers model call on the SAME inputs, already
      preprocessed and batched exactly as extraction batches them (V-JEPA 2: clips of ``window`` frames;
      DINOv2: batches of ``batch_size`` frames).
    ``ratio = extract_s / forward_s`` (goal <= 1.10), ``ratio_uncached = extract_uncached_s / forward_s``.
    Each time is the best of ``--repeats`` interleaved runs after a warm-up. ``ratio_cpu``: the same ratio
    in CPU seconds of this process (``time.process_time``, best of the same runs), steadier than wall time
    on a shared machine (time spent waiting for a core is not counted; with ``--threads 1`` it is the work).
    Paired (the figure to read on a shared machine): every repetition runs the forward and the cached
    extraction back to back (their order alternating, so neither always runs on the other's warm caches) and
    ``ratio_paired`` is the median over repetitions of ``extract / forward`` within each pair (``_cpu``: in
    CPU seconds; ``ratio_paired_q``: the quartiles), so a load that comes and goes hits both sides of a pair
    alike and cancels; ``pairs`` is their number (``--repeats``; default 21 for the tiny models, 3 for ViT-B).
    The summary's ``ratio_paired_by_size`` is the largest paired ratio per model size, ``load_avg`` the
    1/5/15-minute load averages when the bench started and ended.
    The cached extraction reads the frame cache's normalised entries (float32, mapped zero-copy: the default on
    CPU); ``ratio_paired_cpu_resized_cache`` (quartiles ``_q``; summary ``ratio_paired_by_size_resized_cache``)
    pairs the forward with the same extraction through the resized uint8 entries only
    (``frames_normalised=False``: read, then normalise), timed in the same repetitions (tiny models only: null
    for ViT-B, where normalising is < 1% of the forward and a second extraction per pair adds 20% to the
    bench); ``frames_cache_mb`` the disk each kind of entry takes for the bench's episodes.
    Fraction of the machine's limit (``bench/roofline.py``): the forward is FLOP-bound; its FLOPs are counted
    with ``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convolutions, attention: 2 per multiply-add)
    over one pass of the same batches; ``forward_fraction = FLOPs / GEMM peak / forward_s`` and
    ``extract_fraction`` the same over ``extract_s``. ``fraction_of_limit`` is the lowest ``extract_fraction``.
    Also ``pipeline_s``: preprocessing (resize, crop, normalise) plus the same forward, on frames already in
    memory: ``extract_s / pipeline_s`` is what wmprobe adds around the model and its processor (reading the
    store, windowing, pooling, writing), ``pipeline_s / forward_s`` what the preprocessing costs.
(b) Throughput of the ViT-B models on CPU, fp32 vs bf16 autocast: V-JEPA 2 clips/s (16-frame clips) and
    DINOv2 frames/s, on the model call alone.

Usage: ``python bench/extract.py [--quick] [--repeats N] [--threads N] [--sizes tiny,base] [--breakdown]``
(``--repeats N``: N pairs for the tiny models, N - 1 for ViT-B; ``--breakdown``: see ``breakdown``, key
``breakdown`` in the summary)
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import tempfile
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import roofline  # noqa: E402
from wmprobe.data.store import EpisodeStore, from_episodes
from wmprobe.encoders.registry import load_encoder
from wmprobe.extract import encoder_window, extract, window_plan

TINY = dict(hidden_size=64, num_attention_heads=2, num_hidden_layers=2, intermediate_size=128)
BASE = dict(hidden_size=768, num_attention_heads=12, num_hidden_layers=12, intermediate_size=3072)


def make_store(path: Path, episodes: int, steps: int, size: int) -> EpisodeStore:
    rng = np.random.default_rng(0)
    eps = [(rng.integers(0, 256, (steps, size, size, 3), dtype=np.uint8),
            rng.normal(size=(steps, 7)).astype(np.float32)) for _ in range(episodes)]
    store = from_episodes(eps, list(range(episodes)), fps=10, action_names=list("xyzrpqg"),
                          action_groups={"translation": [0, 1, 2], "rotation": [3, 4, 5], "gripper": [6]},
                          task_names=[f"t{i}" for i in range(episodes)], source={"kind": "bench"}, name="bench")
    store.save(path)
    return EpisodeStore.load(path)


def save_model(kind: str, size: str, img: int, root: Path) -> Path:
    import transformers as T
    torch.manual_seed(0)
    dims = TINY if size == "tiny" else BASE
    if kind == "vjepa2":
        cfg = T.VJEPA2Config(crop_size=img, patch_size=16, frames_per_clip=16, pred_hidden_size=64,
                             pred_num_attention_heads=2, pred_num_hidden_layers=1,
                             mlp_ratio=dims["intermediate_size"] / dims["hidden_size"],
                             **{k: v for k, v in dims.items() if k != "intermediate_size"})
        model = T.VJEPA2Model(cfg)
    else:
        model = T.Dinov2Model(T.Dinov2Config(image_size=img, patch_size=14, mlp_ratio=4,
                                             **{k: v for k, v in dims.items() if k != "intermediate_size"}))
    path = root / f"{kind}-{size}"
    model.save_pretrained(path, safe_serialization=True)
    return path


def model_inputs(enc, store: EpisodeStore, batch_size: int, raw: list | None = None) -> list[torch.Tensor]:
    """The preprocessed batches extraction feeds the model: clips (1, W, 3, h, w) or frames (M, 3, h, w);
    ``raw`` (if given) receives the same batches before preprocessing, ``(M, T, H, W, 3) uint8``."""
    window, fps, out = encoder_window(enc), enc.spec.frames_per_step, []
    raw = [] if raw is None else raw
    with torch.inference_mode():
        for e in range(store.n_episodes):
            frames = torch.from_numpy(np.array(store.frames[store.episode_slice(e)]))
            for w0, n in window_plan(len(frames), fps, window):
                if window is None:
                    for b0 in range(0, n, batch_size):
                        raw.append(frames[w0 + b0:w0 + min(n, b0 + batch_size)][:, None])
                        out.append(enc.preprocess(raw[-1])[:, 0])
                else:
                    clip = frames[w0:w0 + n]
                    clip = torch.cat([clip, clip[-1:].expand(window - n, *clip.shape[1:])]) if n < window else clip
                    raw.append(clip[None])
                    out.append(enc.preprocess(raw[-1]))
    return out


def interleaved(fns: list, repeats: int) -> tuple[list[list[float]], list[list[float]]]:
    """Wall and CPU seconds (``time.process_time``) of ``repeats`` runs of each function after a warm-up, the
    functions run one after another in each repetition, in reverse order every other one (so neighbours stay
    neighbours and neither of two always runs first); per function, one list per measure."""
    for fn in fns:
        fn()  # warm-up
    times, cpus = [[] for _ in fns], [[] for _ in fns]
    for rep in range(repeats):
        order = range(len(fns)) if rep % 2 == 0 else reversed(range(len(fns)))
        for i in order:
            t0, c0 = time.perf_counter(), time.process_time()
            fns[i]()
            times[i].append(time.perf_counter() - t0)
            cpus[i].append(time.process_time() - c0)
    return times, cpus


def best_of(fns: list, repeats: int, cpu: list | None = None) -> list[float]:
    """Best-of-``repeats`` seconds for each function, runs interleaved (so machine load hits both alike);
    ``cpu`` (if given) receives each function's best CPU seconds of this process (``time.process_time``)."""
    times, cpus = interleaved(fns, repeats)
    if cpu is not None:
        cpu.extend(min(cs) for cs in cpus)
    return [min(ts) for ts in times]


def paired_ratio(num: list[float], den: list[float]) -> tuple[float, float, float]:
    """Median and quartiles over repetitions of ``num[i] / den[i]`` (two functions timed back to back)."""
    q1, med, q3 = np.percentile([n / d for n, d in zip(num, den) if d > 0], [25, 50, 75])
    return round(float(med), 3), round(float(q1), 3), round(float(q3), 3)


def forward_only(enc, inputs: list[torch.Tensor], bf16: bool = False) -> None:
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for x in inputs:
            enc._call(x)


def overhead(kind: str, size: str, img: int, store: EpisodeStore, root: Path, repeats: int, batch: int,
             resized: bool = True) -> dict:
    enc = load_encoder(f"{kind}:{save_model(kind, size, img, root)}", device="cpu", batch_size=batch)
    raw: list[torch.Tensor] = []
    inputs = model_inputs(enc, store, batch, raw)
    out_dir = root / f"feats-{kind}-{size}"

    per_frame = encoder_window(enc) is None

    def pipeline() -> None:
        with torch.inference_mode():
            for r in raw:
                x = enc.preprocess(r)
                enc._call(x[:, 0] if per_frame else x)
    runs = itertools.count()

    def extract_save(**cache) -> None:   # into a new shard directory, as the study's cache and the CLI write
        extract(enc, store, layers=["out"], batch_size=batch, **cache).save(out_dir / str(next(runs)))
    # the forward and the cached extraction are neighbours in either order (see ``interleaved``): the pairs
    times, cpus = interleaved([lambda: forward_only(enc, inputs), lambda: extract_save(frames_cache=root / "frames"),
                               pipeline, extract_save,
                               *([lambda: extract_save(frames_cache=root / "frames", frames_normalised=False)]
                                 if resized else [])], repeats)
    forward_s, extract_s, pipeline_s, uncached_s = (min(t) for t in times[:4])
    cpu = [min(c) for c in (cpus[0], cpus[2], cpus[1], cpus[3])]   # forward, pipeline, extract, uncached
    paired, paired_cpu = paired_ratio(times[1], times[0]), paired_ratio(cpus[1], cpus[0])
    resized_cpu = paired_ratio(cpus[4], cpus[0]) if resized else (None, None, None)
    shutil.rmtree(out_dir, ignore_errors=True)
    from wmprobe.frames_cache import FramesCache
    fcache = FramesCache(root / "frames", enc, store)
    mb = lambda key: sum(f.stat().st_size for e in range(store.n_episodes)  # noqa: E731
                         for f in (root / "frames" / key(e)).glob("*.npy")) / 2**20
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc:
        forward_only(enc, inputs)
    flops = fc.get_total_flops()
    return {"model": f"{kind}-{size}", "input": img, "batches": len(inputs), "forward_s": round(forward_s, 4),
            "pipeline_s": round(pipeline_s, 4), "extract_s": round(extract_s, 4),
            "extract_uncached_s": round(uncached_s, 4), "ratio": round(extract_s / forward_s, 3),
            "ratio_uncached": round(uncached_s / forward_s, 3), "ratio_cpu": round(cpu[2] / cpu[0], 3),
            "preprocess_ratio": round(pipeline_s / forward_s, 3),
            "wmprobe_ratio": round(extract_s / pipeline_s, 3), "forward_gflop": round(flops / 1e9, 3),
            "forward_fraction": roofline.fraction("gemm", flops, forward_s),
            "extract_fraction": roofline.fraction("gemm", flops, extract_s),
            "size": size, "pairs": repeats, "ratio_paired": paired[0], "ratio_paired_q": list(paired[1:]),
            "ratio_paired_cpu": paired_cpu[0], "ratio_paired_cpu_q": list(paired_cpu[1:]),
            "fraction_of_limit": roofline.fraction("gemm", flops, extract_s),
            "ratio_paired_cpu_resized_cache": resized_cpu[0], "ratio_paired_cpu_resized_cache_q": list(resized_cpu[1:]),
            "frames_cache_mb": {"resized": round(mb(fcache.key), 3), "normalised": round(mb(fcache.normalised_key), 3)}}


def describe(row: dict) -> str:
    """One line per model: the paired ratio against the goal and the fractions of the GEMM peak."""
    q, qc = row["ratio_paired_q"], row["ratio_paired_cpu_q"]
    return (f"{row['model']}: extract / forward {row['ratio_paired']:.3f}x wall (quartiles {q[0]:.3f}-{q[1]:.3f}), "
            f"{row['ratio_paired_cpu']:.3f}x CPU ({qc[0]:.3f}-{qc[1]:.3f}), median of {row['pairs']} interleaved "
            f"pairs (goal <= 1.10: {'yes' if row['ratio_paired_cpu'] <= 1.10 else 'no'}); fraction of the GEMM "
            f"peak: forward {row['forward_fraction']}, extraction {row['extract_fraction']} "
            f"({row['forward_gflop']} GFLOP per pass)"
            + (f"; through resized frames only (frames_normalised=False) {row['ratio_paired_cpu_resized_cache']:.3f}x "
               "CPU" if row["ratio_paired_cpu_resized_cache"] is not None else "")
            + f"; cache {row['frames_cache_mb']['resized']} MB resized, "
            f"{row['frames_cache_mb']['normalised']} MB normalised")


def breakdown(kind: str, size: str, store: EpisodeStore, root: Path, repeats: int, batch: int) -> dict:
    """``--breakdown``: where extraction's time beside the forward goes, as paired CPU ratios against the forward
    (median of ``repeats`` back-to-back repetitions, order alternating) of a ladder of ever fuller loops over
    the same cached episodes: ``prenormalised`` (the model calls of each window, on views of episodes normalised
    beforehand), ``read_normalise_call`` (+ reading each episode's resized frames from the cache file into one
    buffer and normalising it, as extraction with ``frames_normalised=False`` does), ``read_normalise_encode``
    (the adapter's ``encode`` instead of the bare model call, plus pooling), ``mapped_call`` / ``mapped_encode``
    (the same two with each episode's normalised entry mapped instead, as extraction does by default),
    ``extract`` (``wmprobe.extract.extract``), ``extract_save`` (+ the shard written) and
    ``extract_save_resized_cache`` (the same through the resized entries only); and ``pieces_ms``: CPU
    milliseconds of one pass over the episodes of the cache read, of the normalisation and of mapping the
    normalised entries (``map_normalised``), each alone (warm: what they cost without the forward between)."""
    from wmprobe.extract import _EpisodeNormaliser
    from wmprobe.frames_cache import FramesCache
    enc = load_encoder(f"{kind}:{root / f'{kind}-{size}'}", device="cpu", batch_size=batch)
    inputs, cache_dir = model_inputs(enc, store, batch), root / "frames"
    extract(enc, store, layers=["out"], batch_size=batch, frames_cache=cache_dir)
    cache, norm = FramesCache(cache_dir, enc, store), _EpisodeNormaliser(enc)
    resized = [cache.episode(e, lambda: None) for e in range(store.n_episodes)]
    files = [next((cache_dir / cache.key(e)).glob("frames*.npy")) for e in range(store.n_episodes)]
    nhwc = [f.name == "frames_nhwc.npy" for f in files]
    window = encoder_window(enc)
    buf = np.empty(resized[0].numel(), np.uint8)

    def windows(x: torch.Tensor) -> list[torch.Tensor]:
        if window is None:
            return [x[b:b + batch] for b in range(0, len(x), batch)]
        return [x[None, w:w + window] for w in range(0, len(x) - window + 1, window)]

    def read(i: int) -> torch.Tensor:
        with open(files[i], "rb", buffering=0) as f:
            f.seek(os.path.getsize(files[i]) - buf.nbytes)
            f.readinto(memoryview(buf))
        t, c, h, w = resized[i].shape
        x = torch.from_numpy(buf)
        return x.view(t, h, w, c).permute(0, 3, 1, 2) if nhwc[i] else x.view(t, c, h, w)
    normed = [norm(r).clone() for r in resized]

    def prenormalised() -> None:
        with torch.inference_mode():
            for x in normed:
                for w in windows(x):
                    enc._call(w)

    def loop(call: bool) -> None:
        with torch.inference_mode():
            for i in range(len(files)):
                for w in windows(norm(read(i))):
                    if call:
                        enc._call(w)
                    else:
                        enc.encode_normalised(w if window else w[:, None], ["out"]).tokens["out"].mean(dim=2)
    def mapped(call: bool) -> None:    # the normalised entries, mapped (what extraction reads by default)
        with torch.inference_mode():
            for e in range(len(files)):
                for w in windows(cache.normalised(e, lambda: None, norm)):
                    if call:
                        enc._call(w)
                    else:
                        enc.encode_normalised(w if window else w[:, None], ["out"]).tokens["out"].mean(dim=2)
    runs = itertools.count()
    fns = [lambda: forward_only(enc, inputs), prenormalised, lambda: loop(True), lambda: loop(False),
           lambda: extract(enc, store, layers=["out"], batch_size=batch, frames_cache=cache_dir),
           lambda: extract(enc, store, layers=["out"], batch_size=batch, frames_cache=cache_dir)
           .save(root / f"bd-{kind}" / str(next(runs))), lambda: mapped(True), lambda: mapped(False),
           lambda: extract(enc, store, layers=["out"], batch_size=batch, frames_cache=cache_dir,
                           frames_normalised=False).save(root / f"bd-{kind}" / str(next(runs)))]
    _, cpus = interleaved(fns, repeats)
    shutil.rmtree(root / f"bd-{kind}", ignore_errors=True)
    names = ["prenormalised", "read_normalise_call", "read_normalise_encode", "extract", "extract_save",
             "mapped_call", "mapped_encode", "extract_save_resized_cache"]
    out = {n: paired_ratio(c, cpus[0])[0] for n, c in zip(names, cpus[1:])}
    _, pieces = interleaved([lambda: [read(i) for i in range(len(files))], lambda: [norm(r) for r in resized],
                             lambda: [cache.normalised(e, lambda: None, norm) for e in range(len(files))]],
                            max(repeats, 21))
    return {"model": f"{kind}-{size}", "forward_cpu_ms": round(float(np.median(cpus[0])) * 1e3, 2),
            "paired_cpu_ratio": out, "pieces_ms": {"cache_read": round(float(np.median(pieces[0])) * 1e3, 3),
                                                   "normalise": round(float(np.median(pieces[1])) * 1e3, 3),
                                                   "map_normalised": round(float(np.median(pieces[2])) * 1e3, 3)}}


def throughput(kind: str, img: int, root: Path, n: int, repeats: int) -> dict:
    enc = load_encoder(f"{kind}:{root / f'{kind}-base'}", device="cpu")
    rng = np.random.default_rng(1)
    if kind == "vjepa2":
        x = enc.preprocess(torch.from_numpy(rng.integers(0, 256, (1, 16, img, img, 3), dtype=np.uint8)))
        inputs, unit = [x] * n, "clips_per_s"
    else:
        x = enc.preprocess(torch.from_numpy(rng.integers(0, 256, (8, 1, img, img, 3), dtype=np.uint8)))[:, 0]
        inputs, unit, n = [x] * n, "frames_per_s", n * 8
    fp32, bf16 = best_of([lambda: forward_only(enc, inputs), lambda: forward_only(enc, inputs, bf16=True)], repeats)
    return {"model": f"{kind}-base", "input": img, unit + "_fp32": round(n / fp32, 3),
            unit + "_bf16": round(n / bf16, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller store and inputs (~1 min on 2 cores)")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--sizes", default="tiny,base", help="model sizes to time: tiny, base or both (default)")
    ap.add_argument("--breakdown", action="store_true",
                    help="also where the tiny models' extraction time beside the forward goes (paired ladder)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    load_start = [round(v, 2) for v in os.getloadavg()]
    tiny_repeats = a.repeats or 21               # a tiny model's repetition takes ~0.1 s: enough pairs for a median
    base_repeats = max(1, a.repeats - 1) if a.repeats else 3
    lim = roofline.measure(a.quick)
    print("machine limits:", roofline.describe(lim), flush=True)
    # input sides: V-JEPA 2 patch 16, DINOv2 patch 14 (ViT-B at 224 / 224 in full mode, 112 / 112 quick)
    base_side = {"vjepa2": 112, "dinov2": 112} if a.quick else {"vjepa2": 224, "dinov2": 224}
    tiny_side = {"vjepa2": 64, "dinov2": 56}
    rows, thr, parts = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = make_store(root / "store", 4, 32, 128)       # 4 episodes x 32 frames of 128x128
        base_store = store.subset([0] if a.quick else [0, 1])
        sizes = {s.strip() for s in a.sizes.split(",")}
        if not sizes <= {"tiny", "base"} or not sizes:
            ap.error(f"--sizes: tiny, base or tiny,base; got {a.sizes!r}")
        for kind in ("vjepa2", "dinov2"):
            if "tiny" in sizes:
                rows.append(overhead(kind, "tiny", tiny_side[kind], store, root, tiny_repeats, 32))
                print(json.dumps(rows[-1]), flush=True)
                print(describe(rows[-1]), flush=True)
                if a.breakdown:
                    parts.append(breakdown(kind, "tiny", store, root, tiny_repeats, 32))
                    print("breakdown (paired CPU ratios against the forward):", json.dumps(parts[-1]), flush=True)
            if "base" in sizes:
                rows.append(overhead(kind, "base", base_side[kind], base_store, root, base_repeats, 16,
                                     resized=False))      # a second ViT-B extraction per pair: +20% bench time
                print(json.dumps(rows[-1]), flush=True)
                print(describe(rows[-1]), flush=True)
        for kind in ("vjepa2", "dinov2") if "base" in sizes else ():
            thr.append(throughput(kind, base_side[kind], root, 1, 1))
            print(json.dumps(thr[-1]), flush=True)
    summary = {"bench": "extract", "reference": "bare transformers model forward on the same preprocessed batches",
               "quick": a.quick, "threads": torch.get_num_threads(), "overhead": rows, "throughput_cpu": thr,
               "max_ratio": max(r["ratio"] for r in rows), "max_ratio_cpu": max(r["ratio_cpu"] for r in rows),
               "goal_ratio": 1.10,
               "max_wmprobe_ratio": max(r["wmprobe_ratio"] for r in rows),
               "max_ratio_uncached": max(r["ratio_uncached"] for r in rows),
               "fraction_of_limit": min(r["extract_fraction"] for r in rows), "limits": lim,
               "max_ratio_paired": max(r["ratio_paired"] for r in rows),
               "max_ratio_paired_cpu": max(r["ratio_paired_cpu"] for r in rows),
               "ratio_paired_by_size": {sz: max(r["ratio_paired_cpu"] for r in rows if r["size"] == sz)
                                        for sz in sorted({r["size"] for r in rows})},
               "ratio_paired_by_size_wall": {sz: max(r["ratio_paired"] for r in rows if r["size"] == sz)
                                             for sz in sorted({r["size"] for r in rows})},
               "load_avg": {"start": load_start, "end": [round(v, 2) for v in os.getloadavg()]},
               "ratio_paired_by_size_resized_cache": {
                   sz: max(r["ratio_paired_cpu_resized_cache"] for r in rows if r["size"] == sz)
                   for sz in sorted({r["size"] for r in rows if r["ratio_paired_cpu_resized_cache"] is not None})}}
    if parts:
        summary["breakdown"] = parts
    for sz, r in summary["ratio_paired_by_size"].items():
        print(f"{sz} models: largest paired extract / forward {r:.3f}x CPU, "
              f"{summary['ratio_paired_by_size_wall'][sz]:.3f}x wall (goal <= 1.10)", flush=True)
    print(f"load average (1, 5, 15 min): {load_start} at the start, {summary['load_avg']['end']} at the end",
          flush=True)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
