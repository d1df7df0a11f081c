"""Report figures (matplotlib, Agg), each drawn from a table that ``wmprobe.analysis`` computed.

Every function returns a ``Figure``, or ``None`` when its table holds too little to show (a single k, no
PSNR, no corruption). Conventions are those of ``wmprobe.analysis``: an encoder's headline cell is the
headline probe (``mlp`` when measured), the headline k (4 when measured), clean frames and its most-measured
layer; values are means over seeds and error bars the mean bootstrap CI over test episodes; ``label`` is the
encoder plus ``+ID`` when it was trained with inverse-dynamics supervision (``id_weight`` > 0). The look is
``report.style``: colour = family in every figure, frozen = circle / solid, +ID = square / dashed (hatched
bars), axes that one outlier cannot squash (clipped values drawn on the edge with a triangle). A figure may set
``fig.wmprobe_note``: a sentence the caption adds (what was clipped, what is not drawn).

The cell figures (headline, r2_norm, Pareto, per axis, +ID effect) are here; the sweeps, robustness curves and
the transfer scatter are in ``report.curves``, re-exported here.
"""
from __future__ import annotations

from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from wmprobe.report.curves import (UNITS, corruption_axis_label, robustness_figure, sweep_figure,
                                   transfer_figure)
from wmprobe.report.style import (HATCH_ID, family_colour, family_colours, is_id, repel_labels, robust_limits,
                                  style, to_png)
from wmprobe.report.style import marker_index as _markers
from wmprobe.report.style import note as _note

AXES = ("translation", "rotation", "gripper")


def _xerr(r: pd.Series) -> list[list[float]] | None:
    if not {"r2_ci_low", "r2_ci_high"} <= set(r.index) or not np.isfinite([r["r2_ci_low"], r["r2_ci_high"]]).all():
        return None
    return [[max(0.0, r["r2"] - r["r2_ci_low"])], [max(0.0, r["r2_ci_high"] - r["r2"])]]


def headline_figure(s: pd.DataFrame, tiers: pd.Series | None, dataset: str, k: int):
    """R2 with CI per encoder at the headline cell, against the band of the floors (pixels, random-init: grey
    band up to the highest floor CI) and the ceiling / state ceiling (vertical lines, CI shaded). Encoders are
    ranked top to bottom; thin rules separate the tiers (``verdict.tiers``). ``s``: one dataset's summary rows."""
    from wmprobe.verdict import roles
    if s.empty:
        return None
    role = roles(s)
    enc = s[role == "encoder"].copy()
    if enc.empty:
        return None
    enc["_tier"] = tiers.reindex(enc.index).fillna(0).astype(int) if tiers is not None else 1
    enc = enc.assign(_neg=-enc["r2"]).sort_values(["_neg", "label"]).reset_index(drop=True)
    refs = s[role != "encoder"]
    vals = list(enc["r2"]) + list(refs["r2"]) + list(enc.get("r2_ci_high", [])) + list(enc.get("r2_ci_low", []))
    lo, hi = robust_limits(vals)
    fig, ax = plt.subplots(figsize=(7.2, 0.32 * len(enc) + 1.9))
    y = np.arange(len(enc))[::-1]
    floors = refs[role[refs.index] == "floor"]
    if not floors.empty:
        top = float(np.nanmax(floors[[c for c in ("r2", "r2_ci_high") if c in floors]].to_numpy(float)))
        ax.axvspan(lo, top, color="0.85", zorder=0, label="floor band (up to the highest floor CI)")
        for _, f in floors.iterrows():
            ax.axvline(f["r2"], color=family_colour(f["family"]), lw=1.2, ls="-", zorder=1,
                       label=f"floor: {f['label']} {f['r2']:.2f}")
    for name, ls in (("ceiling", "--"), ("state", ":")):
        for _, c in refs[role[refs.index] == name].iterrows():
            if np.isfinite([c.get("r2_ci_low", np.nan), c.get("r2_ci_high", np.nan)]).all():
                ax.axvspan(c["r2_ci_low"], c["r2_ci_high"], facecolor="none", edgecolor=family_colour(c["family"]),
                           hatch="..." if name == "ceiling" else "\\\\", alpha=0.35, lw=0, zorder=0)
            what = "ceiling (inverse dynamics end to end)" if name == "ceiling" else "state ceiling (robot state)"
            ax.axvline(c["r2"], color=family_colour(c["family"]), lw=1.4, ls=ls, zorder=1,
                       label=f"{what} {c['r2']:.2f}")
    clipped, idx = 0, _markers(enc)
    for i, (_, r) in enumerate(enc.iterrows()):
        st = style(r["id_weight"], int(idx.iloc[i]))
        x, err = r["r2"], _xerr(r)
        if x < lo:
            clipped += 1
            ax.plot([lo], [y[i]], "<", color=family_colour(r["family"]), ms=7, zorder=3)
            continue
        ax.errorbar(x, y[i], xerr=err, fmt=st["marker"], color=family_colour(r["family"]), ms=6, capsize=2,
                    zorder=3)
    tier_vals = enc["_tier"].to_numpy()
    for i in range(1, len(enc)):
        if tier_vals[i] != tier_vals[i - 1]:
            ax.axhline((y[i] + y[i - 1]) / 2, color="0.35", lw=0.7, ls=(0, (4, 2)))
    if tiers is not None and tier_vals.max() > 1:
        for t in np.unique(tier_vals):
            ys = y[tier_vals == t]
            ax.text(1.01, ys.mean(), f"tier {t}", transform=ax.get_yaxis_transform(), fontsize=7,
                    va="center", color="0.3")
    ax.set_yticks(y, enc["label"], fontsize=8)
    ax.set_ylim(-0.7, len(enc) - 0.3)
    ref_hi = [v for c in ("r2", "r2_ci_high") if c in refs for v in refs[c].astype(float) if np.isfinite(v)]
    ax.set_xlim(lo, max([hi] + ref_hi) + 0.02)
    ax.set_xlabel(f"action R2 at k = {k} (mean over seeds; bar: 95% CI over test episodes)")
    ax.grid(axis="x", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.12 - 0.6 / max(len(enc), 3)), ncol=2,
                  frameon=False)
    ax.set_title(f"{dataset}: squares = +ID" + ("; dashed rules separate CI-separated tiers"
                                                if tiers is not None and tier_vals.max() > 1 else ""), fontsize=9)
    _note(fig, f"{clipped} encoder(s) below {lo:.2f} are drawn at the left edge (<)." if clipped else "")
    return fig


