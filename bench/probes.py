"""Probe benchmarks; the last printed line is one JSON object.

(a) MLP heads grid vs sklearn: 20 heads (5 seeds x 2 lrs x 2 weight decays) of the paper's MLP
    (F -> 256 -> 128 -> A) trained together by ``MLPProbe`` on cached synthetic pair features, against 20
    sequential ``sklearn.neural_network.MLPRegressor`` fits of the same sizes, batch size, optimiser family
    (Adam) and step budget on the same data. Both use squared loss here (like for like); both pick the best
    (lr, wd) per seed on the same validation episodes; test R2 is the mean over seeds of the picked heads.
(b) Ridge with the alpha search (21 alphas, 5 episode-grouped folds, one eigh per fold): seconds per layer
    for P pairs x D dims per step (input 2D), over L layers; reference: sklearn ``Ridge`` refit for every
    (alpha, fold) on a smaller problem, both timed in this run.

Fraction of the machine's limit (``bench/roofline.py``, measured in this process):

- MLP grid, FLOPs per step (H heads, batch B, layer widths d_0 = F, d_1 = 256, d_2 = 128, d_3 = A):
  forward ``2 B sum_i d_i d_(i+1)``, backward the same for the weight gradients plus ``2 B sum_(i>=1) d_i
  d_(i+1)`` for the input gradients of layers 1-2 (none for the input layer), times H.
  ``gemm_fraction = FLOPs / fp32 GEMM peak / seconds`` (the target: >= 0.7).
  The step also moves the AdamW state: per parameter the gradient written (4 bytes) and p, g, m, v read and
  p, m, v written (28 bytes), 32 bytes per parameter per step at the copy bandwidth. The step's roofline is
  ``FLOPs / peak + bytes / bandwidth`` (the two phases run one after the other); ``roofline_fraction`` is that
  bound over the measured time and ``max_gemm_fraction`` the highest ``gemm_fraction`` the bound allows.
  ``gemm_phase_fraction``: the FLOPs over the time spent in the batched matmuls alone (torch profiler, a few
  steps). Measured at the bench's grid (20 heads, input 64, for the sklearn ratio) and at the paper's probe
  size: input 2 x 1024 (V-JEPA 2 ViT-L features of both steps), the default grid of 3 seeds x 2 lrs
  (6 heads), batch 256; per-step cost does not depend on the step count, so ``--paper-steps`` (default 300)
  steps are timed.
- Ridge, per layer: the fold Grams ``2 P F^2`` (+ ``2 P F A``) FLOPs (fp32 when ``P F^2 >= 2e10``, else fp64,
  as the probe does) against the fp32 / fp64 GEMM peak; the per-fold eigendecompositions (fp64) counted as
  ``(4/3 + 4/3 + 2) F^3`` FLOPs each (tridiagonal reduction, divide and conquer at most, back-transformation)
  against the fp64 GEMM peak; ``fraction_of_limit`` is the lowest of these phases.

Usage: ``python bench/probes.py [--quick] [--steps N] [--layers L] [--pairs P] [--dim D] [--paper-steps N]``
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import roofline  # noqa: E402
import wmprobe.probes.ridge as ridge_mod  # noqa: E402
from wmprobe.metrics import r2_score
from wmprobe.probes.base import ProbeData, episode_folds, val_split
from wmprobe.probes.mlp import MLPProbe
from wmprobe.probes.ridge import DEFAULT_ALPHAS, RidgeProbe

SEEDS, LRS, WDS = (0, 1, 2, 3, 4), (3e-3, 1e-3), (1e-4, 1e-2)


def synthetic(n: int, d: int, seed: int, ep_len: int = 40) -> ProbeData:
    """State-like pair features: z_tk = z_t + delta; a 7-dim action, a nonlinear function of delta + noise."""
    rng = np.random.default_rng(seed)
    w = np.random.default_rng(1000).normal(size=(d, 7)) / math.sqrt(d)
    zt, delta = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    h = delta @ w
    y = np.tanh(1.5 * h) + 0.3 * h ** 2 + 0.1 * rng.normal(size=h.shape)
    return ProbeData(zt, zt + delta, y, np.arange(n) // ep_len)


def mlp_costs(f_in: int, heads: int, batch: int = 256, hidden: tuple[int, ...] = (256, 128), a: int = 7
              ) -> tuple[float, float]:
    """``(FLOPs, bytes)`` of one training step of the heads grid (see the module doc)."""
    dims = [f_in, *hidden, a]
    pairs = [dims[i] * dims[i + 1] for i in range(len(dims) - 1)]
    flops = 2 * batch * (2 * sum(pairs) + sum(pairs[1:])) * heads
    params = sum(p + dims[i + 1] for i, p in enumerate(pairs)) * heads
    return float(flops), 32.0 * params


def gemm_phase_seconds(fit, steps: int) -> float:
    """Seconds per step spent in matmul kernels (bmm / baddbmm / mm) over a ``steps``-step fit."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fit(steps)
    mm = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in ("aten::bmm", "aten::baddbmm", "aten::mm"))
    return mm / 1e6 / steps


