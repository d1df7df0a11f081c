"""The report's body: for each dataset its table, verdict, figures and findings, then the sections across
datasets (transfer, the static-scene effect), closed-loop control, failed cells and provenance; written into
a directory that ``report.build_report`` publishes atomically. Layout of what it writes: ``wmprobe.report``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wmprobe import analysis as A
from wmprobe import verdict as V
from wmprobe.analysis import findings as AF
from wmprobe.errors import ProbeError
from wmprobe.records import read_config, read_records
from wmprobe.report import figures as F   # looked up at call time (tests replace a figure to make it fail)
from wmprobe.report.html import esc, figure_html, page, table_html
from wmprobe.report.summary import SUMMARY_COLUMNS, summary
from wmprobe.report.summary import fmt_cell as _fmt
from wmprobe.report.text import SPLITS, audit_html, findings_html, verdict_html


def _save(fig, stem: Path) -> bytes:
    """SVG and PNG (``report.style.DPI``) of ``fig`` under ``stem``; returns the PNG bytes (closes the figure)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(stem.with_suffix(".svg"), bbox_inches="tight")
    png = F.to_png(fig)
    stem.with_suffix(".png").write_bytes(png)
    return png


def _stem(name: str, dataset: str, main: str) -> str:
    return name if dataset == main else f"{name}-{dataset}"


def _latex(d: pd.DataFrame, path: Path) -> None:
    path.write_text(d.to_latex(index=False, float_format="%.3f", na_rep="--"))