def r2_norm_figure(s: pd.DataFrame, dataset: str):
    """``r2_norm`` per encoder (0 = the best floor, 1 = the ceiling), bars coloured by family, +ID hatched."""
    from wmprobe.verdict import roles
    if s.empty or "r2_norm" not in s or s["r2_norm"].notna().sum() == 0:
        return None
    d = s[(roles(s) == "encoder") & s["r2_norm"].notna()].sort_values("r2_norm", ascending=False)
    if d.empty:
        return None
    lo, hi = robust_limits(list(d["r2_norm"]) + [0.0, 1.0])
    vals, mask = np.asarray(d["r2_norm"], float), np.asarray(d["r2_norm"], float) < lo
    fig, ax = plt.subplots(figsize=(6.6, 0.3 * len(d) + 1.4))
    y = np.arange(len(d))[::-1]
    ax.barh(y, np.maximum(vals, lo), color=[family_colour(f) for f in d["family"]],
            hatch=[HATCH_ID if is_id(w) else "" for w in d["id_weight"]], edgecolor="white", lw=0)
    for yi in y[mask]:
        ax.plot([lo], [yi], "<", color="k", ms=6)
    ax.axvline(0, color=family_colour("pixels"), lw=1.2, label="0 = best floor")
    ax.axvline(1, color=family_colour("ceiling"), lw=1.2, ls="--", label="1 = ceiling")
    ax.set_yticks(y, d["label"], fontsize=8)
    ax.set_xlim(lo, max(hi, 1.05))
    ax.set_xlabel("r2_norm = (R2 - best floor) / (ceiling - best floor)")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"{dataset}: hatched = +ID", fontsize=9)
    _note(fig, f"{int(mask.sum())} encoder(s) below {lo:.2f} drawn at the edge (<)." if mask.any() else "")
    return fig


