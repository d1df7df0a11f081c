"""The headline cell of every encoder and what is computed from it: floors, ceiling and ``r2_norm``, the
summary table, the Pareto front of fidelity and action R2 (the conventions are in ``wmprobe.analysis``'s doc).

Records tables are pandas DataFrames, one row per measured (cell, seed); each function returns a DataFrame.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from wmprobe.errors import ProbeError
from wmprobe.probes.spec import CONTROLS

AXES = ("translation", "rotation", "gripper")
IMAGE_FAMILIES = ("image-ssl", "dinov2", "dinov3", "siglip", "siglip2", "webdino", "web-dino")
VIDEO_FAMILIES = ("videomae", "video-mae", "vjepa", "vjepa2", "video-jepa")
_CONTROL = tuple(f"-{c}" for c in CONTROLS)   # a control's rows: ``<probe>-shuffled``, ``<probe>-single``
HEADLINE_K = 4     # the paper's best step size (PAPER.md); used for the headline when a study measured it
FLOOR_FAMILIES = ("pixels", "random")   # the pixel floor (pixels:N) and the random-init trunk (random-conv:SEED)
CEILING = "ceiling"   # the shared trunk trained end to end on the inverse-dynamics objective alone (zoo)
STATE = "state"       # the same probe on the dataset's proprioceptive state (the data's own ceiling)
MIN_SPAN = 0.05       # r2_norm is NaN unless the ceiling clears the best floor by at least this much R2


def headline_k(ks: Sequence[int] | pd.Series) -> int:
    """``HEADLINE_K`` when among the measured ``ks``, else the smallest measured k."""
    ks = sorted({int(k) for k in ks})
    if not ks:
        raise ProbeError("records hold no k")
    return HEADLINE_K if HEADLINE_K in ks else ks[0]


def encoder_label(d: pd.DataFrame) -> pd.Series:
    """``encoder`` plus `` +ID`` where ``id_weight > 0``: how tables and figures name an encoder."""
    return d["encoder"].astype(str) + np.where(d["id_weight"].astype(float) > 0, " +ID", "")


def measured_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows without an error (``id_weight`` NaN read as 0) of the paper's protocol: probes fit on clean
    train latents (rows of a ``corrupt_train`` study's augmented fits, ``train_corruption`` != clean, and rows of
    imagined latents, ``latents = imagined``, are left out); ProbeError if a needed column is missing."""
    need = {"encoder", "id_weight", "dataset", "corruption", "layer", "probe", "k", "seed", "r2"}
    missing = sorted(need - set(df.columns))
    if missing:
        raise ProbeError(f"records table lacks column(s) {missing}; is it a wmprobe records file?")
    d = df[df["error"].fillna("").astype(str) == ""] if "error" in df else df
    d = d[d["probe"].astype(str) != "bc-policy"]   # closed-loop control rows (study `control:`) are no probe cells
    if "train_corruption" in d:
        d = d[d["train_corruption"].fillna("clean").astype(str) == "clean"]
    if "latents" in d:   # probes of a world model's imagined latents (probe_imagined) are reported beside, not in
        d = d[d["latents"].fillna("real").astype(str) == "real"]
    return d.assign(id_weight=d["id_weight"].astype(float).fillna(0.0))


def headline_probe(df: pd.DataFrame) -> str:
    """``mlp`` if measured, else the first (sorted) probe that is not a control."""
    probes = sorted(p for p in df["probe"].astype(str).unique() if not p.endswith(_CONTROL))
    if not probes:
        raise ProbeError("records hold no probe rows other than controls")
    return "mlp" if "mlp" in probes else probes[0]


def headline_cells(df: pd.DataFrame, *, dataset: str | None = None, corruption: str | None = "clean",
                   probe: str | None = None) -> pd.DataFrame:
    """Rows of each encoder's headline cell (all seeds); ``corruption=None`` keeps every corruption."""
    d = measured_rows(df)
    d = d[d["probe"] == (probe or headline_probe(d))]
    if dataset is not None:
        d = d[d["dataset"] == dataset]
    if corruption is not None:
        d = d[d["corruption"] == corruption]
    if d.empty:
        return d.assign(label=pd.Series(dtype=str))
    d = d[d["k"] == headline_k(d["k"])].assign(label=encoder_label(d))
    # most-measured layer per (dataset, encoder), decided on all its rows so corruptions share the layer
    layer = d.groupby(["dataset", "label"])["layer"].agg(lambda s: s.value_counts().sort_index().idxmax())
    return d[d["layer"] == pd.Series(list(zip(d["dataset"], d["label"])), index=d.index).map(layer)]


