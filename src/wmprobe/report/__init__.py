"""`wmprobe report DIR`: report.html + figures/ (PNG and SVG) + tables/ (CSV and LaTeX), from records only.

Layout written into the results directory:
    report.html                 self-contained (figures inline), opens from disk, no network
    figures/NAME.png|svg        pareto, per_axis, r2_vs_layer, r2_vs_k, robustness, transfer
    tables/summary.csv|tex      the ranked summary table
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from wmprobe.records import read_config, read_records
from wmprobe.report import figures as F
from wmprobe.report.html import esc, figure_html, page, table_html

SUMMARY_COLUMNS = [("encoder", "label"), ("family", "family"), ("layer", "layer"), ("R2", "r2"),
                   ("CI low", "r2_ci_low"), ("CI high", "r2_ci_high"), ("seed sd", "r2_seed_std"),
                   ("R2 transl.", "r2_translation"), ("R2 rot.", "r2_rotation"), ("R2 grip.", "r2_gripper"),
                   ("ridge R2", "ridge_r2"), ("shuffled R2", "shuffled_r2"), ("PSNR", "psnr"), ("SSIM", "ssim")]


def summary(df: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The ranked table for one dataset: headline mlp cell + ridge + shuffled control, per encoder."""
    h = F.headline(df, dataset=dataset)
    if h.empty:
        return h
    for probe, col in (("ridge", "ridge_r2"), (f"{F.headline_probe(df)}-shuffled", "shuffled_r2")):
        other = F.headline(df, dataset=dataset, probe=probe) if probe in set(df["probe"]) else pd.DataFrame()
        h[col] = other["r2"].reindex(h.index) if not other.empty else np.nan
    return h.reset_index()


def _fmt(v: object, digits: int = 3) -> object:
    if isinstance(v, (float, np.floating)):
        return (float(v), "" if not np.isfinite(v) else f"{v:.{digits}f}")
    return v


def _save(fig, stem: Path) -> bytes:
    stem.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(stem.with_suffix(".svg"), bbox_inches="tight")
    png = F.to_png(fig)
    stem.with_suffix(".png").write_bytes(png)
    return png


