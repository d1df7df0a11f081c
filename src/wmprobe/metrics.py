"""Metrics, functions first (numpy in, numpy/float out), each checked against a reference in tests.

- ``r2_score``: sklearn's coefficient of determination, incl. its constant-target rule (a constant target
  dim scores 1.0 when predicted exactly, else 0.0), uniform average over output dims by default.
- ``r2_by_group``: R2 of each action axis group (translation / rotation / gripper / any other declared group).
- ``r2_over_groups``: the headline R2: the mean over the given groups of each group's R2 (each group counts
  once, whatever its number of dims); ``group_weights`` is the same statistic as per-dim weights.
- ``binary_levels`` / ``binary_accuracy``: a target dim with two levels (a gripper command) scored as a label:
  accuracy and balanced accuracy of the level nearer to the prediction (for -1/+1 levels: its sign).
- ``pearson_r``: Pearson r per output dim, uniform average over dims with non-constant values
  (the metric of arXiv 2605.06388), ``mse``.
- ``bootstrap_ci``: percentile CI resampling test EPISODES (not frames); vectorised through per-episode
  sufficient statistics for R2 (also over groups: ``groups=``) / Pearson / MSE, a loop for any other statistic.
  ``bootstrap_mean_ci``: the same resampling for the mean of per-image scores (PSNR, SSIM).
- ``spearman`` (on ``scipy.stats.rankdata`` ranks) / ``spearman_ci`` (bootstrap over items), ``pareto_front``,
  ``mean_and_spread``.

Shapes: ``y_true, y_pred: (P, A)`` or ``(P,)``; ``episode: (P,) int``.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
from scipy.stats import rankdata

Stat = Callable[..., Any]   # (y_true, y_pred) -> float


def _2d(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    return y[:, None] if y.ndim == 1 else y


def _check(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t, p = _2d(y_true), _2d(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"y_true {t.shape} and y_pred {p.shape} differ in shape")
    if t.shape[0] < 1:
        raise ValueError("metrics need at least one sample")
    return t, p


def _r2_from_sums(sse: np.ndarray, sst: np.ndarray) -> np.ndarray:
    """Per-dim R2 from residual and total sums of squares (..., A), sklearn's constant-target rule."""
    sst_ok = sst > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(sst_ok, 1.0 - sse / np.where(sst_ok, sst, 1.0), np.where(sse > 0, 0.0, 1.0))
    return r2


def r2_score(y_true: np.ndarray, y_pred: np.ndarray, multioutput: str = "uniform_average") -> float | np.ndarray:
    """R2 as ``sklearn.metrics.r2_score``: float (uniform_average) or ``(A,)`` array (raw_values)."""
    t, p = _check(y_true, y_pred)
    sse = ((t - p) ** 2).sum(0)
    sst = ((t - t.mean(0)) ** 2).sum(0)
    raw = _r2_from_sums(sse, sst)
    if multioutput == "raw_values":
        return raw
    if multioutput != "uniform_average":
        raise ValueError(f"multioutput must be 'uniform_average' or 'raw_values', got {multioutput!r}")
    return float(raw.mean())


def r2_by_group(y_true: np.ndarray, y_pred: np.ndarray, groups: Mapping[str, Sequence[int]]) -> dict[str, float]:
    """``{group: R2 uniform-averaged over that group's dims}``; NaN for a group with no dims."""
    raw = np.asarray(r2_score(y_true, y_pred, multioutput="raw_values"))
    return {g: (float(raw[list(idx)].mean()) if len(idx) else float("nan")) for g, idx in groups.items()}


def group_weights(groups: Mapping[str, Sequence[int]], n_dims: int) -> np.ndarray:
    """``(A,)`` weights with ``raw_r2 @ w == r2_over_groups``: ``1 / (G * |g|)`` on the dims of each of the G
    groups (a dim in two groups gets both shares), 0 on dims in none. ValueError for a group with no dims or
    dims outside ``0..n_dims-1``, or no group at all."""
    if not groups:
        raise ValueError("r2 over groups needs at least one group")
    w = np.zeros(n_dims)
    for g, idx in groups.items():
        idx = [int(i) for i in idx]
        if not idx:
            raise ValueError(f"group {g!r} has no dims")
        if min(idx) < 0 or max(idx) >= n_dims:
            raise ValueError(f"group {g!r} indexes dims {idx} outside 0..{n_dims - 1}")
        w[idx] += 1.0 / (len(groups) * len(idx))
    return w


def r2_over_groups(y_true: np.ndarray, y_pred: np.ndarray, groups: Mapping[str, Sequence[int]]) -> float:
    """The headline R2: ``mean_g r2_by_group[g]`` over ``groups`` (each group counts once)."""
    t, _ = _check(y_true, y_pred)
    return float(r2_score(y_true, y_pred, multioutput="raw_values") @ group_weights(groups, t.shape[1]))


def binary_levels(y: np.ndarray) -> tuple[float, float] | None:
    """``(low, high)`` when the values of ``y: (P,)`` take exactly two levels, else None."""
    levels = np.unique(np.asarray(y, np.float64))
    return (float(levels[0]), float(levels[1])) if len(levels) == 2 else None


