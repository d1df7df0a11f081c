"""Does the probe predict control? Rank correlations of closed-loop success with probe R2 and with fidelity.

Reads a records table only (as ``wmprobe.analysis``): the closed-loop rows of a study's ``control:`` section
(``probe = bc-policy``, see ``wmprobe.study.control``) and the clean headline cells of the probes.

- ``control_success(df)``: per (dataset, encoder, id_weight, task_split): the rollouts of every seed pooled
  (``task = all`` rows; ``successes`` = sum of ``success x n_rollouts``, ``n_rollouts`` summed), the pooled
  ``success`` rate and its 95 % Wilson interval, ``policy_layer``.
- ``control_table(df, dataset, task_split)``: one row per encoder measured both ways: its headline R2
  (``analysis.summary_table``: probe mlp, clean, headline k, real latents, mean over probe seeds) with CI and
  seed sd, its decoder-probe PSNR with CI, and its pooled success.
- ``rank_correlation(table, x)``: Spearman rho of ``success`` against column ``x`` (``r2`` or ``psnr``), with a
  95 % percentile bootstrap CI over encoders AND measurement noise (see ``bootstrap_rhos``).
- ``control_findings(df)``: ``{dataset: {task_split: {...}}}`` for findings.json: rho with R2, rho with PSNR,
  the paired difference, the per-encoder table, ``policy_layer_differs`` (encoders whose policy read another
  layer than their headline R2: only when a study probes several layers); ``{}`` without control rows.

The bootstrap (``bootstrap_rhos``; ``n_boot`` replicates from ``numpy.random.default_rng(seed)``): each replicate
draws ``n`` encoders with replacement from the ``n`` in the table, then for every drawn copy independently

- its success rate from ``Beta(successes + 1/2, n_rollouts - successes + 1/2)`` (the Jeffreys posterior of a
  binomial rate: an encoder with 0 of 16 successes may still have drawn a few; with fewer rollouts its draw
  spreads more),
- its R2 from ``Normal(r2, sd)``, ``sd^2 = ((ci_high - ci_low) / 3.92)^2 + seed_sd^2 / seeds`` (the episode
  bootstrap CI read as a normal one, plus the spread of the probe seeds' mean),
- its PSNR from ``Normal(psnr, (psnr_ci_high - psnr_ci_low) / 3.92)`` (a missing CI or sd counts as 0),

and computes Spearman rho of the drawn success against each drawn column (average ranks for ties, as
``scipy.stats.spearmanr``). The CI is the 2.5 and 97.5 percentiles of the replicates whose columns are not
constant. R2 and PSNR use the SAME draws of encoders and success, so ``rho(R2) - rho(PSNR)`` per replicate gives
a paired CI of the difference (over the encoders that have a PSNR). The point estimate is
``scipy.stats.spearmanr`` of the point values.

A correlation needs at least ``MIN_ENCODERS`` encoders and both columns varying; otherwise its entry says so
(``status`` "not enough encoders" or "constant", ``rho`` None, ``reason``), never a silent NaN.

``separation(table)``: whether closed-loop success tells the encoders apart at all: the number of encoder
pairs whose Wilson intervals do not overlap, and the best success. When no pair separates, the policies
succeed (or fail) alike within rollout noise and a rank correlation of success reads that noise: the entry
keeps rho and its CI, and ``success_separates`` is False so the report says the correlation cannot be read.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from wmprobe import analysis as A
from wmprobe.errors import ProbeError

PROBE = "bc-policy"
MIN_ENCODERS = 4          # fewer encoders than this: no rank correlation is reported
N_BOOT = 2000
Z95 = 1.959964
SPLIT_ORDER = ("train", "test")
OK, TOO_FEW, CONSTANT = "ok", "not enough encoders", "constant"


def control_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The measured pooled closed-loop rows: ``probe = bc-policy``, ``task = all``, no error, a finite success
    and ``n_rollouts`` > 0 (``id_weight`` NaN read as 0)."""
    if "probe" not in df or "success" not in df or "task_split" not in df:
        return df.iloc[:0]
    d = df[df["probe"].astype(str) == PROBE]
    if "error" in d:
        d = d[d["error"].fillna("").astype(str) == ""]
    if "task" in d:
        d = d[d["task"].fillna("all").astype(str) == "all"]
    n = pd.to_numeric(d.get("n_rollouts", pd.Series(np.nan, index=d.index)), errors="coerce")
    d = d[np.isfinite(d["success"].astype(float)) & (n > 0)]
    return d.assign(id_weight=d["id_weight"].astype(float).fillna(0.0), n_rollouts=n[d.index].astype(int))