def pareto_figure(p: pd.DataFrame, dataset: str):
    """Fidelity (decoder PSNR) vs action R2 for one dataset's ``analysis.pareto`` rows; frontier highlighted.
    Labels never overlap (``style.repel_labels``)."""
    p = p[np.isfinite(p["psnr"].astype(float))] if "psnr" in p else p.iloc[:0]
    if len(p) < 2:
        return None
    p = p.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(6.4, max(4.4, 0.16 * len(p) + 1.5)))
    lo, hi = robust_limits(list(p["r2"]) + list(p.get("r2_ci_high", [])))
    idx = _markers(p)
    clipped = 0
    for i, r in p.iterrows():
        st = style(r["id_weight"], int(idx[i]))
        c = family_colour(r["family"])
        yv = max(r["r2"], lo)
        clipped += r["r2"] < lo
        ax.errorbar(r["psnr"], yv, yerr=None if r["r2"] < lo else _xerr(r),
                    fmt="v" if r["r2"] < lo else st["marker"], color=c, ms=9 if r["on_front"] else 6,
                    mec="k" if r["on_front"] else "none", mew=1.4, capsize=2, zorder=3)
    f = p[p["on_front"]].sort_values("psnr")
    ax.plot(f["psnr"], f["r2"].clip(lower=lo), "k--", lw=1, alpha=0.6, zorder=2)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("fidelity: decoder-probe PSNR on test frames (dB)")
    ax.set_ylabel("action R2 (inverse-dynamics probe)")
    ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=family_colour(fam), marker="o", ls="", label=fam)
               for fam in dict.fromkeys(p["family"].astype(str))]
    handles += [plt.Line2D([], [], color="k", mfc="none", marker="o", ls="", label="frozen"),
                plt.Line2D([], [], color="k", mfc="none", marker="s", ls="", label="+ID"),
                plt.Line2D([], [], color="k", ls="--", label="Pareto frontier (outlined)")]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.13), ncol=4, frameon=False)
    xl = ax.get_xlim()
    ax.set_xlim(xl[0], xl[1] + 0.25 * (xl[1] - xl[0]))          # room for the labels of the rightmost points
    repel_labels(ax, p["psnr"].tolist(), [max(v, lo) for v in p["r2"]], p["label"].tolist(),
                 colours=[family_colour(x) for x in p["family"]])
    ax.set_title(f"{dataset}: fidelity vs action", fontsize=9)
    _note(fig, f"{clipped} encoder(s) with R2 below {lo:.2f} drawn at the lower edge (v)." if clipped else "")
    return fig


def per_axis_figure(s: pd.DataFrame, headline_groups: Sequence[str] = ()):
    """R2 per action axis group: one panel per group (titled with whether the headline averages it), a bar per
    encoder in the order of the headline ranking, coloured by family, +ID hatched."""
    groups = [a for a in AXES if f"r2_{a}" in s and np.isfinite(s[f"r2_{a}"].astype(float)).any()]
    groups += sorted(g for g in headline_groups if g not in groups and f"r2_{g}" in s)
    if s.empty or not groups:
        return None
    lo, hi = robust_limits([v for g in groups for v in s[f"r2_{g}"].astype(float)] + [0.0])
    fig, axes = plt.subplots(1, len(groups), figsize=(2.5 * len(groups) + 1.6, 0.26 * len(s) + 1.4),
                             sharey=True, squeeze=False)
    y = np.arange(len(s))[::-1]
    clipped = 0
    for ax, g in zip(axes[0], groups):
        vals = s[f"r2_{g}"].to_numpy(float)
        mask = vals < lo
        clipped += int(mask.sum())
        ax.barh(y, np.where(mask, lo, vals), color=[family_colour(f) for f in s["family"]],
                hatch=[HATCH_ID if is_id(w) else "" for w in s["id_weight"]], edgecolor="white", lw=0)
        for yi in y[mask]:
            ax.plot([lo], [yi], "<", color="k", ms=5)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_xlim(lo, max(hi, 0.05))
        tag = "" if not headline_groups else (" (headline)" if g in headline_groups else " (not in headline)")
        ax.set_title(g + tag, fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="x", labelsize=7)
    axes[0, 0].set_yticks(y, s["label"], fontsize=7)
    fig.supxlabel("R2 of the axis group (hatched: +ID)", fontsize=8)
    fig.tight_layout()
    _note(fig, f"{clipped} value(s) below {lo:.2f} drawn at the left edge (<)." if clipped else "")
    return fig


