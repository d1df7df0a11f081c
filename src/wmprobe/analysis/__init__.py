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

Modules: cells.py (headline cells, floors, ceiling, r2_norm, summary, Pareto), replicates.py (the zoo's
training-seed replicates merged), robustness.py, transfer.py
(transfer and the static-scene effect); every name is importable from ``wmprobe.analysis``.
"""
from __future__ import annotations

from wmprobe.analysis.cells import (AXES, CEILING, FLOOR_FAMILIES, HEADLINE_K, IMAGE_FAMILIES, MIN_SPAN, STATE,
                                    VIDEO_FAMILIES, _CONTROL, _keyed, _mean_cols, _norm_keys, add_r2_norm,
                                    encoder_label, floor_ceiling, headline_cells, headline_k, headline_probe,
                                    is_family, measured_rows, pareto, summary_table)
from wmprobe.analysis.robustness import (PAPER_CORRUPTIONS, PAPER_VJEPA2_ROBUSTNESS, VJEPA_FAMILIES,
                                         _corruption_parts, corruption_order, paper_robustness, robustness_curves,
                                         robustness_long, robustness_table)
from wmprobe.analysis.replicates import base_encoder, collapse_replicates, replicate_table, train_sd_summary
from wmprobe.analysis.transfer import static_gap, transfer

__all__ = ["AXES", "CEILING", "FLOOR_FAMILIES", "HEADLINE_K", "IMAGE_FAMILIES", "MIN_SPAN", "PAPER_CORRUPTIONS",
           "PAPER_VJEPA2_ROBUSTNESS", "STATE", "VIDEO_FAMILIES", "VJEPA_FAMILIES", "_CONTROL",
           "_corruption_parts", "_keyed", "_mean_cols", "_norm_keys", "add_r2_norm", "base_encoder",
           "collapse_replicates", "corruption_order", "encoder_label", "floor_ceiling", "headline_cells",
           "headline_k", "headline_probe", "is_family", "measured_rows", "paper_robustness", "pareto",
           "replicate_table", "robustness_curves", "robustness_long", "robustness_table", "static_gap",
           "summary_table", "train_sd_summary", "transfer"]
