"""Analyses over a records table (pandas DataFrame, one row per measured cell and seed; see wmprobe.records).

Every function reads records only and returns a DataFrame (or a dict with one). The headline cell of an
encoder follows the report's convention: probe ``mlp`` (else the first probe that is not a ``-shuffled`` /
``-single`` control), the headline k (``HEADLINE_K`` = 4, the paper's best step size, when measured, else the
smallest k), and the encoder's most-measured layer; values are means over seeds and
CIs the mean of the per-seed bootstrap CIs over test episodes. An encoder is identified by
``(encoder, id_weight)``; its label is ``encoder`` plus `` +ID`` when ``id_weight > 0``.

- ``summary_table(df)``: per (dataset, encoder, id_weight): R2 (mean, seed sd, CI, per axis group), ``r2_norm``,
  PSNR, SSIM, and for +ID rows the frozen R2 of the same encoder and the gain.
- ``floor_ceiling(df)`` / ``add_r2_norm(df)``: per (dataset, split, corruption, probe, k) the best floor (pixels,
  random-init) and the ceiling (``encoder = ceiling``); ``r2_norm = (r2 - floor) / (ceiling - floor)``.
- ``pareto(df)``: the summary with ``on_front``: not dominated in (psnr, r2), both maximised.
- ``robustness_long`` / ``robustness_table`` / ``robustness_curves``: R2 per corruption (type, severity),
  its drop from clean, frozen vs +ID; the wide table has one column per corruption spec.
- ``transfer(df, a, b)``: Spearman rho of the encoders' R2 rankings on two datasets, bootstrap CI over encoders.
- ``static_gap(df)``: video minus image-SSL family mean R2 on the dynamic and on the static suite.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from wmprobe.errors import ProbeError

AXES = ("translation", "rotation", "gripper")
IMAGE_FAMILIES = ("image-ssl", "dinov2", "dinov3", "siglip", "siglip2", "webdino", "web-dino")
VIDEO_FAMILIES = ("videomae", "video-mae", "vjepa", "vjepa2", "video-jepa")
_CONTROL = ("-shuffled", "-single")
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
    out["r2_seed_std"] = g["r2"].std(ddof=0)
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


# ---- robustness -------------------------------------------------------------------------------------------------
def _corruption_parts(spec: str) -> tuple[str, float]:
    """``'fog:3' -> ('fog', 3)``, ``'noise:0.15' -> ('noise', 0.15)``, ``'clean' -> ('clean', 0)``."""
    name, _, arg = str(spec).partition(":")
    try:
        return name, float(arg) if arg else 0.0
    except ValueError:
        return name, float("nan")


def corruption_order(specs: Sequence[str]) -> list[str]:
    """clean, the paper's noise and blur, then ImageNet-C types by name and severity."""
    first = {"clean": 0, "noise": 1, "blur": 2}
    return sorted(set(map(str, specs)), key=lambda s: (first.get(_corruption_parts(s)[0], 3),
                                                       _corruption_parts(s)[0], _corruption_parts(s)[1]))


def robustness_long(df: pd.DataFrame, dataset: str | None = None) -> pd.DataFrame:
    """Per (dataset, encoder, id_weight, corruption): mean R2 over seeds, CI, ``drop`` = R2 - clean R2."""
    d = headline_cells(df, dataset=dataset, corruption=None)
    if d.empty:
        return pd.DataFrame()
    keys = ["dataset", "encoder", "id_weight", "corruption"]
    g = d.groupby(keys)
    out = g[[c for c in ("r2", "r2_ci_low", "r2_ci_high") if c in d]].mean()
    out["seeds"] = g["seed"].nunique()
    out["label"] = g["label"].first()
    out["family"] = g["family"].first() if "family" in d else ""
    out = out.reset_index()
    parts = out["corruption"].map(_corruption_parts)
    out["corruption_type"] = [p[0] for p in parts]
    out["severity"] = [p[1] for p in parts]
    clean = out[out["corruption"] == "clean"].set_index(["dataset", "encoder", "id_weight"])["r2"]
    out["clean_r2"] = clean.reindex(pd.MultiIndex.from_frame(out[["dataset", "encoder", "id_weight"]])).to_numpy()
    out["drop"] = out["r2"] - out["clean_r2"]
    return out