def build(out: Path, dest: Path) -> Path:
    """The report of the records in ``out``, written into ``dest``."""
    df = read_records(out)
    cfg = read_config(out)
    ok = A.measured_rows(df)
    if ok.empty:
        raise ProbeError(f"{out}: every cell in the records failed; nothing to report (see the 'error' column)")
    datasets = sorted(ok["dataset"].astype(str).unique())
    main = datasets[0]
    tables, figdir = dest / "tables", dest / "figures"
    tables.mkdir(parents=True, exist_ok=True)
    findings: dict[str, Any] = {"datasets": datasets, "headline_probe": A.headline_probe(ok),
                                "small_test_episodes": V.SMALL_TEST_EPISODES}
    sections: list[tuple[str, str]] = []
    headline_fig = ""
    per_dataset: list[tuple[str, str]] = []
    pareto_all, rob_all = [], []

    for ds in datasets:
        summ = summary(df, ds)
        cols = [(t, c) for t, c in SUMMARY_COLUMNS if c in summ.columns]
        if not summ.empty:
            csv = summ[[c for _, c in cols]]
            csv.to_csv(tables / f"{_stem('summary', ds, main)}.csv", index=False)
            _latex(csv.rename(columns={c: t for t, c in cols}), tables / f"{_stem('summary', ds, main)}.tex")
        numeric = [summ[c].dtype.kind in "fi" for _, c in cols] if not summ.empty else []
        digits = {c: 2 if c.startswith("psnr") else 0 if c == "tier" else 3 for _, c in cols}
        rows = [[_fmt(r[c], digits[c]) for _, c in cols] for _, r in summ.iterrows()]
        body = [table_html([t for t, _ in cols], rows, numeric),
                "<p class='note'>Encoders ranked by action R2 of the headline probe (mean over seeds; CI: "
                "bootstrap over test episodes). 'tier': CI-separated tiers (docs/protocol.md). 'r2_norm': "
                "(R2 - best floor) / (ceiling - best floor). 'shuffled R2' pairs steps from different episodes: "
                "it must be near or below zero. '+ID gain' is R2 minus the frozen R2 of the same family. Click a "
                "header to sort.</p>"]
        reps = A.replicate_table(df, ds)
        train_sd = A.train_sd_summary(reps).get(ds, float("nan"))
        if not reps.empty:
            body.append(_replicates_html(reps, train_sd, tables / f"{_stem('replicates', ds, main)}.csv"))
        verdict = V.dataset_verdict(df, summ, cfg, ds)
        body.append(audit_html(verdict.get("limits", {})))
        head = verdict.get("headline", {})
        groups = [g for x in head.get("headline_groups", []) for g in x.split("+") if g != "all-dims"]
        figs = []
        if ds == main and not summ.empty:
            hf = F.headline_figure(summ, summ["tier"], ds, head.get("k", A.HEADLINE_K))
            if hf is not None:
                headline_fig = figure_html(_save(hf, figdir / "headline"), "Headline",
                                           _headline_caption(summ, head, ds, hf), fig_id="headline-figure")
        nf = F.r2_norm_figure(summ, ds)
        if nf is not None:
            figs.append(figure_html(_save(nf, figdir / _stem("r2_norm", ds, main)), "Between floor and ceiling",
                                    "r2_norm per encoder: 0 is the best floor (pixels, random-init), 1 the ceiling "
                                    "(the trunk trained on inverse dynamics alone); colour = family, hatched = +ID. "
                                    + _note(nf)))
        par = A.pareto(df, ds)
        if not par.empty:
            pareto_all.append(par)
            fig = F.pareto_figure(par, ds)
            if fig is not None:
                on = ", ".join(par.loc[par["on_front"], "label"])
                note = _note(fig)
                figs.append(figure_html(_save(fig, figdir / _stem("pareto", ds, main)), "Fidelity vs action",
                                        f"Decoder-probe PSNR against action R2 on {ds} (colour = family, square = "
                                        f"+ID, bars: R2 CI; a label moved off its point has a leader line); on "
                                        f"the frontier (outlined, dashed): {on}. {note}"))
        rob = A.robustness_long(df, ds)
        if not rob.empty:
            rob_all.append(rob)
        clean = ok[(ok["dataset"] == ds) & (ok["corruption"] == "clean") &
                   (ok["probe"] == findings["headline_probe"])].assign(label=A.encoder_label)
        ide = F.id_effect_figure(summ, rob if not rob.empty else None)
        id_cap = ("Frozen -> +ID per encoder (id_weight in the label): an arrow from the frozen clean R2 to the +ID "
                  "clean R2 in the family's colour, thin lines the two 95% CIs, * = the CIs do not overlap."
                  + (" Dashed arrows from hollow dots: the mean R2 over the corruptions, frozen -> +ID."
                     if getattr(ide, "wmprobe_drew_corruptions", False) else ""))
        for name, fig, title, cap in (
            ("per_axis", F.per_axis_figure(summ, groups), "Per-axis R2",
             "R2 of each action axis group per encoder (colour = family, hatched = +ID, ranked as the table)"
             + ("; panels marked 'headline' are the groups the headline R2 averages." if groups else ".")),
            ("id_effect", ide, "Frozen vs +ID", id_cap),
            ("r2_vs_layer", F.sweep_figure(clean, "layer", "layer"), "R2 vs layer",
             "Which layer holds the action (colour = family; frozen solid circles, +ID dashed squares)."),
            ("r2_vs_k", F.sweep_figure(clean, "k", "step size k"), "R2 vs k",
             "Probing steps s and s+k; the target sums the k actions in between (colour = family; frozen solid, "
             "+ID dashed)."),
            ("robustness", F.robustness_figure(A.robustness_curves(df, ds)), "Robustness",
             "Mean R2 per family vs corruption strength in the corruption's own unit (noise: sigma on [0, 1] "
             "pixels; blur: kernel size in pixels; ImageNet-C: severity 1-5), 0 = clean; frozen solid, +ID dashed."),
        ):
            if fig is not None:
                cap = f"{cap} {_note(fig)}".strip()
                figs.append(figure_html(_save(fig, figdir / _stem(name, ds, main)), title, cap))
        body.append(f"<div class='grid'>{''.join(figs)}</div>" if figs else "")
        per_dataset.append((f"{ds}", "\n".join(body)))
        findings.setdefault("per_dataset", {})[ds] = AF.dataset_findings(summ, par, rob)
        findings["per_dataset"][ds]["verdict"] = verdict
        if not reps.empty:
            findings["per_dataset"][ds]["replicates"] = {"train_sd": train_sd, "models": reps.to_dict("records")}
        paper = A.paper_robustness(df, ds)
        if not paper.empty:
            findings["per_dataset"][ds]["paper_robustness"] = paper.to_dict("records")

    if pareto_all:
        keep = ["dataset", "label", "family", "id_weight", "psnr", "ssim", "psnr_own", "ssim_own", "r2", "on_front"]
        pd.concat(pareto_all)[lambda d: [c for c in keep if c in d]].to_csv(tables / "pareto.csv", index=False)
    if rob_all:
        pd.concat(rob_all).to_csv(tables / "robustness_long.csv", index=False)
        wide = A.robustness_table(df)
        wide.to_csv(tables / "robustness.csv", index=False)
        _latex(wide.drop(columns=["encoder"]), tables / "robustness.tex")

    across = _across(df, datasets, tables, figdir, findings)
    from wmprobe.report.control import control_section
    control_html, control, control_verdict = control_section(df, figdir, tables, main, _save)
    if control:
        findings["control"] = control
    sections.append(("Verdict", verdict_html(findings.get("per_dataset", {}), main, control_verdict) + headline_fig))
    sections.append(("Findings", findings_html(findings)))
    sections.extend(per_dataset)
    if control_html:
        sections.append(("Closed-loop control", control_html))
    if across:
        sections.append(("Across benchmarks", across))
    failed = df[df["error"].fillna("").astype(str) != ""] if "error" in df else df.iloc[:0]
    if not failed.empty:
        fcols = [c for c in ("encoder", "id_weight", "dataset", "corruption", "layer", "probe", "k", "seed", "error")
                 if c in failed]
        failed[fcols].to_csv(tables / "failed.csv", index=False)
        sections.append((f"Failed cells ({len(failed)})",
                         "<p class='note bad'>These cells raised an error after their retries; they are kept in "
                         "the records (column 'error') and left out of every number above.</p>" +
                         table_html(fcols, failed[fcols].astype(str).values.tolist(), [False] * len(fcols),
                                    css_class="plain")))
    sections.append(("Protocol, config and provenance", _provenance(df, cfg)))
    (dest / "findings.json").write_text(json.dumps(findings, indent=1, default=_json_default) + "\n")
    n_enc = ok.assign(label=A.encoder_label)["label"].nunique()
    sub = (f"{len(df)} records, {n_enc} encoders, datasets: {', '.join(datasets)}; headline probe "
           f"{findings['headline_probe']}. Which representation knows what the robot did?")
    path = dest / "report.html"
    path.write_text(page("wmprobe report", sub, sections))
    return path


