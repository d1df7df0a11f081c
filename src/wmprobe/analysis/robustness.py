"""Robustness: R2 per corruption (type, severity) and its drop from clean, frozen vs +ID, in long, wide and
curve form; this study's V-JEPA-style encoders against the paper's +ID robustness headline.

Each function takes a records DataFrame (and optionally a dataset) and returns a DataFrame.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from wmprobe.analysis.cells import headline_cells


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