def robustness_table(df: pd.DataFrame, dataset: str | None = None) -> pd.DataFrame:
    """Wide: one row per (dataset, family, encoder, id_weight), one R2 column per corruption (ordered)."""
    long = robustness_long(df, dataset)
    if long.empty:
        return long
    wide = long.pivot_table(index=["dataset", "family", "encoder", "id_weight", "label"], columns="corruption",
                            values="r2", aggfunc="mean")
    wide = wide[corruption_order(wide.columns)]
    wide.columns.name = None
    return wide.reset_index().sort_values(["dataset", "family", "encoder", "id_weight"]).reset_index(drop=True)


def robustness_curves(df: pd.DataFrame, dataset: str | None = None) -> pd.DataFrame:
    """R2 vs severity per (family, frozen/+ID, corruption type), averaged over encoders: curve data."""
    long = robustness_long(df, dataset)
    if long.empty:
        return long
    long = long.assign(variant=np.where(long["id_weight"] > 0, "+ID", "frozen"))
    clean = long[long["corruption"] == "clean"]
    rows = [long[long["corruption"] != "clean"]]
    for t in long.loc[long["corruption"] != "clean", "corruption_type"].unique():   # severity 0 = clean
        rows.append(clean.assign(corruption_type=t, severity=0.0))
    both = pd.concat(rows, ignore_index=True)
    return (both.groupby(["dataset", "family", "variant", "corruption_type", "severity"])[["r2", "drop"]].mean()
            .reset_index())


PAPER_CORRUPTIONS = ("noise:0.15", "blur:11")
# PAPER.md, Table 1 / robustness: V-JEPA 2 L on LIBERO task-OOD, R2 clean / noise 0.15 / blur 11
PAPER_VJEPA2_ROBUSTNESS = {"frozen": (0.40, -1.18, -4.66), "+ID": (0.85, 0.66, 0.56)}
VJEPA_FAMILIES = ("vjepa", "vjepa2")   # the zoo's V-JEPA-style family and real V-JEPA 2 checkpoints


def paper_robustness(df: pd.DataFrame, dataset: str | None = None) -> pd.DataFrame:
    """This study's V-JEPA-style encoders against the paper's +ID robustness headline (PAPER_VJEPA2_ROBUSTNESS).

    One row per (dataset, encoder, +ID id_weight) where the frozen version, that +ID version, clean and both of
    the paper's corruptions were measured: R2 ``frozen_*`` / ``id_*`` for clean, noise:0.15 and blur:11, the
    drops from clean, and ``repeats``: whether the paper's pattern holds here, i.e. the +ID latents lose less R2
    than the frozen ones under BOTH corruptions (the paper: drops -1.58 / -5.06 frozen vs -0.19 / -0.29 +ID).
    """
    long = robustness_long(df, dataset)
    if long.empty:
        return pd.DataFrame()
    cols = ("clean",) + PAPER_CORRUPTIONS
    v = long[long["family"].isin(VJEPA_FAMILIES) & long["corruption"].isin(cols)]
    rows = []
    for (ds, enc), g in v.groupby(["dataset", "encoder"]):
        w = g.pivot_table(index="id_weight", columns="corruption", values="r2", aggfunc="mean")
        if 0.0 not in w.index or any(c not in w.columns for c in cols) or w.loc[0.0, list(cols)].isna().any():
            continue
        for idw in (i for i in w.index if i > 0 and not w.loc[i, list(cols)].isna().any()):
            row: dict[str, Any] = {"dataset": ds, "encoder": enc, "family": g["family"].iloc[0],
                                   "id_weight": float(idw)}
            for c in cols:
                row[f"frozen_{c}"], row[f"id_{c}"] = float(w.loc[0.0, c]), float(w.loc[idw, c])
            for c in PAPER_CORRUPTIONS:
                row[f"frozen_drop_{c}"] = row[f"frozen_{c}"] - row["frozen_clean"]
                row[f"id_drop_{c}"] = row[f"id_{c}"] - row["id_clean"]
            row["repeats"] = all(row[f"id_drop_{c}"] > row[f"frozen_drop_{c}"] for c in PAPER_CORRUPTIONS)
            rows.append(row)
    return pd.DataFrame(rows)


