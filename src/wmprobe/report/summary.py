"""The report's ranked summary table of one dataset: the headline cell per encoder with its ridge, shuffled and
single-frame control R2 and its CI tier; ``SUMMARY_COLUMNS`` are its columns as (shown title, column)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from wmprobe import analysis as A
from wmprobe import verdict as V

SUMMARY_COLUMNS = [("encoder", "label"), ("family", "family"), ("tier", "tier"), ("layer", "layer"), ("R2", "r2"),
                   ("CI low", "r2_ci_low"), ("CI high", "r2_ci_high"), ("seed sd", "r2_seed_std"),
                   ("r2_norm", "r2_norm"),
                   ("R2 transl.", "r2_translation"), ("R2 rot.", "r2_rotation"), ("R2 grip.", "r2_gripper"),
                   ("grip. acc.", "acc_gripper"), ("grip. bal. acc.", "bacc_gripper"),
                   ("ridge R2", "ridge_r2"), ("shuffled R2", "shuffled_r2"), ("single-frame R2", "single_r2"),
                   ("frozen R2", "frozen_r2"), ("+ID gain", "id_gain"), ("PSNR", "psnr"), ("SSIM", "ssim"),
                   ("PSNR own dec.", "psnr_own"), ("SSIM own dec.", "ssim_own")]


def summary(df: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The ranked table for one dataset: the headline cell per encoder, plus the same encoder's ridge R2, the
    shuffled-pairs and single-frame control R2 (NaN where not measured) and its CI tier (``verdict.tiers``)."""
    s = A.summary_table(df, dataset)
    if s.empty:
        return s
    keys = ["encoder", "id_weight"]
    present = set(df["probe"].astype(str))
    head = A.headline_probe(A.measured_rows(df))
    for probe, col in (("ridge", "ridge_r2"), (f"{head}-shuffled", "shuffled_r2"), (f"{head}-single", "single_r2")):
        other = A.summary_table(df, dataset, probe=probe) if probe in present else pd.DataFrame()
        s[col] = (s[keys].merge(other[keys + ["r2"]], on=keys, how="left")["r2"].to_numpy()
                  if not other.empty else np.nan)
    s["tier"] = V.tiers(s).astype("Int64")      # encoders only; the floors, ceiling and state rows: empty
    return s



def fmt_cell(v: object, digits: int = 3) -> object:
    if v is pd.NA:
        return (float("nan"), "")
    if isinstance(v, (float, np.floating)):
        return (float(v), "" if not np.isfinite(v) else f"{v:.{digits}f}")
    return v