def id_effect_figure(s: pd.DataFrame, rob: pd.DataFrame | None = None):
    """Frozen -> +ID per encoder: an arrow from the frozen clean R2 to the +ID clean R2 (solid, family colour;
    whiskers: both CIs) and, where the corruptions were measured for both, from the frozen to the +ID mean R2
    over the corruptions (dashed, hollow markers). A * after the name: the clean CIs do not overlap."""
    from wmprobe.verdict import ci_separated
    if s.empty or not (s["id_weight"] > 0).any() or s["frozen_r2"].notna().sum() == 0:
        return None
    pairs = s[(s["id_weight"] > 0) & s["frozen_r2"].notna()].sort_values("frozen_r2").reset_index(drop=True)
    frozen = s[s["id_weight"] == 0].set_index("encoder")
    corr = None
    if rob is not None and not rob.empty and (rob["corruption"] != "clean").any():
        corr = rob[rob["corruption"] != "clean"].groupby(["encoder", "id_weight"])["r2"].mean()
    vals = list(pairs["frozen_r2"]) + list(pairs["r2"]) + (list(corr.values) if corr is not None else [])
    lo, hi = robust_limits(vals)
    fig, ax = plt.subplots(figsize=(6.6, max(2.6, 0.5 * len(pairs) + 1.3)))
    drew_corr, clipped, names = False, 0, []

    def arrow(a: float, b: float, y: float, colour: Any, dashed: bool) -> None:
        nonlocal clipped
        clipped += (a < lo) + (b < lo)
        a, b = max(a, lo), max(b, lo)
        face = "none" if dashed else colour
        ax.plot([a], [y], "o", color=colour, mfc=face, ms=5, zorder=3)
        ax.annotate("", (b, y), (a, y), arrowprops={"arrowstyle": "-|>", "color": colour, "lw": 1.4,
                                                    "ls": "--" if dashed else "-", "shrinkA": 0, "shrinkB": 0})

    for i, r in pairs.iterrows():
        c = family_colour(r["family"])
        f = frozen.loc[r["encoder"]] if r["encoder"] in frozen.index else None
        for src, dy in ((f, 0.08), (r, -0.08)):
            if src is not None and np.isfinite([src.get("r2_ci_low", np.nan), src.get("r2_ci_high", np.nan)]).all():
                ax.plot([max(src["r2_ci_low"], lo), max(src["r2_ci_high"], lo)], [i + dy] * 2, color=c, lw=0.8,
                        alpha=0.6)
        arrow(r["frozen_r2"], r["r2"], i, c, False)
        if corr is not None and (r["encoder"], 0.0) in corr.index and (r["encoder"], r["id_weight"]) in corr.index:
            arrow(corr[(r["encoder"], 0.0)], corr[(r["encoder"], r["id_weight"])], i - 0.3, c, True)
            drew_corr = True
        sep = f is not None and ci_separated(f.get("r2_ci_low", np.nan), f.get("r2_ci_high", np.nan),
                                             r.get("r2_ci_low", np.nan), r.get("r2_ci_high", np.nan))
        names.append(f"{r['encoder']} (id_weight={r['id_weight']:g}){' *' if sep else ''}")
    ax.set_yticks(range(len(pairs)), names, fontsize=8)
    ax.set_ylim(-0.7, len(pairs) - 0.4)
    ax.set_xlim(lo, hi)
    ax.axvline(0, color="k", lw=0.8)
    handles = [plt.Line2D([], [], color="0.3", marker="o", label="clean R2: frozen (dot) -> +ID (arrow head)")]
    if drew_corr:
        handles.append(plt.Line2D([], [], color="0.3", marker="o", mfc="none", ls="--",
                                  label="mean R2 over the corruptions"))
    ax.legend(handles=handles, fontsize=7, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2, frameon=False)
    ax.set_xlabel("action R2 (thin lines: 95% CIs, frozen above, +ID below)")
    ax.grid(axis="x", alpha=0.3)
    fig.wmprobe_drew_corruptions = drew_corr
    _note(fig, f"{clipped} end(s) below {lo:.2f} drawn at the left edge." if clipped else "")
    return fig


__all__ = ["family_colours", "headline_figure", "id_effect_figure", "pareto_figure", "per_axis_figure",
           "r2_norm_figure", "robustness_figure", "sweep_figure", "to_png", "transfer_figure",
           "corruption_axis_label", "UNITS"]