def _mean_cols(d: pd.DataFrame) -> list[str]:
    cols = ["r2", "r2_ci_low", "r2_ci_high", "r2_norm", *(f"r2_{a}" for a in AXES), "acc_gripper", "bacc_gripper",
            "psnr", "ssim", "psnr_own", "ssim_own"]
    return [c for c in cols if c in d]


# ---- floors, ceiling and r2_norm -------------------------------------------------------------------------------
def is_family(d: pd.DataFrame, name: str | Sequence[str]) -> pd.Series:
    """Rows whose ``family`` or ``encoder`` is ``name`` (or one of the names): floors are named by family
    (``pixels``, ``random``), the ceiling and the state rows by both."""
    names = {name} if isinstance(name, str) else set(name)
    fam = d["family"].fillna("").astype(str) if "family" in d else pd.Series("", index=d.index)
    return fam.isin(names) | d["encoder"].astype(str).isin(names)


def _norm_keys(d: pd.DataFrame) -> list[str]:
    return [c for c in ("dataset", "split", "corruption", "probe", "k", "train_corruption") if c in d]


def _keyed(d: pd.DataFrame) -> pd.DataFrame:
    """The r2_norm key columns of ``d`` with missing values made comparable (NaN split / train_corruption)."""
    k = d[_norm_keys(d)].copy()
    for c in ("split", "corruption", "probe", "dataset"):
        if c in k:
            k[c] = k[c].fillna("").astype(str)
    if "train_corruption" in k:
        k["train_corruption"] = k["train_corruption"].fillna("clean").astype(str)
    return k


def floor_ceiling(df: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, split, corruption, probe, k[, train_corruption]): ``floor`` = the best floor, i.e. the
    largest seed-mean R2 among the floor encoders (``FLOOR_FAMILIES``), with ``floor_label``; ``ceiling`` = the
    seed-mean R2 of the ``ceiling`` encoder (NaN where it was not measured). Each reference encoder is read at
    its headline layer (its most-measured layer at the headline probe and k, as ``headline_cells``; where a
    group lacks that layer, its best layer there). Rows with an error or a NaN R2 take no part."""
    need = {"encoder", "dataset", "corruption", "probe", "k", "r2", "layer"}
    if need - set(df.columns):
        return pd.DataFrame()
    d = df[df["error"].fillna("").astype(str) == ""] if "error" in df else df
    d = d[np.isfinite(d["r2"].astype(float)) & (d["probe"].astype(str) != "bc-policy")]
    if d.empty:
        return pd.DataFrame()
    keys = _norm_keys(d)
    ident = ["dataset", "encoder", "id_weight"]
    d = pd.concat([_keyed(d), d[["encoder", "layer"]].astype(str), d["r2"].astype(float),
                   d["id_weight"].astype(float).fillna(0.0) if "id_weight" in d else pd.Series(0.0, index=d.index)
                   .rename("id_weight")], axis=1)
    d = d.assign(floor_=is_family(df.loc[d.index], FLOOR_FAMILIES), ceil_=is_family(df.loc[d.index], CEILING))
    d = d[d["floor_"] | d["ceil_"]]
    if d.empty:
        return pd.DataFrame()
    probes = [p for p in d["probe"].unique() if not str(p).endswith(_CONTROL)]
    head = d[d["probe"] == ("mlp" if "mlp" in probes else min(probes, default=""))]
    head = head[head["k"] == headline_k(head["k"])] if not head.empty else head
    layer = head.groupby(ident)["layer"].agg(lambda s: s.value_counts().sort_index().idxmax())
    enc = ["encoder", "id_weight"]             # "dataset" is one of the keys
    m = d.groupby(keys + enc + ["layer", "floor_", "ceil_"])["r2"].mean().reset_index()
    want = layer.to_dict()
    m["pref"] = [want.get(t) == lay for t, lay in zip(zip(m["dataset"], m["encoder"], m["id_weight"]), m["layer"])]
    m = m.sort_values(keys + enc + ["pref", "r2"], ascending=[True] * (len(keys) + 2) + [False, False],
                      kind="stable").groupby(keys + enc).first().reset_index()
    out = []
    for flag, name in (("floor_", "floor"), ("ceil_", "ceiling")):
        sub = m[m[flag]].sort_values(keys + ["r2", "encoder"], ascending=[True] * len(keys) + [False, True],
                                     kind="stable")
        if not sub.empty:
            best = sub.groupby(keys, sort=True).first().reset_index()
            out.append(best[keys + ["r2", "encoder"]].rename(columns={"r2": name, "encoder": f"{name}_label"}))
    res = out[0] if len(out) == 1 else out[0].merge(out[1], on=keys, how="outer")
    for name in ("floor", "ceiling"):
        if name not in res:
            res[name], res[f"{name}_label"] = np.nan, ""
    return res.sort_values(keys).reset_index(drop=True)


def add_r2_norm(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with ``r2_norm = (r2 - floor) / (ceiling - floor)`` (see ``floor_ceiling``; any old r2_norm column
    is recomputed): 0 at the best floor, 1 at the ceiling. NaN for rows with an error, for the controls
    (``-shuffled`` / ``-single`` probes measure leakage, not a place on this scale), where the cell's group has
    no ceiling or no floor, or where the ceiling clears the floor by less than ``MIN_SPAN``; NaN for closed-loop
    control rows (``bc-policy``)."""
    fc = floor_ceiling(df)
    nan = np.full(len(df), np.nan)
    if fc.empty or fc["ceiling"].isna().all() or fc["floor"].isna().all():
        return df.assign(r2_norm=nan)
    keys = _norm_keys(df)
    m = _keyed(df).reset_index(drop=True).merge(fc, on=keys, how="left")
    floor, ceil = m["floor"].to_numpy(float), m["ceiling"].to_numpy(float)
    r2 = df["r2"].to_numpy(float)
    probe = df["probe"].astype(str)
    ok = (ceil - floor >= MIN_SPAN) & ~(probe.str.endswith(_CONTROL) | (probe == "bc-policy")).to_numpy()
    if "error" in df:
        ok &= (df["error"].fillna("").astype(str) == "").to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return df.assign(r2_norm=np.where(ok, (r2 - floor) / (ceil - floor), nan))