def has_control(df: pd.DataFrame) -> bool:
    return not control_rows(df).empty


def control_success(df: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, encoder, id_weight, task_split): ``label``, ``family``, ``successes``, ``n_rollouts``,
    ``seeds``, ``policy_layer``, ``success`` (pooled over seeds) and its Wilson ``success_ci_low`` /
    ``success_ci_high``."""
    from wmprobe.control.rollout import wilson
    d = control_rows(df)
    if d.empty:
        return pd.DataFrame()
    d = d.assign(successes=np.rint(d["success"].astype(float) * d["n_rollouts"]).astype(int),
                 family=d["family"].fillna("").astype(str) if "family" in d else "",
                 task_split=d["task_split"].astype(str))
    keys = ["dataset", "encoder", "id_weight", "task_split"]
    g = d.groupby(keys)
    out = g[["successes", "n_rollouts"]].sum()
    out["seeds"] = g["seed"].nunique()
    out["family"] = g["family"].first()
    out["policy_layer"] = g["layer"].first().astype(str)
    out = out.reset_index()
    out["label"] = A.encoder_label(out)
    out["success"] = out["successes"] / out["n_rollouts"]
    ci = [wilson(int(k), int(n)) for k, n in zip(out["successes"], out["n_rollouts"])]
    out["success_ci_low"] = [c[0] for c in ci]
    out["success_ci_high"] = [c[1] for c in ci]
    return out


def _psnr_cis(df: pd.DataFrame, dataset: str) -> pd.DataFrame:
    clean = A.measured_rows(df)
    clean = clean[(clean["dataset"] == dataset) & (clean["corruption"] == "clean")]
    cols = [c for c in ("psnr_ci_low", "psnr_ci_high") if c in clean]
    if not cols:
        return pd.DataFrame(columns=["encoder", "id_weight"])
    return clean.groupby(["encoder", "id_weight"])[cols].mean().reset_index()


def control_table(df: pd.DataFrame, dataset: str, task_split: str) -> pd.DataFrame:
    """One row per encoder with a pooled success on (``dataset``, ``task_split``) and a clean headline R2 there
    (the state rows are a reference, not an encoder: left out; the floors and the ceiling are representations a
    policy reads like any other: kept). Columns: label, encoder, family, id_weight, layer (of the headline R2),
    policy_layer (the layer the policy read: the encoder's first), r2, r2_ci_low, r2_ci_high,
    r2_seed_std, seeds (probe), r2_sd, psnr, psnr_ci_low, psnr_ci_high, psnr_sd, successes, n_rollouts,
    success, success_ci_low, success_ci_high. Sorted by R2 descending."""
    succ = control_success(df)
    if succ.empty:
        return pd.DataFrame()
    succ = succ[(succ["dataset"] == dataset) & (succ["task_split"] == task_split)]
    try:
        s = A.summary_table(df, dataset)
    except ProbeError:                 # no probe cells besides the control rows
        s = pd.DataFrame()
    if succ.empty or s.empty:
        return pd.DataFrame()
    s = s[~A.is_family(s, A.STATE)]
    keep = [c for c in ("encoder", "id_weight", "layer", "r2", "r2_ci_low", "r2_ci_high", "r2_seed_std", "seeds",
                        "psnr")
            if c in s]
    t = s[keep].merge(succ.drop(columns=["dataset", "seeds"]), on=["encoder", "id_weight"], how="inner")
    t = t.merge(_psnr_cis(df, dataset), on=["encoder", "id_weight"], how="left")
    for c in ("r2_ci_low", "r2_ci_high", "r2_seed_std", "psnr", "psnr_ci_low", "psnr_ci_high"):
        if c not in t:
            t[c] = np.nan
    t = t[np.isfinite(t["r2"].astype(float))]
    seeds = t["seeds"].astype(float).clip(lower=1) if "seeds" in t else 1.0
    t["r2_sd"] = np.sqrt(np.nan_to_num((t["r2_ci_high"] - t["r2_ci_low"]) / (2 * Z95)) ** 2
                         + np.nan_to_num(t["r2_seed_std"].astype(float)) ** 2 / seeds)
    t["psnr_sd"] = np.nan_to_num((t["psnr_ci_high"] - t["psnr_ci_low"]) / (2 * Z95))
    return t.sort_values(["r2", "label"], ascending=[False, True], kind="stable").reset_index(drop=True)


def _rho_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rho of each row pair of ``a, b: (B, n)`` (average ranks for ties, as ``scipy.stats.spearmanr``);
    NaN where a row is constant."""
    from scipy.stats import rankdata
    ra, rb = rankdata(a, axis=1), rankdata(b, axis=1)
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    den = np.sqrt((ra ** 2).sum(1) * (rb ** 2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (ra * rb).sum(1) / np.where(den > 0, den, 1.0), np.nan)


def bootstrap_rhos(t: pd.DataFrame, columns: tuple[str, ...], *, n_boot: int = N_BOOT,
                   seed: int = 0) -> dict[str, np.ndarray]:
    """``{column: (n_boot,) rho}`` of drawn success against each drawn column (module doc): the same encoder
    and success draws for every column. ``columns`` among ``r2`` (noise ``r2_sd``) and ``psnr`` (``psnr_sd``)."""
    rng = np.random.default_rng(seed)
    n = len(t)
    idx = rng.integers(0, n, size=(n_boot, n))
    k, m = t["successes"].to_numpy(float), t["n_rollouts"].to_numpy(float)
    succ = rng.beta(k[idx] + 0.5, m[idx] - k[idx] + 0.5)
    out = {}
    for c in columns:
        x, sd = t[c].to_numpy(float), np.nan_to_num(t[f"{c}_sd"].to_numpy(float))
        out[c] = _rho_rows(x[idx] + sd[idx] * rng.standard_normal((n_boot, n)), succ)
    return out


def _ci(samples: np.ndarray) -> tuple[list[float] | None, int]:
    ok = samples[np.isfinite(samples)]
    if ok.size == 0:
        return None, 0
    lo, hi = np.quantile(ok, [0.025, 0.975])
    return [float(lo), float(hi)], int(ok.size)


def _undefined(t: pd.DataFrame, x: str) -> dict[str, Any] | None:
    """The explicit result when rho of success against ``x`` cannot be computed, else None."""
    what = {"r2": "an R2", "psnr": "a PSNR"}.get(x, x)
    n = len(t)
    if n < MIN_ENCODERS:
        return {"status": TOO_FEW, "rho": None, "ci": None, "n_encoders": n,
                "reason": f"{n} encoder(s) with {what} and a closed-loop success; a rank correlation needs "
                          f">= {MIN_ENCODERS}"}
    for col, name in ((x, x.upper() if x == "psnr" else "R2"), ("success", "success")):
        if np.ptp(t[col].to_numpy(float)) == 0:
            val = t[col].iloc[0]
            return {"status": CONSTANT, "rho": None, "ci": None, "n_encoders": n,
                    "reason": f"{name} is the same ({val:.3g}) for all {n} encoders: no ranking to correlate"}
    return None


def rank_correlation(t: pd.DataFrame, x: str, *, n_boot: int = N_BOOT, seed: int = 0,
                     samples: np.ndarray | None = None) -> dict[str, Any]:
    """Spearman rho of ``success`` against column ``x`` of a ``control_table`` (rows where ``x`` is finite),
    its bootstrap CI (``bootstrap_rhos``, or the given ``samples``), ``n_encoders``, ``n_boot_valid`` and
    ``status`` (module doc)."""
    from scipy.stats import spearmanr
    t = t[np.isfinite(t[x].astype(float))]
    bad = _undefined(t, x)
    if bad is not None:
        return bad
    rho = float(spearmanr(t[x].to_numpy(float), t["success"].to_numpy(float)).statistic)
    if samples is None:
        samples = bootstrap_rhos(t, (x,), n_boot=n_boot, seed=seed)[x]
    ci, valid = _ci(samples)
    return {"status": OK, "rho": rho, "ci": ci, "n_encoders": int(len(t)), "n_boot": int(len(samples)),
            "n_boot_valid": valid}


def compare(t: pd.DataFrame, *, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Any]:
    """rho(success, R2), rho(success, PSNR) and their paired difference on one ``control_table``."""
    res: dict[str, Any] = {"r2": rank_correlation(t, "r2", n_boot=n_boot, seed=seed)}
    both = t[np.isfinite(t["psnr"].astype(float))]
    why = _undefined(both, "psnr") or _undefined(both, "r2")
    if why is None:
        draws = bootstrap_rhos(both, ("r2", "psnr"), n_boot=n_boot, seed=seed)
        res["psnr"] = rank_correlation(both, "psnr", samples=draws["psnr"])
        r2_common = rank_correlation(both, "r2", samples=draws["r2"])
        ci, valid = _ci(draws["r2"] - draws["psnr"])
        res["difference"] = {"status": OK, "rho_r2_minus_rho_psnr": r2_common["rho"] - res["psnr"]["rho"],
                             "ci": ci, "n_encoders": int(len(both)), "n_boot_valid": valid}
    else:
        res["psnr"] = rank_correlation(both, "psnr")
        res["difference"] = {**{k: v for k, v in why.items() if k != "rho"}, "rho_r2_minus_rho_psnr": None}
    return res


def separation(t: pd.DataFrame) -> dict[str, Any]:
    """``success_separates`` (some pair of encoders has disjoint Wilson intervals of success),
    ``separated_pairs``, ``success_max`` and its encoder ``best`` of a ``control_table``."""
    if t.empty:
        return {"success_separates": False, "separated_pairs": 0, "success_max": None, "best": None}
    lo, hi = t["success_ci_low"].to_numpy(float), t["success_ci_high"].to_numpy(float)
    # each disjoint pair once: the higher one's low > the other's high
    pairs = int((lo[:, None] > hi[None, :]).sum())
    i = int(np.argmax(t["success"].to_numpy(float)))
    return {"success_separates": pairs > 0, "separated_pairs": pairs,
            "success_max": float(t["success"].iloc[i]), "best": str(t["label"].iloc[i]) if "label" in t else None}


def state_ceiling(succ: pd.DataFrame, dataset: str, task_split: str) -> dict[str, Any] | None:
    """The privileged-state policy's pooled success on (``dataset``, ``task_split``): ``successes``,
    ``n_rollouts``, ``success``, ``success_ci`` (Wilson); None when the study ran no state policy."""
    s = succ[(succ["dataset"] == dataset) & (succ["task_split"] == task_split) & (succ["encoder"] == A.STATE)]
    if s.empty:
        return None
    r = s.iloc[0]
    return {"successes": int(r["successes"]), "n_rollouts": int(r["n_rollouts"]), "success": float(r["success"]),
            "success_ci": [float(r["success_ci_low"]), float(r["success_ci_high"])]}


def control_findings(df: pd.DataFrame, *, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Any]:
    """``{dataset: {task_split: entry}}``, entry = ``{"state_ceiling" (``state_ceiling``), "n_encoders",
    "rho_r2_success", "rho_r2_success_ci", "rho_psnr_success", "rho_psnr_success_ci", "r2": ..., "psnr": ...,
    "difference": ..., "encoders": [...]}``
    (``r2`` / ``psnr`` / ``difference``: ``rank_correlation`` / ``compare`` results); ``{}`` without control
    rows. Deterministic for ``seed``."""
    succ = control_success(df)
    out: dict[str, Any] = {}
    if succ.empty:
        return out
    for ds in sorted(succ["dataset"].astype(str).unique()):
        splits = set(succ.loc[succ["dataset"] == ds, "task_split"])
        for sp in [s for s in SPLIT_ORDER if s in splits] + sorted(splits - set(SPLIT_ORDER)):
            t = control_table(df, ds, sp)
            if t.empty:
                t = pd.DataFrame(columns=["r2", "psnr", "success", "r2_sd", "psnr_sd", "successes", "n_rollouts"])
            c = compare(t, n_boot=n_boot, seed=seed)
            cols = [x for x in ("label", "family", "id_weight", "layer", "policy_layer", "r2", "r2_ci_low",
                                "r2_ci_high", "psnr", "psnr_ci_low", "psnr_ci_high", "success", "success_ci_low",
                                "success_ci_high", "successes", "n_rollouts") if x in t]
            out.setdefault(ds, {})[sp] = {
                "state_ceiling": state_ceiling(succ, ds, sp),
                "n_encoders": int(len(t)), "rho_r2_success": c["r2"]["rho"], "rho_r2_success_ci": c["r2"]["ci"],
                "rho_psnr_success": c["psnr"]["rho"], "rho_psnr_success_ci": c["psnr"]["ci"], **c,
                **separation(t),
                "encoders": t[cols].astype(object).where(t[cols].notna(), None).to_dict("records"),   # null, not NaN
                "policy_layer_differs": (t.loc[t["layer"].astype(str) != t["policy_layer"], "label"].tolist()
                                         if {"layer", "policy_layer"} <= set(t) else [])}
    return out


__all__ = ["MIN_ENCODERS", "bootstrap_rhos", "compare", "control_findings", "control_success", "control_table",
           "has_control", "rank_correlation", "separation", "state_ceiling"]