def mlp_fractions(f_in: int, heads: int, seconds: float, steps: int, phase_s: float | None) -> dict:
    flops, nbytes = mlp_costs(f_in, heads)
    peak, bw = roofline.limit("gemm"), roofline.limit("copy")
    t = seconds / steps
    bound = flops / peak + nbytes / bw
    out = {"gflop_per_step": round(flops / 1e9, 3), "adamw_mb_per_step": round(nbytes / 1e6, 1),
           "gflops": round(flops / t / 1e9, 1), "gemm_fraction": round(flops / peak / t, 3),
           "roofline_fraction": round(bound / t, 3), "max_gemm_fraction": round(flops / peak / bound, 3)}
    if phase_s:
        out["gemm_phase_fraction"] = round(flops / peak / phase_s, 3)
    return out


def bench_mlp_paper(steps: int, quick: bool) -> dict:
    """The grid at the paper's probe size: input 2 x 1024, 3 seeds x 2 lrs, batch 256 (``steps`` steps)."""
    d = 256 if quick else 1024
    tr = synthetic(2000 if quick else 4000, d, 0)
    heads = 3 * 2

    def fit(n_steps: int) -> None:
        MLPProbe(steps=n_steps, seeds=(0, 1, 2), lrs=(1e-3, 3e-4), weight_decays=(1e-2,)).fit(tr)
    fit(5)                                                                       # warm-up
    t0 = time.perf_counter()
    fit(steps)
    sec = time.perf_counter() - t0
    phase = gemm_phase_seconds(fit, 10 if quick else 20)
    return {"input_dim": 2 * d, "heads": heads, "steps": steps, "seconds": round(sec, 2),
            **mlp_fractions(2 * d, heads, sec, steps, phase)}


