"""Probe benchmarks; the last printed line is one JSON object.

(a) MLP heads grid vs sklearn: 20 heads (5 seeds x 2 lrs x 2 weight decays) of the paper's MLP
    (F -> 256 -> 128 -> A) trained together by ``MLPProbe`` on cached synthetic pair features, against 20
    sequential ``sklearn.neural_network.MLPRegressor`` fits of the same sizes, batch size, optimiser family
    (Adam) and step budget on the same data. Both use squared loss here (like for like); both pick the best
    (lr, wd) per seed on the same validation episodes; test R2 is the mean over seeds of the picked heads.
(b) Ridge with the alpha search (21 alphas, 5 episode-grouped folds, one eigh per fold): seconds per layer
    for P pairs x D dims per step (input 2D), over L layers; reference: sklearn ``Ridge`` refit for every
    (alpha, fold) on a smaller problem, both timed in this run.

Usage: ``python bench/probes.py [--quick] [--steps N] [--layers L] [--pairs P] [--dim D]``
"""
from __future__ import annotations

import argparse
import json
import math
import time
import warnings

import numpy as np
import torch

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
    return {"heads": len(SEEDS) * len(LRS) * len(WDS), "steps": steps, "n_train": n, "input_dim": 2 * d,
            "sklearn_steps": epochs * math.ceil(fit_m.sum() / 256), "ours_seconds": round(ours_s, 2),
            "sklearn_seconds": round(sk_s, 2), "speedup_vs_sklearn": round(sk_s / ours_s, 2),
            "ours_test_r2": round(ours_r2, 4), "sklearn_test_r2": round(sk_r2, 4)}


def bench_ridge(layers: int, pairs: int, dim: int, ref_pairs: int, ref_dim: int) -> dict:
    per_layer = []
    for layer in range(layers):
        data = synthetic(pairs, dim, 100 + layer, ep_len=50)
        t0 = time.perf_counter()
        RidgeProbe().fit(data)
        per_layer.append(time.perf_counter() - t0)
        del data
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
            "speedup_vs_sklearn_refits": round(sk_small / ours_small, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (seconds, for CI)")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--layers", type=int)
    ap.add_argument("--pairs", type=int)
    ap.add_argument("--dim", type=int)
    a = ap.parse_args()
    q = a.quick
    steps = a.steps or (200 if q else 3000)
    mlp = bench_mlp(steps, n=1600 if q else 4000, d=32)
    print("mlp heads grid:", json.dumps(mlp), flush=True)
    ridge = bench_ridge(a.layers or (2 if q else 24), a.pairs or (5000 if q else 50000), a.dim or (128 if q else 1024),
                        ref_pairs=2000 if q else 5000, ref_dim=64 if q else 256)
    print("ridge layers:", json.dumps(ridge), flush=True)
    print(json.dumps({"bench": "probes", "quick": q, "torch_threads": torch.get_num_threads(), "mlp": mlp,
                      "ridge": ridge, "ratio": {"mlp_grid_vs_sklearn_mlp": mlp["speedup_vs_sklearn"],
                                                "ridge_cv_vs_sklearn_refits": ridge["speedup_vs_sklearn_refits"]}}))


if __name__ == "__main__":
    main()
