"""Report figures over a swept quantity: R2 against the layer or k (``sweep_figure``), against the corruption
strength in its unit (``robustness_figure``), and one benchmark's R2 against another's (``transfer_figure``).
Conventions and look as in ``report.figures`` (whose doc says them); each returns a ``Figure`` or ``None``.
"""
from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from wmprobe.analysis import headline_k
from wmprobe.report.style import family_colour, repel_labels, robust_limits, style
from wmprobe.report.style import marker_index as _markers
from wmprobe.report.style import note as _note


def sweep_figure(d: pd.DataFrame, by: str, xlabel: str):
    """R2 vs ``by`` ('layer' or 'k') for encoders measured at >= 2 values. ``d``: clean rows of the headline
    probe for one dataset, with a ``label`` column; layers are ordered by the number in their name."""
    if d.empty:
        return None
    if by == "layer":
        d = d[d["k"] == headline_k(d["k"])]
    keys = ["label", "family", "id_weight"] if "family" in d else ["label", "id_weight"]
    d = d.groupby(keys + [by])["r2"].mean().reset_index()
    multi = d.groupby("label")[by].nunique()
    d = d[d["label"].isin(multi[multi >= 2].index)]
    if d.empty:
        return None
    lo, hi = robust_limits(d["r2"])
    fig, ax = plt.subplots(figsize=(6.6, 4.2))
    lines = d.drop_duplicates("label")[keys].reset_index(drop=True)
    idx = _markers(lines.assign(family=lines.get("family", "")))
    clipped = 0
    for i, ln in lines.iterrows():
        g = d[d["label"] == ln["label"]]
        st = style(ln["id_weight"], int(idx[i]))
        c = family_colour(ln.get("family", ""))
        if by == "layer":
            g = g.assign(order=g["layer"].map(_layer_order)).sort_values("order")
            x = np.arange(len(g))
            ax.set_xticks(x, g["layer"], rotation=45, ha="right", fontsize=8)
        else:
            g = g.sort_values(by)
            x = g[by].to_numpy(float)
        yv, mask = np.maximum(g["r2"].to_numpy(float), lo), g["r2"].to_numpy(float) < lo
        clipped += int(mask.sum())
        ax.plot(x, yv, color=c, label=ln["label"], ms=5, lw=1.3, **st)
        ax.plot(x[mask], yv[mask], "v", color=c, ms=7, mec="k", mew=0.6)
    if by == "k":
        ks = sorted(d["k"].unique())
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_ylim(lo, hi)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("action R2")
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(alpha=0.3)
    _note(fig, f"{clipped} point(s) below {lo:.2f} drawn at the lower edge (v)." if clipped else "")
    return fig


def _layer_order(name: str) -> float:
    digits = "".join(ch for ch in str(name) if ch.isdigit())
    return float(digits) if digits else 1e9


UNITS = {"noise": "noise sigma (on [0, 1] pixels)", "blur": "Gaussian blur kernel size (px)"}


def corruption_axis_label(kind: str) -> str:
    """The x label of a corruption's panel in its real unit (ImageNet-C types: severity 1-5); 0 = clean."""
    return UNITS.get(kind, f"{kind} severity (1-5)") + ", 0 = clean"


def robustness_figure(curves: pd.DataFrame):
    """R2 vs corruption strength in its unit (0 = clean), one panel per corruption type, one line per family
    and variant: frozen solid, +ID dashed. ``curves``: ``analysis.robustness_curves`` rows of one dataset."""
    if curves.empty:
        return None
    first = {"noise": 0, "blur": 1}
    types = sorted(curves["corruption_type"].unique(), key=lambda t: (first.get(t, 2), t))
    n = len(types)
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    lo, hi = robust_limits(curves["r2"])
    fig, axes = plt.subplots(rows, cols, figsize=(3.5 * cols + 0.6, 3.1 * rows + 0.4), squeeze=False,
                             sharey=True)
    clipped = 0
    for ax, t in zip(axes.ravel(), types):
        c = curves[curves["corruption_type"] == t]
        for (fam, variant), g in c.groupby(["family", "variant"]):
            g = g.sort_values("severity")
            st = style(1.0 if variant == "+ID" else 0.0)
            yv, mask = np.maximum(g["r2"].to_numpy(float), lo), g["r2"].to_numpy(float) < lo
            clipped += int(mask.sum())
            ax.plot(g["severity"], yv, color=family_colour(fam), ms=4, lw=1.3,
                    label=f"{fam} {variant}" if variant == "+ID" else fam, **st)
            ax.plot(g["severity"].to_numpy()[mask], yv[mask], "v", color=family_colour(fam), ms=7, mec="k",
                    mew=0.6)
        ax.set_title(t, fontsize=9)
        ax.set_xlabel(corruption_axis_label(t), fontsize=8)
        ax.axhline(0, color="k", lw=0.6)
        ax.set_ylim(lo, hi)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    axes[0, 0].set_ylabel("action R2")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.tight_layout()
    fig.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 0.98), frameon=False)
    _note(fig, f"{clipped} point(s) below {lo:.2f} drawn at the lower edge (v)." if clipped else "")
    return fig


def transfer_figure(t: dict[str, Any], families: pd.Series):
    """Scatter of per-encoder R2 on two benchmarks (``analysis.transfer`` output) with Spearman rho."""
    table = t["table"]
    if len(table) < 3:
        return None
    fig, ax = plt.subplots(figsize=(5.4, max(4.6, 0.16 * len(table) + 1.5)))
    xs, ys, cols = [], [], []
    for lab, r in table.iterrows():
        c = family_colour(families.get(lab, "?"))
        ax.scatter(r["r2_a"], r["r2_b"], color=c, s=36, marker="s" if lab.endswith("+ID") else "o", zorder=3)
        xs.append(r["r2_a"])
        ys.append(r["r2_b"])
        cols.append(c)
    lo = float(min(table["r2_a"].min(), table["r2_b"].min()))
    hi = float(max(table["r2_a"].max(), table["r2_b"].max()))
    ax.plot([lo, hi], [lo, hi], color="0.6", lw=0.8)
    ax.set_xlabel(f"R2 on {t['dataset_a']}")
    ax.set_ylabel(f"R2 on {t['dataset_b']}")
    ax.set_title(f"Spearman rho = {t['rho']:.2f} [{t['rho_ci_low']:.2f}, {t['rho_ci_high']:.2f}], "
                 f"{t['n_encoders']} encoders", fontsize=9)
    ax.grid(alpha=0.3)
    ax.margins(0.05)
    ax.autoscale_view()
    repel_labels(ax, xs, ys, list(table.index), colours=cols)
    return fig
