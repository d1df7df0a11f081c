"""Ridge probe: closed form on the pooled pair input, alpha chosen by episode-grouped CV on TRAIN only.

Input ``X: (P, F)`` = concat(z_t, z_tk) of mean-pooled features (+ difference as an option), standardised
with train statistics (constant dims map to 0); targets centred (ridge is per-output, so target scale does
not change the fit). Model ``y = (X - mu) W + y_mean``, ``W = (Xc^T Xc + alpha I)^-1 Xc^T yc``: exactly
``sklearn.linear_model.Ridge(alpha, fit_intercept=True)`` on the standardised inputs.

Alpha search: K folds of whole episodes. Per fold, ONE eigendecomposition of the fold-train Gram matrix
(built as the total Gram minus the held-out fold's, from a single pass over the data) serves every alpha;
each target dim gets the alpha with its best pooled held-out R2 (as sklearn's ``RidgeCV(alpha_per_target=
True)``: a dim the features cannot explain, which favours the largest alpha, no longer shrinks the fit of the
dims they can), then one solve per distinct alpha on all train pairs. ``alpha``: the per-dim alphas ``(A,)``.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from wmprobe.metrics import _r2_from_sums
from wmprobe.probes.base import ProbeData, Standardizer, episode_folds, pair_inputs, require_episodes
from wmprobe.probes.spec import ProbeSpec, register_probe

register_probe(ProbeSpec(
    "ridge", "wmprobe.probes.ridge:RidgeProbe",
    "closed-form ridge on the pooled pair, alpha by episode-grouped CV on train (deterministic)",
    seeded=False, takes_options=False, state=True, imagined=True, version="wmprobe.probes.ridge:VERSION",
    order=2), runtime=False)

DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-3, 7, 21))
VERSION = 2        # 2: alpha chosen per target dim (1: one alpha for every dim); part of study cache keys
CHUNK = 8192


def _gram_by_fold(x: np.ndarray, y: np.ndarray, fold: np.ndarray, n_folds: int, scaler: Standardizer):
    """Per fold: Gram ``(F, F)``, X^T y ``(F, A)``, sum x ``(F,)``, sum y ``(A,)``, count (float64)."""
    f_dim, a_dim = x.shape[1], y.shape[1]
    precise = x.shape[0] * f_dim * f_dim < 2e10
    dt = np.float64 if precise else np.float32
    out: list[list[Any]] = [[np.zeros((f_dim, f_dim)), np.zeros((f_dim, a_dim)), np.zeros(f_dim), np.zeros(a_dim), 0.0]
           for _ in range(n_folds)]
    for f in range(n_folds):
        rows = np.nonzero(fold == f)[0]
        acc = out[f]
        for c in range(0, len(rows), CHUNK):
            r = rows[c : c + CHUNK]
            xc = scaler(x[r]).astype(dt, copy=False)
            yc = y[r].astype(np.float64)
            acc[0] += (xc.T @ xc).astype(np.float64)
            acc[1] += xc.astype(np.float64).T @ yc
            acc[2] += xc.sum(0, dtype=np.float64)
            acc[3] += yc.sum(0)
            acc[4] += len(r)
    return out


def _centred(g: np.ndarray, b: np.ndarray, sx: np.ndarray, sy: np.ndarray, n: float):
    mu, ym = sx / n, sy / n
    return g - n * np.outer(mu, mu), b - n * np.outer(mu, ym), mu, ym


class RidgeProbe:
    """Closed-form ridge; ``predict`` returns ``(1, P, A)``."""

    def __init__(self, alphas: Sequence[float] = DEFAULT_ALPHAS, cv_folds: int = 5, use_diff: bool = False,
                 standardize: bool = True, seeds: Sequence[int] = (0,), cv_seed: int = 0, **_: Any) -> None:
        self.alphas = [float(a) for a in alphas]
        self.cv_folds, self.use_diff, self.standardize = int(cv_folds), bool(use_diff), bool(standardize)
        self.seeds = [int(list(seeds)[0]) if len(seeds) else 0]
        self.cv_seed = int(cv_seed)
        self.alpha: list[float] | None = None    # per action dim, chosen by cross-validation in fit
        self.cv_r2: list[float] = []

    def fit(self, train: ProbeData) -> "RidgeProbe":
        require_episodes(train, 2)
        x, y = pair_inputs(train, self.use_diff), train.y
        f_dim = x.shape[1]
        self.x_scaler = Standardizer.fit(x) if self.standardize else Standardizer(
            np.zeros(f_dim, np.float32), np.ones(f_dim, np.float32))
        fold = episode_folds(train.episode, self.cv_folds, self.cv_seed)
        n_folds = int(fold.max()) + 1
        stats = _gram_by_fold(x, y, fold, n_folds, self.x_scaler)
        tot = [sum(s[q] for s in stats) for q in range(5)]
        alphas = np.asarray(self.alphas)
        sse = np.zeros((len(alphas), y.shape[1]))
        for f in range(n_folds):
            g, b, sx, sy, n = (tot[q] - stats[f][q] for q in range(5))
            gc, bc, mu, ym = _centred(g, b, sx, sy, n)
            lam, v = np.linalg.eigh(gc)
            lam = np.maximum(lam, 0.0)
            c = v.T @ bc                                            # (F, A)
            # every alpha's weights from the one decomposition: W_a = V diag(1 / (lam + a)) V^T Xc^T yc
            scaled = c[None] / (lam[None, :, None] + alphas[:, None, None])     # (K, F, A)
            w_all = v @ scaled.transpose(1, 0, 2).reshape(f_dim, -1)            # (F, K * A): one GEMM
            rows = np.nonzero(fold == f)[0]
            for s in range(0, len(rows), CHUNK):
                r = rows[s : s + CHUNK]
                pred = ((self.x_scaler(x[r]).astype(np.float64) - mu) @ w_all).reshape(len(r), len(alphas), -1)
                sse += ((pred + ym - y[r].astype(np.float64)[:, None]) ** 2).sum(0)
        sst = ((y.astype(np.float64) - y.mean(0, dtype=np.float64)) ** 2).sum(0)
        per_dim = _r2_from_sums(sse, np.broadcast_to(sst, sse.shape))              # (K, A)
        best = np.argmax(per_dim, axis=0)                                           # each dim its own alpha
        self.cv_r2 = [float(s) for s in per_dim.mean(1)]
        self.cv_r2_per_dim = per_dim[best, np.arange(per_dim.shape[1])].tolist()
        self.alpha = [float(a) for a in alphas[best]]
        gc, bc, mu, ym = _centred(*tot)
        self.coef_ = np.zeros(bc.shape)
        for b in np.unique(best):                                                   # one solve per alpha
            dims = best == b
            self.coef_[:, dims] = np.linalg.solve(gc + alphas[b] * np.eye(f_dim), bc[:, dims])   # (F, A_b)
        self.intercept_ = ym - mu @ self.coef_
        return self

    def predict(self, data: ProbeData) -> np.ndarray:
        x = self.x_scaler(pair_inputs(data, self.use_diff)).astype(np.float64)
        return (x @ self.coef_ + self.intercept_).astype(np.float32)[None]

    def config(self) -> dict[str, Any]:
        return {"probe": "ridge", "input": "concat" + ("+diff" if self.use_diff else ""), "pool": "mean",
                "standardize": self.standardize, "alphas": [self.alphas[0], self.alphas[-1], len(self.alphas)],
                "cv_folds": self.cv_folds, "cv": "grouped by episode, train split only, alpha per target dim",
                "alpha": self.alpha,
                "cv_r2_best": float(np.mean(self.cv_r2_per_dim)) if self.cv_r2 else None}
