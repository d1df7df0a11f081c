"""The findings of a records table: the numbers behind the report's verdict, its "Findings" section and
findings.json. Computed here from records only; ``wmprobe.report`` renders them and computes nothing.

- ``ranked_summary(df, dataset)``: the ranked table of one dataset (the headline cell per encoder, its ridge,
  shuffled-pairs and single-frame control R2, its CI tier).
- ``dataset_findings(summ, par, rob)``: one dataset's findings: the best encoder, the best floor and who is
  above it, the shuffled control's maximum, fidelity vs action (Spearman rho, the Pareto front), +ID's gains.
- ``transfers(df, datasets)``: ``analysis.transfer`` of every pair of datasets that allows one;
  ``suite_gap(df, datasets)``: the static-scene effect when both embedded suites are present;
  ``across_findings(...)``: what findings.json says of them.

It builds on ``wmprobe.verdict`` (roles and tiers), which builds on the rest of ``wmprobe.analysis``: import it
as ``wmprobe.analysis.findings`` (the package does not re-export it).
"""
from __future__ import annotations

import itertools
from typing import Any, Sequence

import numpy as np
import pandas as pd

from wmprobe import analysis as A
from wmprobe import verdict as V
from wmprobe.errors import ProbeError
from wmprobe.probes.spec import CONTROLS

#: the embedded suites whose gap is the static-scene effect (``analysis.static_gap``'s defaults)
GAP_SUITES = ("dynamic", "static")


def ranked_summary(df: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The ranked table for one dataset: the headline cell per encoder, plus the same encoder's ridge R2, the
    shuffled-pairs and single-frame control R2 (NaN where not measured) and its CI tier (``verdict.tiers``)."""
    s = A.summary_table(df, dataset)
    if s.empty:
        return s
    keys = ["encoder", "id_weight"]
    present = set(df["probe"].astype(str))
    head = A.headline_probe(A.measured_rows(df))
    # the ridge probe and each control of the headline probe: ridge_r2, shuffled_r2, single_r2
    for probe, col in (("ridge", "ridge_r2"), *((f"{head}-{c}", f"{c}_r2") for c in CONTROLS)):
        other = A.summary_table(df, dataset, probe=probe) if probe in present else pd.DataFrame()
        s[col] = (s[keys].merge(other[keys + ["r2"]], on=keys, how="left")["r2"].to_numpy()
                  if not other.empty else np.nan)
    s["tier"] = V.tiers(s).astype("Int64")      # encoders only; the floors, ceiling and state rows: empty
    return s


def dataset_findings(summ: pd.DataFrame, par: pd.DataFrame, rob: pd.DataFrame) -> dict[str, Any]:
    """One dataset's findings from its ranked summary ``summ``, its Pareto table ``par`` (``analysis.pareto``)
    and its long robustness table ``rob`` (``analysis.robustness_long``); {} without a summary."""
    from wmprobe.metrics import spearman
    f: dict[str, Any] = {}
    if summ.empty:
        return f
    cand = summ[V.roles(summ) == "encoder"]
    top = (cand if not cand.empty else summ).iloc[0]
    f["best"] = {"label": top["label"], "r2": top["r2"], "ci": [top.get("r2_ci_low"), top.get("r2_ci_high")]}
    floors = summ[summ["family"].isin(A.FLOOR_FAMILIES)]
    if not floors.empty:
        fl = floors.sort_values("r2", ascending=False).iloc[0]
        f["best_floor"] = {"label": fl["label"], "r2": fl["r2"], "ci_high": fl.get("r2_ci_high")}
        f["above_floor"] = cand[cand["r2_ci_low"] > fl["r2"]]["label"].tolist() if "r2_ci_low" in cand else []
    if "shuffled_r2" in summ and summ["shuffled_r2"].notna().any():
        f["shuffled_max"] = float(summ["shuffled_r2"].max())
    if not par.empty and "psnr" in par and par["psnr"].notna().sum() >= 3:
        q = par[par["psnr"].notna()]
        f["fidelity"] = {"spearman_psnr_r2": spearman(q["psnr"].to_numpy(float), q["r2"].to_numpy(float)),
                         "n": int(len(q)), "on_front": q.loc[q["on_front"], "label"].tolist(),
                         "highest_psnr": q.sort_values("psnr").iloc[-1]["label"],
                         "highest_psnr_r2_rank": int(summ["label"].tolist().index(q.sort_values("psnr")
                                                                                  .iloc[-1]["label"]) + 1)}
    pairs = summ[(summ["id_weight"] > 0) & summ["frozen_r2"].notna()]
    if not pairs.empty:
        f["id"] = {"families": int(len(pairs)), "raised": int((pairs["id_gain"] > 0).sum()),
                   "mean_gain": float(pairs["id_gain"].mean())}
        if not rob.empty and (rob["corruption"] != "clean").any():
            c = rob[rob["corruption"] != "clean"]
            both = set(pairs["encoder"])
            c = c[c["encoder"].isin(both)]
            f["id"]["mean_drop_frozen"] = float(c[c["id_weight"] == 0]["drop"].mean())
            f["id"]["mean_drop_id"] = float(c[c["id_weight"] > 0]["drop"].mean())
    return f


def transfers(df: pd.DataFrame, datasets: Sequence[str]) -> list[dict[str, Any]]:
    """``analysis.transfer`` of every pair of ``datasets`` (in ``itertools.combinations`` order) with enough
    encoders measured on both; a pair without them is left out."""
    out = []
    for a, b in itertools.combinations(datasets, 2):
        try:
            out.append(A.transfer(df, a, b))
        except ProbeError:
            continue
    return out


def suite_gap(df: pd.DataFrame, datasets: Sequence[str]) -> pd.DataFrame | None:
    """``analysis.static_gap`` when both ``GAP_SUITES`` are among ``datasets`` and they hold encoders of both an
    image and a video family, else None."""
    if not set(GAP_SUITES) <= set(datasets):
        return None
    try:
        return A.static_gap(df, *GAP_SUITES)
    except ProbeError:
        return None


def across_findings(pairs: Sequence[dict[str, Any]], gap: pd.DataFrame | None) -> dict[str, Any]:
    """findings.json's ``transfer`` (per ``"A|B"``: rho, its CI, the number of encoders) and ``static_gap``
    (the table and the change of the gap), each only when there is one."""
    out: dict[str, Any] = {}
    if pairs:
        out["transfer"] = {f"{t['dataset_a']}|{t['dataset_b']}": {k: v for k, v in t.items() if k != "table"}
                           for t in pairs}
    if gap is not None:
        out["static_gap"] = {"table": gap.to_dict("records"), "gap_change": gap.attrs["gap_change"]}
    return out