def bench_mlp(steps: int, n: int, d: int) -> dict:
    tr, te = synthetic(n, d, 0), synthetic(n // 4, d, 1)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    probe = MLPProbe(steps=steps, lrs=LRS, weight_decays=WDS, seeds=SEEDS, loss="l2").fit(tr)
    ours_s = time.perf_counter() - t0
    ours_r2 = float(np.mean([r2_score(te.y, p) for p in probe.predict(te)]))

    from sklearn.neural_network import MLPRegressor
    from sklearn.preprocessing import StandardScaler
    fit_m, val_m = val_split(tr.episode, 0.2, seed=0)
    x = np.concatenate([tr.z_t, tr.z_tk], 1)
    xs, ys = StandardScaler().fit(x[fit_m]), StandardScaler().fit(tr.y[fit_m])
    xf, yf, xv, yv = xs.transform(x[fit_m]), ys.transform(tr.y[fit_m]), xs.transform(x[val_m]), tr.y[val_m]
    xte = xs.transform(np.concatenate([te.z_t, te.z_tk], 1))
    epochs = math.ceil(steps / math.ceil(fit_m.sum() / 256))
    best: dict[int, tuple[float, float]] = {}
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for s in SEEDS:
            for lr in LRS:
                for wd in WDS:
                    m = MLPRegressor(hidden_layer_sizes=(256, 128), batch_size=256, learning_rate_init=lr, alpha=wd,
                                     max_iter=epochs, tol=0.0, n_iter_no_change=10 ** 9, random_state=s)
                    m.fit(xf, yf)
                    val = r2_score(yv, ys.inverse_transform(m.predict(xv)))
                    if s not in best or val > best[s][0]:
                        best[s] = (val, r2_score(te.y, ys.inverse_transform(m.predict(xte))))
    sk_s = time.perf_counter() - t0
    sk_r2 = float(np.mean([b[1] for b in best.values()]))
    heads = len(SEEDS) * len(LRS) * len(WDS)
    phase = gemm_phase_seconds(lambda k: MLPProbe(steps=k, lrs=LRS, weight_decays=WDS, seeds=SEEDS, loss="l2")
                               .fit(tr), 20)
    return {"heads": heads, "steps": steps, "n_train": n, "input_dim": 2 * d,
            "sklearn_steps": epochs * math.ceil(fit_m.sum() / 256), "ours_seconds": round(ours_s, 2),
            "sklearn_seconds": round(sk_s, 2), "speedup_vs_sklearn": round(sk_s / ours_s, 2),
            "ours_test_r2": round(ours_r2, 4), "sklearn_test_r2": round(sk_r2, 4),
            **mlp_fractions(2 * d, heads, ours_s, steps, phase)}


def timed_phases(fn):
    """Run ``fn()`` with the ridge module's fold-Gram pass and ``np.linalg.eigh`` timed: ``(gram_s, eigh_s,
    eigh_calls, total_s)``."""
    acc = {"gram": 0.0, "eigh": 0.0, "n": 0}
    gram, eigh = ridge_mod._gram_by_fold, np.linalg.eigh

    def t_gram(*a, **k):
        t0 = time.perf_counter()
        try:
            return gram(*a, **k)
        finally:
            acc["gram"] += time.perf_counter() - t0

    def t_eigh(*a, **k):
        t0 = time.perf_counter()
        try:
            return eigh(*a, **k)
        finally:
            acc["eigh"] += time.perf_counter() - t0
            acc["n"] += 1
    ridge_mod._gram_by_fold, np.linalg.eigh = t_gram, t_eigh
    t0 = time.perf_counter()
    try:
        fn()
    finally:
        ridge_mod._gram_by_fold, np.linalg.eigh = gram, eigh
    return acc["gram"], acc["eigh"], acc["n"], time.perf_counter() - t0


def bench_ridge(layers: int, pairs: int, dim: int, ref_pairs: int, ref_dim: int) -> dict:
    per_layer, gram_s, eigh_s, eighs = [], 0.0, 0.0, 0
    for layer in range(layers):
        data = synthetic(pairs, dim, 100 + layer, ep_len=50)
        g, e, n_e, total = timed_phases(lambda d=data: RidgeProbe().fit(d))   # bound now: `data` is deleted below
        per_layer.append(total)
        gram_s, eigh_s, eighs = gram_s + g, eigh_s + e, eighs + n_e
        del data
    f_dim = 2 * dim
    fp32_gram = pairs * f_dim * f_dim >= 2e10
    gram_flops = layers * (2.0 * pairs * f_dim * f_dim + 2.0 * pairs * f_dim * 7)
    eigh_flops = eighs * (4 / 3 + 4 / 3 + 2) * f_dim ** 3
    phases = {"gram_seconds": round(gram_s, 2), "gram_dtype": "float32" if fp32_gram else "float64",
              "gram_fraction": roofline.fraction("gemm" if fp32_gram else "gemm64", gram_flops, gram_s),
              "eigh_seconds": round(eigh_s, 2), "eigh_calls": eighs,
              "eigh_fraction": roofline.fraction("gemm64", eigh_flops, eigh_s),
              "other_seconds": round(sum(per_layer) - gram_s - eigh_s, 2)}
    phases["fraction_of_limit"] = min(phases["gram_fraction"], phases["eigh_fraction"])
    # reference on a smaller problem: sklearn Ridge refit per (alpha, fold), vs ours on the same problem
    from sklearn.linear_model import Ridge
    small = synthetic(ref_pairs, ref_dim, 7, ep_len=50)
    t0 = time.perf_counter()
    ours = RidgeProbe().fit(small)
    ours_small = time.perf_counter() - t0
    x = ours.x_scaler(np.concatenate([small.z_t, small.z_tk], 1))
    fold = episode_folds(small.episode, 5, 0)
    t0 = time.perf_counter()
    scores = []
    for a in DEFAULT_ALPHAS:
        pred = np.zeros_like(small.y)
        for f in range(5):
            pred[fold == f] = Ridge(alpha=a).fit(x[fold != f], small.y[fold != f]).predict(x[fold == f])
        scores.append(r2_score(small.y, pred))
    Ridge(alpha=DEFAULT_ALPHAS[int(np.argmax(scores))]).fit(x, small.y)
    sk_small = time.perf_counter() - t0
    return {"layers": layers, "pairs": pairs, "dim_per_step": dim, "input_dim": 2 * dim,
            "alphas": len(DEFAULT_ALPHAS), "folds": 5, "seconds_per_layer": round(float(np.mean(per_layer)), 2),
            "seconds_total": round(float(np.sum(per_layer)), 2), "ref_problem": [ref_pairs, 2 * ref_dim],
            "ref_ours_seconds": round(ours_small, 3), "ref_sklearn_seconds": round(sk_small, 3),
            "ref_same_alpha": bool(ours.alpha == DEFAULT_ALPHAS[int(np.argmax(scores))]),
            "speedup_vs_sklearn_refits": round(sk_small / ours_small, 1), **phases}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (seconds, for CI)")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--layers", type=int)
    ap.add_argument("--pairs", type=int)
    ap.add_argument("--dim", type=int)
    ap.add_argument("--paper-steps", type=int, help="steps timed at the paper's probe size (default 300)")
    a = ap.parse_args()
    q = a.quick
    lim = roofline.measure(q)
    print("machine limits:", roofline.describe(lim), flush=True)
    steps = a.steps or (200 if q else 3000)
    mlp = bench_mlp(steps, n=1600 if q else 4000, d=32)
    print("mlp heads grid:", json.dumps(mlp), flush=True)
    ridge = bench_ridge(a.layers or (2 if q else 24), a.pairs or (5000 if q else 50000), a.dim or (128 if q else 1024),
                        ref_pairs=2000 if q else 5000, ref_dim=64 if q else 256)
    print("ridge layers:", json.dumps(ridge), flush=True)
    paper = bench_mlp_paper(a.paper_steps or (30 if q else 300), q)
    print("mlp heads grid, paper's probe size:", json.dumps(paper), flush=True)
    for name, r in (("mlp grid (bench size)", mlp), ("mlp grid (paper size)", paper)):
        print(f"{name}: {r['gflops']} GFLOP/s = {r['gemm_fraction']} of the GEMM peak (goal >= 0.7); matmuls alone "
              f"{r.get('gemm_phase_fraction')}; AdamW moves {r['adamw_mb_per_step']} MB per step, so the step's "
              f"roofline allows at most {r['max_gemm_fraction']}; measured {r['roofline_fraction']} of that bound")
    print(f"ridge: Gram {ridge['gram_fraction']} of the {ridge['gram_dtype']} GEMM peak, eigh {ridge['eigh_fraction']} "
          f"of the fp64 GEMM peak ({ridge['eigh_seconds']} of {ridge['seconds_total']} s)")
    fraction = min(mlp["gemm_fraction"], paper["gemm_fraction"], ridge["fraction_of_limit"])
    print(json.dumps({"bench": "probes", "quick": q, "torch_threads": torch.get_num_threads(), "mlp": mlp,
                      "ridge": ridge, "ratio": {"mlp_grid_vs_sklearn_mlp": mlp["speedup_vs_sklearn"],
                                                "ridge_cv_vs_sklearn_refits": ridge["speedup_vs_sklearn_refits"]},
                      "mlp_paper": paper, "fraction_of_limit": fraction, "limits": lim}))


if __name__ == "__main__":
    main()