def _replicates_html(reps: pd.DataFrame, pooled: float, csv: Path) -> str:
    """The zoo's training-seed replicates (``zoo: {replicates: R}``): per model the mean R2 over its replicates
    and their spread, written to ``csv`` and returned as an HTML table with its note (``pooled``: the pooled
    training-seed sd, ``analysis.train_sd_summary``)."""
    reps.to_csv(csv, index=False)
    cols = ["label", "r2", "r2_train_sd", "r2_min", "r2_max", "replicates"]
    rows = [[_fmt(r[c], 0 if c == "replicates" else 3) if c != "label" else str(r[c]) for c in cols]
            for _, r in reps.iterrows()]
    return (table_html(["model", "R2 (mean of replicates)", "training-seed sd", "min", "max", "replicates"], rows,
                       [False, True, True, True, True, True])
            + f"<p class='note'>The models of this table were trained with {_seeds(reps['replicates'])} "
              f"(rows 'zoo:FAMILY#r' above are replicate r); a zoo model not listed here was trained once (the "
              f"study's `zoo.replicate_weights`). The pooled training-seed sd is {pooled:.3f}: two "
              "models whose R2 differ by less than about twice that are not told apart by this budget, whatever "
              "their bootstrap CIs say (those cover the test episodes, not the training run). `wmprobe stability` "
              "ranks the replicate means.</p>")


