"""The report's closed-loop part (study ``control:``): does action R2 predict control better than fidelity?

Drawn from ``wmprobe.analysis_control`` only (findings.json ``control`` holds the same numbers):

- ``control_figure(tables, dataset)``: per task split a panel of success (y, Wilson 95 % CI) against the
  headline R2 (x, its 95 % CI), one point per encoder, colour = family, +ID by marker (``report.style``), the
  Spearman rho and its CI in the panel title;
- ``control_sentence(entry, dataset, task_split)``: whether, in this setting, R2 predicts success better than
  PSNR does, worded from the CIs, and what N encoders cannot say;
- ``control_section(df, figdir, tables, main, save)``: the section's HTML, the findings dict and the verdict's
  sentences; ``("", {}, [])`` when the records hold no control rows.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from wmprobe import analysis_control as AC
from wmprobe.report.html import esc, figure_html
from wmprobe.report.style import family_colour, repel_labels, style

SPLIT_WORDS = {"train": "train tasks, held-out initial states", "test": "held-out test tasks, task-OOD"}


def _n(x: Any, d: int = 2) -> str:
    return "n/a" if x is None or not np.isfinite(float(x)) else f"{float(x):.{d}f}"


def _ci(ci: Any) -> str:
    return f"[{_n(ci[0])}, {_n(ci[1])}]" if ci else "[n/a]"


def _err(v: pd.Series, lo: pd.Series, hi: pd.Series) -> np.ndarray:
    return np.vstack([np.nan_to_num(np.maximum(v - lo, 0)), np.nan_to_num(np.maximum(hi - v, 0))])


def _rho_title(r: dict[str, Any], what: str) -> str:
    if r.get("status") != AC.OK:
        return f"rho({what}): {r.get('status')}"
    return f"rho({what}) {r['rho']:.2f} {_ci(r['ci'])}"


def control_figure(tables: dict[str, pd.DataFrame], entries: dict[str, dict[str, Any]], dataset: str):
    """Success against R2 per task split (``tables``: split -> ``analysis_control.control_table``; ``entries``:
    split -> its findings entry). None when no split has a point."""
    splits = [sp for sp, t in tables.items() if not t.empty]
    if not splits:
        return None
    fig, axes = plt.subplots(1, len(splits), figsize=(5.6 * len(splits), 4.8), squeeze=False, sharey=True)
    for ax, sp in zip(axes[0], splits):
        t = tables[sp].reset_index(drop=True)
        fam_var = t["family"].astype(str) + (t["id_weight"] > 0).astype(str)
        idx = fam_var.groupby(fam_var).cumcount()
        colours = [family_colour(f) for f in t["family"]]
        for i, r in t.iterrows():
            ax.errorbar(r["r2"], r["success"], xerr=_err(t["r2"], t["r2_ci_low"], t["r2_ci_high"])[:, [i]],
                        yerr=_err(t["success"], t["success_ci_low"], t["success_ci_high"])[:, [i]],
                        fmt=style(r["id_weight"], int(idx[i]))["marker"], color=colours[i], ms=6, capsize=2,
                        elinewidth=0.9, zorder=3)
        ax.set_ylim(-0.05, 1.05)
        ax.margins(x=0.12)
        ax.set_xlabel("action R2 at the headline k (bar: 95% CI)")
        ax.grid(alpha=0.3)
        e = entries.get(sp, {})
        ax.set_title(f"{dataset}, {SPLIT_WORDS.get(sp, sp)}\n{_rho_title(e.get('r2', {}), 'R2')}; "
                     f"{_rho_title(e.get('psnr', {}), 'PSNR')}; {len(t)} encoders", fontsize=8)
    axes[0, 0].set_ylabel("closed-loop success (bar: 95% Wilson CI)")
    fig.tight_layout()
    for ax, sp in zip(axes[0], splits):       # labels last: the limits and the layout are final
        t = tables[sp]
        ax.set_xlim(*ax.get_xlim())
        repel_labels(ax, t["r2"].tolist(), t["success"].tolist(), t["label"].tolist(),
                     colours=[family_colour(f) for f in t["family"]])
    handles = [plt.Line2D([], [], color=family_colour(f), marker="o", ls="", label=f)
               for f in dict.fromkeys(pd.concat([tables[s]["family"] for s in splits]).astype(str))]
    handles += [plt.Line2D([], [], color="k", mfc="none", marker="o", ls="", label="frozen"),
                plt.Line2D([], [], color="k", mfc="none", marker="s", ls="", label="+ID")]
    fig.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=6, frameon=False)
    return fig


def control_sentence(e: dict[str, Any], dataset: str, task_split: str) -> str:
    """One HTML sentence for a findings entry (``analysis_control.control_findings``)."""
    where = f"Closed loop on <b>{esc(dataset)}</b> ({SPLIT_WORDS.get(task_split, esc(task_split))}): "
    st = e.get("state_ceiling")
    if st:   # whether the policy recipe can solve these tasks at all, from the simulator's own state
        where += (f"the same policy recipe on the privileged simulator state (the ceiling) succeeded in "
                  f"{st['successes']} of {st['n_rollouts']} rollouts ({_n(st['success'])} {_ci(st['success_ci'])}"
                  f"{'; below 0.5 the recipe, not the encoders, limits success' if st['success'] < 0.5 else ''}). ")
    r, p, d = e.get("r2", {}), e.get("psnr", {}), e.get("difference", {})
    if r.get("status") != AC.OK:
        return where + f"No rank correlation of success with R2: {esc(r.get('status'))} ({esc(r.get('reason'))})."
    n = r["n_encoders"]
    s = (where + f"Spearman rho of success with action R2 {_n(r['rho'])} {_ci(r['ci'])} over {n} encoders"
         + (" (its CI excludes 0: success rises with R2 here)" if r["ci"] and r["ci"][0] > 0 else
            " (its CI excludes 0: success falls as R2 rises here)" if r["ci"] and r["ci"][1] < 0 else
            " (its CI covers 0: no link shown)"))
    if not e.get("success_separates", True):
        best = e.get("success_max")
        solved = st is not None and st["success"] >= 0.5
        return (where + f"Closed-loop success does not tell the {n} encoders apart: no two encoders' success "
                f"intervals separate (best {_n(best)}, {esc(e.get('best'))}), so the policies succeed or fail alike "
                f"within rollout noise and a rank correlation of success with R2 (rho {_n(r['rho'])} "
                f"{_ci(r['ci'])}) or with PSNR reads that noise; it cannot say whether either predicts control. "
                + ("The recipe solves these tasks from the simulator state, so the encoders' features, not the "
                   "recipe, limit success; more rollouts or image policies that succeed are needed first."
                   if solved else "More rollouts, or policies that solve the tasks, are needed first."))
    if p.get("status") != AC.OK:
        return (s + f"; with PSNR: {esc(p.get('status'))} ({esc(p.get('reason'))}), so whether R2 predicts "
                f"control better than fidelity cannot be said. With {n} encoders these data cannot say more.")
    overlap = not (r["ci"] and p["ci"] and (r["ci"][0] > p["ci"][1] or p["ci"][0] > r["ci"][1]))
    s += (f"; with decoder PSNR {_n(p['rho'])} {_ci(p['ci'])} over {p['n_encoders']} encoders (the CIs "
          f"{'overlap' if overlap else 'do not overlap'}). ")
    lo, hi = (d.get("ci") or [np.nan, np.nan])
    diff = f"paired difference rho(R2) - rho(PSNR) {_n(d.get('rho_r2_minus_rho_psnr'))} {_ci(d.get('ci'))}"
    if lo > 0:
        s += f"In this setting action R2 predicts control better than fidelity does ({diff} excludes 0)."
    elif hi < 0:
        s += f"In this setting fidelity predicts control better than action R2 does ({diff} excludes 0)."
    else:
        s += f"These data do not establish whether action R2 or fidelity predicts control better ({diff} covers 0)."
    if e.get("policy_layer_differs"):
        s += (f" The policy of {esc(', '.join(e['policy_layer_differs']))} read another layer than the headline "
              f"R2's.")
    return (s + f" With {n} encoders and CIs over encoders and rollouts, this holds for these encoders and tasks "
            f"only; the data cannot say more.")


def control_section(df: pd.DataFrame, figdir: Path, tables: Path, main: str,
                    save: Callable[[Any, Path], bytes]) -> tuple[str, dict[str, Any], list[str]]:
    """(section HTML, findings ``control`` dict, verdict sentences of ``main``); empty without control rows.
    Writes ``figures/control[-DATASET]`` and ``tables/control.csv`` (one row per dataset, split, encoder)."""
    found = AC.control_findings(df)
    if not found:
        return "", {}, []
    parts, verdict, rows = [], [], []
    for ds, per in found.items():
        tabs = {sp: AC.control_table(df, ds, sp) for sp in per}
        for sp, t in tabs.items():
            if not t.empty:
                rows.append(t.assign(dataset=ds, task_split=sp))
        sentences = [control_sentence(e, ds, sp) for sp, e in per.items()]
        if ds == main:
            verdict.extend(sentences)
        fig = control_figure(tabs, per, ds)
        if fig is not None:
            png = save(fig, figdir / ("control" if ds == main else f"control-{ds}"))
            parts.append(figure_html(png, f"Probe vs control on {ds}",
                                     "Closed-loop success of a behaviour-cloning policy on each encoder's frozen "
                                     "features (y, 95% Wilson CI over the rollouts of every seed) against its "
                                     "headline action R2 (x, 95% CI); colour = family, square = +ID; one panel per "
                                     "task split. rho: Spearman, 95% bootstrap CI over encoders and rollouts "
                                     "(docs/protocol.md)."))
        parts.append("<ul class='findings'>" + "".join(f"<li>{s}</li>" for s in sentences) + "</ul>")
    if rows:
        cols = ["dataset", "task_split", "label", "family", "id_weight", "r2", "r2_ci_low", "r2_ci_high", "psnr",
                "psnr_ci_low", "psnr_ci_high", "success", "success_ci_low", "success_ci_high", "successes",
                "n_rollouts"]
        all_rows = pd.concat(rows)
        all_rows[[c for c in cols if c in all_rows]].to_csv(tables / "control.csv", index=False)
    note = ("<p class='note'>A rank correlation over a few encoders has a wide CI; the policy's success also "
            "depends on how well behaviour cloning extrapolates from the expert's states. Its CI resamples the "
            "encoders and draws each one's success and R2 / PSNR from its own uncertainty (docs/protocol.md).</p>")
    return "\n".join(parts) + note, found, verdict


__all__ = ["control_figure", "control_section", "control_sentence"]
