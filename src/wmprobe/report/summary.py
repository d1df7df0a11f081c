"""The report's ranked summary table of one dataset as shown: ``SUMMARY_COLUMNS`` are its columns as (shown
title, column) and ``fmt_cell`` formats a cell; the table itself is ``analysis.findings.ranked_summary``
(``summary`` here, the name the report has always used)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from wmprobe.analysis.findings import ranked_summary as summary

SUMMARY_COLUMNS = [("encoder", "label"), ("family", "family"), ("tier", "tier"), ("layer", "layer"), ("R2", "r2"),
                   ("CI low", "r2_ci_low"), ("CI high", "r2_ci_high"), ("seed sd", "r2_seed_std"),
                   ("r2_norm", "r2_norm"),
                   ("R2 transl.", "r2_translation"), ("R2 rot.", "r2_rotation"), ("R2 grip.", "r2_gripper"),
                   ("grip. acc.", "acc_gripper"), ("grip. bal. acc.", "bacc_gripper"),
                   ("ridge R2", "ridge_r2"), ("shuffled R2", "shuffled_r2"), ("single-frame R2", "single_r2"),
                   ("frozen R2", "frozen_r2"), ("+ID gain", "id_gain"), ("PSNR", "psnr"), ("SSIM", "ssim"),
                   ("PSNR own dec.", "psnr_own"), ("SSIM own dec.", "ssim_own")]


def fmt_cell(v: object, digits: int = 3) -> object:
    if v is pd.NA:
        return (float("nan"), "")
    if isinstance(v, (float, np.floating)):
        return (float(v), "" if not np.isfinite(v) else f"{v:.{digits}f}")
    return v


__all__ = ["SUMMARY_COLUMNS", "fmt_cell", "summary"]
