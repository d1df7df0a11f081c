"""Corruption throughput: wmprobe's batched torch path vs imagecorruptions 1.1.2 (per image), 128 x 128 images.

The batch path runs with ``--workers`` clip-parallel threads (default: every core; the issue's "2 cores") and
with one thread; the ratio (``ratio``, ``geomean_ratio``) is the multi-thread path against the single-threaded
reference, and ``geomean_ratio_1thread`` the one-thread path against it.

For every ImageNet-C type (and the paper's noise:0.15 / blur:11) at one severity: images/s of
``Corruption.apply_clips`` on a (B, T, 128, 128, 3) uint8 batch (best of ``--repeats``) and of
``imagecorruptions.corrupt`` looped over images. The reference crashes on glass_blur and fog with current
numpy / scikit-image; the bench runs it there with two shims (``np.float_`` alias, ``multichannel`` ->
``channel_axis``) and marks those rows "shimmed". The paper's noise:0.15 / blur:11 are timed against
gaussian_noise / gaussian_blur of the reference (the closest operations it has).

Usage: python bench/corrupt.py [--severity 3] [--images 64] [--ref-images 8] [--repeats 3]
The LAST printed line is one JSON object: per-type images/s, the ratios, and their geometric mean.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from wmprobe.data.corrupt import CORRUPTIONS, parse_corruption

REF_NAME = {"noise": "gaussian_noise", "blur": "gaussian_blur"}


def reference():
    """``imagecorruptions`` with shims for numpy 2 / scikit-image >= 0.19, or None when it is not installed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if not hasattr(np, "float_"):
                np.float_ = np.float64                                         # shim 1 (fog)
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            from helpers import import_imagecorruptions                        # shim 3 (pkg_resources)
            imagecorruptions = import_imagecorruptions()
            import imagecorruptions.corruptions as C
            import skimage.filters
    except Exception as exc:                                                    # noqa: BLE001
        print(f"imagecorruptions unavailable ({exc}); reporting wmprobe's throughput only")
        return None
    g = skimage.filters.gaussian
    C.gaussian = lambda *a, multichannel=None, **k: g(*a, channel_axis=-1 if multichannel else None, **k)  # shim 2
    return imagecorruptions


def images(n: int, size: int = 128, seed: int = 0) -> np.ndarray:
    r = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for _ in range(n):
        img = np.stack([0.4 + 0.3 * np.sin(2 * np.pi * (r.uniform(.5, 3) * xx + r.uniform(.5, 3) * yy)) for _ in
                        range(3)], -1) + r.normal(0, 0.03, (size, size, 3))
        out.append(np.clip(img * 255, 0, 255).astype(np.uint8))
    return np.stack(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--severity", type=int, default=3)
    ap.add_argument("--images", type=int, default=64, help="images in wmprobe's batch (8 frames per clip)")
    ap.add_argument("--ref-images", type=int, default=8, help="images looped through imagecorruptions")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="clip-parallel threads of the batch path (default: every core; 1-thread figures too)")
    a = ap.parse_args()
    ic = reference()
    x = images(a.images)
    clips = torch.from_numpy(x).view(-1, 8, *x.shape[1:]) if a.images % 8 == 0 else torch.from_numpy(x)[:, None]
    seeds = list(range(clips.shape[0]))
    names = [n for n in CORRUPTIONS if n not in ("clean", "noise", "blur")]
    specs = ["noise:0.15", "blur:11"] + [f"{n}:{a.severity}" for n in names]
    per_type, ratios = {}, []
    ratios_1 = []
    print(f"{'corruption':22s} {'1 thread img/s':>14s} {f'{a.workers} threads img/s':>16s} "
          f"{'reference img/s':>16s} {'ratio':>8s}")
    for spec in specs:
        c = parse_corruption(spec)
        c.apply_clips(clips[:1], seeds[:1])                                    # warm-up
        best = {1: math.inf, a.workers: math.inf}
        for _ in range(a.repeats):
            for w in best:
                t0 = time.perf_counter()
                c.apply_clips(clips, seeds, workers=w)
                best[w] = min(best[w], time.perf_counter() - t0)
        ours, ours_1 = a.images / best[a.workers], a.images / best[1]
        row = {"wmprobe_ips": round(ours, 1), "wmprobe_1thread_ips": round(ours_1, 1)}
        if ic is not None:
            name = REF_NAME.get(c.name, c.name)
            sev = a.severity if c.name in REF_NAME else c.severity
            np.random.seed(0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                for im in x[:a.ref_images]:
                    ic.corrupt(im, sev, name)
                ref = a.ref_images / (time.perf_counter() - t0)
            row.update(reference_ips=round(ref, 1), ratio=round(ours / ref, 2), reference=f"{name}:{sev}",
                       shimmed=name in ("glass_blur", "fog", "gaussian_blur"))
            ratios.append(ours / ref)
            ratios_1.append(ours_1 / ref)
        per_type[spec] = row
        print(f"{spec:22s} {ours_1:14.1f} {ours:16.1f} {row.get('reference_ips', float('nan')):16.1f} "
              f"{row.get('ratio', float('nan')):8.2f}")
    geo = float(np.exp(np.mean(np.log(ratios)))) if ratios else None
    geo_1 = float(np.exp(np.mean(np.log(ratios_1)))) if ratios_1 else None
    summary = {"bench": "corrupt", "size": 128, "images": a.images, "severity": a.severity,
               "torch_threads": torch.get_num_threads(),
               "reference": "imagecorruptions 1.1.2, one image at a time" if ic else None,
               "workers": a.workers, "geomean_ratio": round(geo, 2) if geo else None,
               "geomean_ratio_1thread": round(geo_1, 2) if geo_1 else None,
               "min_ratio": round(min(ratios), 2) if ratios else None,
               "types_at_least_20x": int(sum(r >= 20 for r in ratios)), "types": len(specs), "per_type": per_type}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