def binary_accuracy(y_true: np.ndarray, y_pred: np.ndarray, levels: tuple[float, float]) -> tuple[float, float]:
    """``(accuracy, balanced accuracy)`` of a two-level target ``y_true: (P,)`` (values in ``levels``) read from
    ``y_pred: (P,)``: a prediction is the level it is nearer to (``>= midpoint`` -> high; for -1/+1 that is its
    sign). Balanced accuracy is the mean recall over the levels present in ``y_true`` (as sklearn's
    ``balanced_accuracy_score``). ValueError when ``y_true`` holds another value."""
    t, p = (np.asarray(v, np.float64).ravel() for v in (y_true, y_pred))
    lo, hi = levels
    if t.shape != p.shape or len(t) == 0:
        raise ValueError(f"y_true {t.shape} and y_pred {p.shape} must be non-empty and of one shape")
    if not np.isin(t, [lo, hi]).all():
        raise ValueError(f"y_true holds values other than the levels {levels}")
    label, guess = t == hi, p >= (lo + hi) / 2
    recalls = [float((guess[label == c] == c).mean()) for c in (False, True) if (label == c).any()]
    return float((guess == label).mean()), float(np.mean(recalls))


def pearson_r(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Pearson r per dim (as ``scipy.stats.pearsonr``), averaged over dims where both sides vary; NaN if none."""
    t, p = _check(y_true, y_pred)
    tc, pc = t - t.mean(0), p - p.mean(0)
    den = np.sqrt((tc ** 2).sum(0) * (pc ** 2).sum(0))
    ok = den > 0
    if not ok.any():
        return float("nan")
    return float(((tc * pc).sum(0)[ok] / den[ok]).mean())


def mse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean squared error over all samples and dims."""
    t, p = _check(y_true, y_pred)
    return float(((t - p) ** 2).mean())


# ---- bootstrap over episodes --------------------------------------------------------------------
def _episode_sums(t: np.ndarray, p: np.ndarray, episode: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per-episode sufficient statistics: counts (E,), and (E, A) sums of t, t^2, p, p^2, t*p, (t-p)^2."""
    _, inv = np.unique(np.asarray(episode), return_inverse=True)
    n_e = int(inv.max()) + 1
    cnt = np.bincount(inv, minlength=n_e).astype(np.float64)

    def s(v: np.ndarray) -> np.ndarray:
        out = np.zeros((n_e, v.shape[1]))
        np.add.at(out, inv, v)
        return out

    return cnt, [s(t), s(t * t), s(p), s(p * p), s(t * p), s((t - p) ** 2)]


def bootstrap_counts(n_episodes: int, n_boot: int, seed: int) -> np.ndarray:
    """``(n_boot, E)`` how often each episode is drawn; draw b resamples ``rng.integers(0, E, E)``."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_episodes, size=(n_boot, n_episodes))
    counts = np.zeros((n_boot, n_episodes))
    np.add.at(counts, (np.repeat(np.arange(n_boot), n_episodes), idx.ravel()), 1.0)
    return counts


def bootstrap_stats(y_true: np.ndarray, y_pred: np.ndarray, episode: np.ndarray, stat: Stat | str = "r2",
                    n_boot: int = 1000, seed: int = 0,
                    groups: Mapping[str, Sequence[int]] | None = None) -> np.ndarray:
    """``(n_boot,)`` values of ``stat`` on episode-resampled test sets (the draws of ``bootstrap_counts``).
    ``groups`` (with ``stat="r2"`` only): the statistic is ``r2_over_groups`` over those groups."""
    t, p = _check(y_true, y_pred)
    weights = None
    if groups is not None:
        if stat not in ("r2", r2_score):
            raise ValueError(f"groups= goes with stat='r2' only, got {stat!r}")
        weights = group_weights(groups, t.shape[1])
    episode = np.asarray(episode)
    if episode.shape[0] != t.shape[0]:
        raise ValueError(f"episode has {episode.shape[0]} entries for {t.shape[0]} samples")
    # shift by the means (R2 and r are invariant; SSE is summed unshifted) to avoid cancellation
    cnt, sums = _episode_sums(t - t.mean(0), p - p.mean(0), episode)
    sums[5] = _episode_sums(t - p, t - p, episode)[1][1]
    w = bootstrap_counts(len(cnt), n_boot, seed)
    names: dict[Any, str] = {r2_score: "r2", pearson_r: "pearson", mse: "mse"}
    name = names.get(stat, stat) if callable(stat) else stat
    if name in ("r2", "pearson", "mse"):
        n = (w @ cnt)[:, None]
        st, stt, sp, spp, stp, sse = (w @ x for x in sums)
        if name == "mse":
            return np.asarray(sse.sum(1) / (n[:, 0] * t.shape[1]))
        sst = np.maximum(stt - st ** 2 / n, 0.0)
        if name == "r2":
            raw = _r2_from_sums(sse, np.where(sst > 1e-10 * stt, sst, 0.0))
            return np.asarray(raw.mean(1) if weights is None else raw @ weights)
        spp_c = np.maximum(spp - sp ** 2 / n, 0.0)
        cov = stp - st * sp / n
        den = np.sqrt(sst * spp_c)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.where(den > 0, cov / np.where(den > 0, den, 1.0), np.nan)
        ok = ~np.isnan(r)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(np.where(ok, r, 0.0).sum(1) / ok.sum(1))
    if not callable(stat):
        raise ValueError(f"unknown statistic {stat!r}: pass 'r2', 'pearson', 'mse' or a function")
    _, inv = np.unique(episode, return_inverse=True)
    rows_of = [np.nonzero(inv == e)[0] for e in range(len(cnt))]
    out = np.empty(n_boot)
    for b in range(n_boot):
        rows = np.concatenate([np.repeat(rows_of[e], int(c)) for e, c in enumerate(w[b]) if c])
        out[b] = stat(t[rows], p[rows])
    return out


def bootstrap_ci(y_true: np.ndarray, y_pred: np.ndarray, episode: np.ndarray, stat: Stat | str = r2_score,
                 n_boot: int = 1000, alpha: float = 0.05, seed: int = 0,
                 groups: Mapping[str, Sequence[int]] | None = None) -> tuple[float, float]:
    """Percentile ``(low, high)`` CI of ``stat`` resampling whole test episodes with replacement; ``groups``:
    the CI of ``r2_over_groups`` (the headline R2) instead of the all-dims R2."""
    if n_boot <= 0:
        return float("nan"), float("nan")
    vals = bootstrap_stats(y_true, y_pred, episode, stat, n_boot=n_boot, seed=seed, groups=groups)
    lo, hi = np.nanquantile(vals, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)



def bootstrap_mean_ci(values: np.ndarray, episode: np.ndarray, n_boot: int = 1000, alpha: float = 0.05,
                      seed: int = 0) -> tuple[float, float]:
    """Percentile ``(low, high)`` CI of the mean of ``values: (P,)`` (per-image scores, e.g. PSNR) resampling
    whole episodes (``episode: (P,)``) with the draws of ``bootstrap_counts``; NaN for ``n_boot <= 0`` or fewer
    than two episodes. (``bootstrap_ci``'s statistics are functions of a target and a prediction; this one is
    the plain mean, from per-episode sums.)"""
    _, inv = np.unique(np.asarray(episode), return_inverse=True)
    n_e = int(inv.max()) + 1
    if n_boot <= 0 or n_e < 2:
        return float("nan"), float("nan")
    sums, cnt = np.bincount(inv, weights=values, minlength=n_e), np.bincount(inv, minlength=n_e).astype(float)
    w = bootstrap_counts(n_e, n_boot, seed)
    lo, hi = np.quantile((w @ sums) / (w @ cnt), [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)

# ---- rankings, fronts, seeds --------------------------------------------------------------------
def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (``scipy.stats.spearmanr``) over the pairs where both sides are finite (an
    encoder without a PSNR drops out instead of being ranked as the largest value); NaN when either side is
    constant or fewer than 2 pairs remain."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape or len(a) < 2:
        raise ValueError(f"spearman needs two equal-length arrays of >= 2 items, got {a.shape} and {b.shape}")
    ok = np.isfinite(a) & np.isfinite(b)
    if not ok.all():
        a, b = a[ok], b[ok]
        if len(a) < 2:
            return float("nan")
    # Pearson r of scipy's average ranks, centred (their mean is (n + 1) / 2 exactly): spearmanr's statistic,
    # written out so the value stays bit for bit what the records' findings were computed with
    ra, rb = rankdata(a) - (len(a) + 1) / 2, rankdata(b) - (len(b) + 1) / 2
    den = np.sqrt((ra ** 2).sum() * (rb ** 2).sum())
    return float((ra * rb).sum() / den) if den > 0 else float("nan")


def spearman_ci(a: np.ndarray, b: np.ndarray, n_boot: int = 1000, alpha: float = 0.05,
                seed: int = 0) -> tuple[float, float]:
    """Percentile CI of Spearman rho resampling items (e.g. encoders) with replacement."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(n_boot, len(a)))
    vals = np.array([spearman(a[i], b[i]) for i in idx])
    if np.isnan(vals).all():
        return float("nan"), float("nan")
    lo, hi = np.nanquantile(vals, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def pareto_front(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(M,) bool``: points not dominated when maximising both x and y (NaN points are never on it)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    ge = (x[None, :] >= x[:, None]) & (y[None, :] >= y[:, None])
    gt = (x[None, :] > x[:, None]) | (y[None, :] > y[:, None])
    dominated = (ge & gt & ok[None, :]).any(1)
    return np.asarray(ok & ~dominated)


def mean_and_spread(values: Sequence[float]) -> dict[str, float]:
    """Over seeds: mean, sample std (ddof=1; 0 for one value), min, max and n, ignoring NaN."""
    v = np.asarray(values, np.float64)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return {"mean": float("nan"), "std": float("nan"), "min": float("nan"), "max": float("nan"), "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max()), "n": int(len(v))}