def _seeds(counts: pd.Series) -> str:
    """``2 training seeds each`` (or ``2-3 training seeds``) for the replicate counts of the table's models."""
    lo, hi = int(counts.min()), int(counts.max())
    return f"{hi} training seeds each" if lo == hi else f"{lo}-{hi} training seeds"


def _json_default(o: object) -> object:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.bool_):
        return bool(o)
    return str(o)


def _across(df: pd.DataFrame, datasets: list[str], tables: Path, figdir: Path, findings: dict) -> str:
    """The "Across benchmarks" section: the transfer of rankings between datasets and the static-scene effect
    (``analysis.findings``), their figures and tables; their findings go into ``findings``."""
    pairs, gap = AF.transfers(df, datasets), AF.suite_gap(df, datasets)
    found = AF.across_findings(pairs, gap)
    findings.update(found)
    parts = []
    families = A.summary_table(df).drop_duplicates("label").set_index("label")["family"]
    for t in pairs:
        a, b = t["dataset_a"], t["dataset_b"]
        fig = F.transfer_figure(t, families)
        if fig is not None:
            name = "transfer" if (a, b) == tuple(datasets[:2]) else f"transfer-{a}-{b}"
            parts.append(figure_html(_save(fig, figdir / name), f"Transfer {a} vs {b}",
                                     f"Per-encoder R2 on {a} vs {b}; Spearman rho of the rankings {t['rho']:.2f} "
                                     f"(95% bootstrap CI over encoders [{t['rho_ci_low']:.2f}, "
                                     f"{t['rho_ci_high']:.2f}], {t['n_encoders']} encoders)."))
    if pairs:
        pd.concat([t["table"].reset_index(names="label").assign(dataset_a=t["dataset_a"], dataset_b=t["dataset_b"])
                   for t in pairs]).to_csv(tables / "transfer.csv", index=False)
        (tables / "transfer.json").write_text(json.dumps(found["transfer"], indent=1, default=_json_default) + "\n")
    html = [f"<div class='grid'>{''.join(parts)}</div>"] if parts else []
    if gap is not None:
        gap.to_csv(tables / "static_gap.csv", index=False)
        num = [False] + [True] * (len(gap.columns) - 1)
        html.append("<h3>Static-scene effect</h3>" + table_html(
            list(gap.columns), [[_fmt(v) for v in r] for r in gap.itertuples(index=False)], num, "plain") +
            "<p class='note'>Mean clean R2 of frozen video families minus image-SSL families on each suite. "
            "The paper's finding is a smaller gap on the static, CALVIN-like suite: image priors suffice "
            "when only what the robot touches moves.</p>")
    return "\n".join(html)


def _note(fig) -> str:
    return getattr(fig, "wmprobe_note", "") if fig is not None else ""


def _headline_caption(summ: pd.DataFrame, head: dict[str, Any], ds: str, fig) -> str:
    role = V.roles(summ)
    drawn = ["grey band: the floors (pixels, random-init) up to the highest floor CI, a line at each floor's R2"
             if (role == "floor").any() else "no floor was measured"]
    if (role == "ceiling").any():
        drawn.append("dashed black line (dotted hatching: its CI): the ceiling, the trunk trained on inverse "
                     "dynamics alone")
    if (role == "state").any():
        drawn.append("dotted line: the state ceiling, the same probe on the robot's state")
    eps = head.get("test_episodes")
    return (f"R2 with 95% CI per encoder on {ds} at the headline k = {head.get('k')} "
            f"({SPLITS.get(head.get('split', ''), head.get('split', ''))}, "
            f"{eps if eps else 'an unrecorded number of'} test episodes, {head.get('seeds')} seed(s)); colour = "
            f"family, square = +ID; " + "; ".join(drawn)
            + ("; dashed rules separate the CI-separated tiers" if summ["tier"].max() > 1 else "") + ". "
            + _note(fig)).strip()


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
