"""Training-seed replicates of the zoo: a study with ``zoo: {replicates: R}`` trains every zoo model R times
(replicate r > 0 labelled ``zoo:FAMILY#r``, zoo seed ``seed + 1000 r``; docs/zoo.md "Training-seed replicates").

A family's R2 at a small budget is a draw over training runs: two seeds of the same recipe on the same data
can differ by more than two families do. These functions merge the replicates of a model into one row, the
mean over replicates, with the spread between them (``r2_train_sd``) beside it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from wmprobe.analysis.cells import encoder_label, summary_table

REPLICATE_SUFFIX = r"^(zoo:.+)#\d+$"   # ``zoo:vae#2``: replicate 2 of ``zoo:vae`` (the label of replicate 0)


def base_encoder(encoder: pd.Series) -> pd.Series:
    """``zoo:vae#2 -> zoo:vae``; every other name unchanged (a label of your own ending in ``#2`` included:
    only the zoo's models have replicates)."""
    return encoder.astype(str).str.replace(REPLICATE_SUFFIX, r"\1", regex=True)


def collapse_replicates(summary: pd.DataFrame) -> pd.DataFrame:
    """``summary_table`` rows with each model's replicates merged into one row (label of replicate 0): R2,
    its CI bounds and every other mean column averaged over the replicates; ``replicates`` (how many),
    ``r2_train_sd`` (sample sd of the replicates' R2, ddof = 1; NaN for one replicate), ``r2_min`` and ``r2_max``
    added. Row order: by R2 within each dataset, as ``summary_table``."""
    if summary.empty:
        return summary.assign(replicates=pd.Series(dtype=int), r2_train_sd=pd.Series(dtype=float))
    s = summary.assign(encoder=base_encoder(summary["encoder"]))
    keys = ["dataset", "encoder", "id_weight"]
    g = s.groupby(keys, sort=False)
    num = [c for c in s.columns if c not in keys and pd.api.types.is_numeric_dtype(s[c])]
    out = g[num].mean()
    firsts = [c for c in s.columns if c not in keys and c not in num]
    out[firsts] = g[firsts].first()
    out["replicates"] = g.size()
    out["r2_train_sd"] = g["r2"].std(ddof=1)
    out["r2_min"], out["r2_max"] = g["r2"].min(), g["r2"].max()
    out = out.reset_index()
    out["label"] = encoder_label(out)
    return out.sort_values(["dataset", "r2"], ascending=[True, False]).reset_index(drop=True)


def replicate_table(df: pd.DataFrame, dataset: str | None = None) -> pd.DataFrame:
    """One row per replicated zoo model (clean headline cells; empty when the study trained one replicate):
    dataset, label, family, id_weight, r2 (mean over replicates), r2_train_sd, r2_min, r2_max, replicates."""
    s = summary_table(df, dataset)
    if s.empty:
        return pd.DataFrame()
    c = collapse_replicates(s)
    c = c[c["replicates"] > 1]
    if c.empty:
        return pd.DataFrame()
    cols = ["dataset", "label", "family", "id_weight", "r2", "r2_train_sd", "r2_min", "r2_max", "replicates"]
    return c[cols].reset_index(drop=True)


def train_sd_summary(table: pd.DataFrame) -> dict[str, float]:
    """Per dataset, the pooled training-seed sd of its replicated models: ``sqrt(mean(r2_train_sd^2))``."""
    return {str(ds): float(np.sqrt(np.mean(np.square(t["r2_train_sd"].to_numpy(float)))))
            for ds, t in table.groupby("dataset")} if not table.empty else {}