def summary_table(df: pd.DataFrame, dataset: str | None = None, probe: str | None = None) -> pd.DataFrame:
    """One row per (dataset, encoder, id_weight) on clean data, ranked by R2 within each dataset
    (``probe``: another probe's cells, e.g. ``ridge`` or the ``mlp-shuffled`` control; default the headline)."""
    d = headline_cells(add_r2_norm(df), dataset=dataset, probe=probe)
    if d.empty:
        return pd.DataFrame()
    keys = ["dataset", "encoder", "id_weight"]
    g = d.groupby(keys)
    out = g[_mean_cols(d)].mean()
    # the sample sd over probe seeds (ddof = 1, as metrics.seed_summary; 0 for a single seed): with 3 seeds the
    # population sd would read 18 % lower
    out["r2_seed_std"] = g["r2"].std(ddof=1).fillna(0.0)
    out["seeds"] = g["seed"].nunique()
    out["label"], out["layer"], out["k"] = g["label"].first(), g["layer"].first(), g["k"].first()
    out["family"] = g["family"].first() if "family" in d else ""
    clean = measured_rows(df)
    clean = clean[clean["corruption"] == "clean"]
    for c in ("psnr", "ssim", "psnr_own", "ssim_own"):   # measured once per encoder: any clean row with it
        if c in out:
            out[c] = out[c].fillna(clean.groupby(keys)[c].mean().reindex(out.index))
    out = out.reset_index()
    frozen = out[out["id_weight"] == 0].set_index(["dataset", "encoder"])["r2"]
    idx = pd.MultiIndex.from_frame(out[["dataset", "encoder"]])
    out["frozen_r2"] = np.where(out["id_weight"] > 0, frozen.reindex(idx).to_numpy(), np.nan)
    out["id_gain"] = out["r2"] - out["frozen_r2"]
    return out.sort_values(["dataset", "r2"], ascending=[True, False]).reset_index(drop=True)


def pareto(df: pd.DataFrame, dataset: str | None = None) -> pd.DataFrame:
    """``summary_table`` rows with ``on_front``: not dominated in (psnr, r2); rows without PSNR are never on it."""
    from wmprobe.metrics import pareto_front
    s = summary_table(df, dataset)
    if s.empty:
        return s
    s["on_front"] = False
    for _, rows in s.groupby("dataset"):
        psnr = rows["psnr"].to_numpy(float) if "psnr" in rows else np.full(len(rows), np.nan)
        s.loc[rows.index, "on_front"] = pareto_front(psnr, rows["r2"].to_numpy(float))
    return s