def build_report(results_dir: str | os.PathLike) -> Path:
    out = Path(results_dir)
    df = read_records(out)
    cfg = read_config(out)
    datasets = sorted(df["dataset"].unique())
    main = datasets[0]
    sections: list[tuple[str, str]] = []
    figs: list[str] = []

    summ = summary(df, main)
    tables = out / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    cols = [(t, c) for t, c in SUMMARY_COLUMNS if c in summ.columns]
    if not summ.empty:
        summ[[c for _, c in cols]].to_csv(tables / "summary.csv", index=False)
        (tables / "summary.tex").write_text(summ[[c for _, c in cols]].rename(columns=dict((c, t) for t, c in cols))
                                            .to_latex(index=False, float_format="%.3f", na_rep="--"))
    numeric = [summ[c].dtype.kind == "f" for _, c in cols] if not summ.empty else []
    rows = [[_fmt(r[c], 2 if c in ("psnr",) else 3) for _, c in cols] for _, r in summ.iterrows()]
    sections.append((f"Summary: {main}", table_html([t for t, _ in cols], rows, numeric) +
                     "<p class='note'>Encoders ranked by action R2 of the headline probe (mean over seeds; CI: "
                     "bootstrap over test episodes). 'shuffled R2' is the control pairing steps from different "
                     "episodes: it must be near or below zero. Click a header to sort.</p>"))

    h = F.headline(df, dataset=main)
    if not h.empty and h["psnr"].notna().sum() >= 2:
        from wmprobe.metrics import pareto_front
        hh = h[h["psnr"].notna()]
        front = np.asarray(pareto_front(hh["psnr"].to_numpy(), hh["r2"].to_numpy()), bool)
        fig = F.pareto_figure(hh, front)
        if fig is not None:
            on = ", ".join(hh.index[front])
            figs.append(figure_html(_save(fig, out / "figures" / "pareto"), "Fidelity vs action",
                                    f"Decoder PSNR against action R2 on {main}; on the frontier: {on}."))
    for name, fig, title, cap in (
        ("per_axis", F.per_axis_figure(h) if not h.empty else None, "Per-axis R2",
         "R2 of each action axis group (translation, rotation, gripper)."),
        ("r2_vs_layer", F.sweep_figure(df[df["dataset"] == main], "layer", "layer"), "R2 vs layer",
         "Which layer holds the action: the last one is often not the best."),
        ("r2_vs_k", F.sweep_figure(df[df["dataset"] == main], "k", "step size k"), "R2 vs k",
         "Probing steps s and s+k; the target sums the k actions in between."),
        ("robustness", F.robustness_figure(df[df["dataset"] == main]), "Robustness",
         "R2 under each corruption, frozen (solid) vs +ID (dashed)."),
    ):
        if fig is not None:
            figs.append(figure_html(_save(fig, out / "figures" / name), title, cap))
    if len(datasets) >= 2:
        figs.extend(_transfer(df, datasets[0], datasets[1], out))
    sections.append(("Figures", "\n".join(figs) if figs else "<p>No figures: too few cells.</p>"))
    if "error" in df and (df["error"].fillna("") != "").any():
        bad = df[df["error"].fillna("") != ""]
        sections.append(("Failed cells", table_html(["encoder", "dataset", "probe", "error"],
                                                    bad[["encoder", "dataset", "probe", "error"]].values.tolist(),
                                                    [False] * 4, css_class="plain")))
    sections.append(("Protocol, config and provenance", _provenance(df, cfg)))
    title = "wmprobe report"
    sub = (f"{len(df)} records, {df['encoder'].nunique()} encoders, datasets: {', '.join(datasets)}. "
           "Which representation knows what the robot did?")
    path = out / "report.html"
    path.write_text(page(title, sub, sections))
    return path


def _transfer(df: pd.DataFrame, a: str, b: str, out: Path) -> list[str]:
    from wmprobe.metrics import spearman, spearman_ci
    ha, hb = F.headline(df, dataset=a), F.headline(df, dataset=b)
    common = ha.index.intersection(hb.index)
    if len(common) < 3:
        return []
    rho = float(spearman(ha.loc[common, "r2"].to_numpy(), hb.loc[common, "r2"].to_numpy()))
    lo, hi = spearman_ci(ha.loc[common, "r2"].to_numpy(), hb.loc[common, "r2"].to_numpy())
    fig = F.transfer_figure(ha["r2"], hb["r2"], a, b, rho, (lo, hi), pd.concat([ha["family"], hb["family"]])
                            .groupby(level=0).first())
    if fig is None:
        return []
    return [figure_html(_save(fig, out / "figures" / "transfer"), "Transfer",
                        f"Per-encoder R2 on {a} vs {b}; Spearman rho of the rankings {rho:.2f} "
                        f"(95% bootstrap CI over encoders [{lo:.2f}, {hi:.2f}]).")]


def _provenance(df: pd.DataFrame, cfg: dict) -> str:
    fps = df.groupby("dataset")["dataset_fingerprint"].first().to_dict() if "dataset_fingerprint" in df else {}
    prov = cfg.get("provenance", {})
    parts = ["<p>Protocol: docs/protocol.md. Pairs never cross episodes; splits never cut an episode; "
             "probes are fit on train episodes only.</p>",
             f"<p>Data fingerprints: {esc(json.dumps(fps))}</p>",
             f"<p>Versions: {esc(json.dumps(prov.get('versions', {})))}; git {esc(prov.get('git'))}; "
             f"host {esc(prov.get('host'))}; {esc(prov.get('time'))}</p>",
             f"<pre>{esc(json.dumps(cfg.get('config', {}), indent=1, default=str))}</pre>"]
    return "\n".join(parts)