# ---- transfer and the static-scene effect ----------------------------------------------------------------------
def transfer(df: pd.DataFrame, dataset_a: str, dataset_b: str, *, n_boot: int = 1000,
             seed: int = 0) -> dict[str, Any]:
    """Spearman rho of the clean headline R2 of the encoders measured on both datasets, with a bootstrap CI (the
    ceiling and the state rows are references, not encoders: left out)."""
    from wmprobe.metrics import spearman, spearman_ci
    s = summary_table(df)
    if s.empty:
        raise ProbeError("transfer: the records hold no clean headline cells")
    s = s[~is_family(s, (CEILING, STATE))]
    a = s[s["dataset"] == dataset_a].set_index("label")["r2"]
    b = s[s["dataset"] == dataset_b].set_index("label")["r2"]
    common = a.index.intersection(b.index)
    if len(common) < 3:
        raise ProbeError(f"transfer: {len(common)} encoder(s) measured on both {dataset_a!r} and {dataset_b!r}; "
                         f"need >= 3 (datasets present: {sorted(s['dataset'].unique())})")
    table = pd.DataFrame({"r2_a": a[common], "r2_b": b[common]})
    table["rank_a"] = table["r2_a"].rank(ascending=False)
    table["rank_b"] = table["r2_b"].rank(ascending=False)
    rho = spearman(table["r2_a"].to_numpy(), table["r2_b"].to_numpy())
    lo, hi = spearman_ci(table["r2_a"].to_numpy(), table["r2_b"].to_numpy(), n_boot=n_boot, seed=seed)
    return {"dataset_a": dataset_a, "dataset_b": dataset_b, "rho": float(rho), "rho_ci_low": lo,
            "rho_ci_high": hi, "n_encoders": int(len(common)), "table": table.sort_values("rank_a")}


def static_gap(df: pd.DataFrame, dynamic: str = "dynamic", static: str = "static", *,
               image_families: Sequence[str] = IMAGE_FAMILIES,
               video_families: Sequence[str] = VIDEO_FAMILIES, frozen_only: bool = True) -> pd.DataFrame:
    """Per suite: mean clean R2 of image-SSL and of video families and ``gap = video - image``.

    The paper's static-scene effect is a smaller gap on the static suite (image priors suffice when the scene
    does not move); ``attrs['gap_change']`` holds gap(dynamic) - gap(static).
    """
    s = summary_table(df)
    if s.empty:
        raise ProbeError("static_gap: the records hold no clean headline cells")
    if frozen_only:
        s = s[s["id_weight"] == 0]
    rows = []
    for suite in (dynamic, static):
        d = s[s["dataset"] == suite]
        img = d[d["family"].isin(image_families)]["r2"]
        vid = d[d["family"].isin(video_families)]["r2"]
        if img.empty or vid.empty:
            raise ProbeError(f"static_gap: suite {suite!r} needs encoders of both an image family "
                             f"{list(image_families)} and a video family {list(video_families)}; it has families "
                             f"{sorted(d['family'].unique())}")
        rows.append({"dataset": suite, "image_r2": float(img.mean()), "video_r2": float(vid.mean()),
                     "gap": float(vid.mean() - img.mean()), "n_image": int(len(img)), "n_video": int(len(vid))})
    out = pd.DataFrame(rows)
    out.attrs["gap_change"] = float(out["gap"].iloc[0] - out["gap"].iloc[1])
    return out
