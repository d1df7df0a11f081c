"""`wmprobe report DIR`: report.html + figures/ (PNG and SVG) + tables/ (CSV and LaTeX), from records only.

Every number in the report comes from ``wmprobe.analysis`` over DIR/records.parquet (or .csv), the findings
from ``wmprobe.analysis.findings``; the report renders them and computes nothing. Layout written into the
results directory (MAIN = the first dataset by name; other datasets get the same files with ``-DATASET``
appended to the stem):

    report.html                     self-contained (figures inline), opens from disk, no network; it opens with
                                    the verdict (<p id="verdict">) and the headline figure, then the tables
    figures/headline.png|svg        R2 with CI per encoder at the headline k vs the floors and the ceiling (MAIN)
    figures/r2_norm.png|svg         r2_norm per encoder (0 = best floor, 1 = ceiling), per dataset with a ceiling
    figures/pareto.png|svg          fidelity (PSNR) vs action R2, frontier highlighted, per dataset
    figures/per_axis.png|svg        R2 per axis group (translation / rotation / gripper), per dataset
    figures/id_effect.png|svg       frozen -> +ID, clean and under corruption, per dataset
    figures/r2_vs_layer.png|svg     R2 vs layer, per dataset (encoders with >= 2 layers)
    figures/r2_vs_k.png|svg         R2 vs step size k, per dataset
    figures/robustness.png|svg      R2 vs corruption severity, frozen vs +ID, per dataset
    figures/transfer.png|svg        rankings on two benchmarks with Spearman rho
    figures/control.png|svg         closed-loop success vs R2 per encoder, per task split (study `control:`)
    tables/summary.csv|tex          the ranked summary of MAIN (summary-DATASET.csv for the others)
    tables/pareto.csv               every dataset: label, psnr, r2, on_front
    tables/robustness.csv|tex       R2 per corruption, frozen vs +ID (wide); robustness_long.csv (with drops)
    tables/transfer.csv             per-encoder R2 and ranks on each dataset pair, rho in transfer.json
    tables/static_gap.csv           video minus image-SSL mean R2 on the dynamic and the static suite
    tables/control.csv              per dataset, task split and encoder: R2, PSNR, pooled success (Wilson CI)
    tables/failed.csv               cells that failed, with their error (only when some did)
    findings.json                   the numbers behind the verdict and the "Findings" section
                                    (per_dataset.DATASET.verdict: tiers, CI separation, +ID, Table 1, limits;
                                    control.DATASET.SPLIT: rho of success with R2 and with PSNR, bootstrap CIs)

Figures are PNG at ``report.style.DPI`` (160) with one colour per family throughout (``report.style``).
The work is split by job: summary.py (the ranked table's columns), build.py (the report's sections, figures,
tables and findings.json), figures.py + curves.py (the figures), text.py (verdict and findings prose), html.py
(the page), publish.py (the atomic publication), control.py (the closed-loop section).
"""
from __future__ import annotations

import os
from pathlib import Path

from wmprobe.analysis.findings import dataset_findings as _dataset_findings
from wmprobe.report.build import build
from wmprobe.report.summary import SUMMARY_COLUMNS, summary
from wmprobe.report.text import SHUFFLED_LIMIT, SPLITS, audit_html, findings_html, verdict_html

_build = build   # the name it had here

__all__ = ["SHUFFLED_LIMIT", "SPLITS", "SUMMARY_COLUMNS", "audit_html", "build_report", "findings_html", "summary",
           "verdict_html", "_dataset_findings"]


def build_report(results_dir: str | os.PathLike) -> Path:
    """Write report.html, figures/, tables/ and findings.json into ``results_dir`` (which holds records),
    atomically: built in a temp directory, then renamed into place (``wmprobe.report.publish``)."""
    from wmprobe.report.publish import publishing, records_digest
    out = Path(results_dir)
    digest = records_digest(out)
    with publishing(out, digest) as tmp:
        build(out, tmp)
    return out / "report.html"

