"""Report figures (matplotlib, Agg), each drawn from a table that ``wmprobe.analysis`` computed.

Every function returns a ``Figure``, or ``None`` when its table holds too little to show (a single k, no
PSNR, no corruption). Conventions are those of ``wmprobe.analysis``: an encoder's headline cell is the
headline probe (``mlp`` when measured), the headline k (4 when measured), clean frames and its most-measured layer; values are
means over seeds and error bars the mean bootstrap CI over test episodes; ``label`` is the encoder plus
``+ID`` when it was trained with inverse-dynamics supervision. Frozen encoders are drawn with circles and
solid lines, +ID ones with squares and dashed lines, one colour per family throughout the report.
"""
from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from wmprobe.analysis import headline_k  # noqa: E402

FAMILY_ORDER = ("pixels", "random", "image-ssl", "vae", "autoencoder", "diffusion", "videomae", "video-mae",
                "vjepa", "video-jepa", "dynamics", "dynamics-actin")
AXES = ("translation", "rotation", "gripper")


def family_colours(families) -> dict[str, tuple]:
    """One tab10/tab20 colour per family, in a fixed family order so colours agree across figures."""
    fams = sorted({str(f) for f in families}, key=lambda f: (FAMILY_ORDER.index(f) if f in FAMILY_ORDER else 99, f))
    cmap = plt.get_cmap("tab10" if len(fams) <= 10 else "tab20")
    return {f: cmap(i % cmap.N) for i, f in enumerate(fams)}


def _style(id_weight: float) -> dict[str, Any]:
    return {"marker": "s", "ls": "--"} if float(id_weight) > 0 else {"marker": "o", "ls": "-"}


def to_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _yerr(r: pd.Series) -> list[list[float]] | None:
    if not {"r2_ci_low", "r2_ci_high"} <= set(r.index) or not np.isfinite([r["r2_ci_low"], r["r2_ci_high"]]).all():
        return None
    return [[max(0.0, r["r2"] - r["r2_ci_low"])], [max(0.0, r["r2_ci_high"] - r["r2"])]]


def pareto_figure(p: pd.DataFrame, dataset: str):
    """Fidelity (decoder PSNR) vs action R2 for one dataset's ``analysis.pareto`` rows; frontier highlighted."""
    p = p[np.isfinite(p["psnr"].astype(float))] if "psnr" in p else p.iloc[:0]
    if len(p) < 2:
        return None
    colours = family_colours(p["family"])
    fig, ax = plt.subplots(figsize=(6.6, 4.6))
    for _, r in p.iterrows():
        st = _style(r["id_weight"])
        ax.errorbar(r["psnr"], r["r2"], yerr=_yerr(r), fmt=st["marker"], color=colours[r["family"]],
                    ms=9 if r["on_front"] else 6, mec="k" if r["on_front"] else "none", mew=1.4, capsize=2,
                    label=r["family"], zorder=3)
        ax.annotate(r["label"], (r["psnr"], r["r2"]), fontsize=7, xytext=(4, 3), textcoords="offset points")
    f = p[p["on_front"]].sort_values("psnr")
    ax.plot(f["psnr"], f["r2"], "k--", lw=1, alpha=0.6, label="Pareto frontier", zorder=2)
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    ax.legend(uniq.values(), uniq.keys(), fontsize=7, loc="best")
    ax.set_xlabel("fidelity: decoder-probe PSNR on test frames (dB)")
    ax.set_ylabel("action R2 (inverse-dynamics probe)")
    ax.set_title(f"{dataset}: squares = +ID, outlined = on the frontier", fontsize=9)
    ax.grid(alpha=0.3)
    return fig


def per_axis_figure(s: pd.DataFrame):
    """Grouped bars of R2 per action axis group, one group of bars per encoder (``summary_table`` rows)."""
    cols = [f"r2_{a}" for a in AXES if f"r2_{a}" in s and np.isfinite(s[f"r2_{a}"].astype(float)).any()]
    if s.empty or not cols:
        return None
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(s) + 2), 3.8))
    x = np.arange(len(s))
    w = 0.8 / len(cols)
    for i, c in enumerate(cols):
        ax.bar(x + (i - (len(cols) - 1) / 2) * w, s[c].astype(float).clip(lower=-1), w, label=c[3:])
    ax.set_xticks(x, s["label"], rotation=45, ha="right", fontsize=8)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_ylabel("R2 (clipped at -1)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig


def id_effect_figure(s: pd.DataFrame, rob: pd.DataFrame | None = None):
    """Frozen -> +ID per family: clean R2 (and, when measured, mean R2 over corruptions) as arrows."""
    if s.empty or not (s["id_weight"] > 0).any() or s["frozen_r2"].notna().sum() == 0:
        return None
    pairs = s[(s["id_weight"] > 0) & s["frozen_r2"].notna()].sort_values("frozen_r2")
    corr = None
    if rob is not None and not rob.empty and (rob["corruption"] != "clean").any():
        corr = rob[rob["corruption"] != "clean"].groupby(["encoder", "id_weight"])["r2"].mean()
    fig, ax = plt.subplots(figsize=(6.6, max(2.6, 0.42 * len(pairs) + 1.2)))

    def arrow(a: float, b: float, y: float, colour: str, ls: str) -> None:
        a, b = max(a, -2.0), max(b, -2.0)
        ax.plot([a], [y], "o", color=colour, ms=5)
        ax.plot([b], [y], ">" if b >= a else "<", color=colour, ms=5)   # plotted, so the axes scale to it
        ax.annotate("", (b, y), (a, y), arrowprops={"arrowstyle": "-", "color": colour, "lw": 1.4, "ls": ls})

    for i, (_, r) in enumerate(pairs.iterrows()):
        arrow(r["frozen_r2"], r["r2"], i, "C0", "-")
        if corr is not None and (r["encoder"], 0.0) in corr.index and (r["encoder"], r["id_weight"]) in corr.index:
            arrow(corr[(r["encoder"], 0.0)], corr[(r["encoder"], r["id_weight"])], i - 0.28, "C3", "--")
    ax.set_yticks(range(len(pairs)), [f"{r['encoder']} (lambda={r['id_weight']:g})" for _, r in pairs.iterrows()],
                  fontsize=8)
    ax.axvline(0, color="k", lw=0.8)
    handles = [plt.Line2D([], [], color="C0", marker="o", label="clean R2: frozen (dot) -> +ID (arrow head)")]
    if corr is not None:
        handles.append(plt.Line2D([], [], color="C3", marker="o", ls="--",
                                  label="mean R2 over corruptions (clipped at -2)"))
    ax.legend(handles=handles, fontsize=7, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2, frameon=False)
    ax.set_xlabel("action R2")
    ax.grid(axis="x", alpha=0.3)
    return fig


def sweep_figure(d: pd.DataFrame, by: str, xlabel: str):
    """R2 vs ``by`` ('layer' or 'k') for encoders measured at >= 2 values. ``d``: clean rows of the headline
    probe for one dataset, with a ``label`` column; layers are ordered by the number in their name."""
    if d.empty:
        return None
    if by == "layer":
        d = d[d["k"] == headline_k(d["k"])]
    d = d.groupby(["label", by])["r2"].mean().reset_index()
    multi = d.groupby("label")[by].nunique()
    d = d[d["label"].isin(multi[multi >= 2].index)]
    if d.empty:
        return None
    fig, ax = plt.subplots(figsize=(6.6, 4.0))
    for lab, g in d.groupby("label"):
        st = _style(1.0 if lab.endswith("+ID") else 0.0)
        if by == "layer":
            g = g.assign(order=g["layer"].map(_layer_order)).sort_values("order")
            ax.plot(range(len(g)), g["r2"], label=lab, **st)
            ax.set_xticks(range(len(g)), g["layer"], rotation=45, ha="right", fontsize=8)
        else:
            g = g.sort_values(by)
            ax.plot(g[by], g["r2"], label=lab, **st)
    if by == "k":
        ks = sorted(d["k"].unique())
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("action R2")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return fig


def _layer_order(name: str) -> float:
    digits = "".join(ch for ch in str(name) if ch.isdigit())
    return float(digits) if digits else 1e9


def robustness_figure(curves: pd.DataFrame):
    """R2 vs corruption severity (severity 0 = clean), one panel per corruption type, one line per family:
    frozen solid, +ID dashed. ``curves``: ``analysis.robustness_curves`` rows of one dataset."""
    if curves.empty:
        return None
    types = [t for t in curves["corruption_type"].unique()]
    n = len(types)
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    colours = family_colours(curves["family"])
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols + 0.6, 3.0 * rows + 0.4), squeeze=False,
                             sharey=True)
    for ax, t in zip(axes.ravel(), types):
        c = curves[curves["corruption_type"] == t]
        for (fam, variant), g in c.groupby(["family", "variant"]):
            g = g.sort_values("severity")
            st = _style(1.0 if variant == "+ID" else 0.0)
            ax.plot(g["severity"], g["r2"].clip(lower=-2), color=colours[fam], ms=4,
                    label=f"{fam} {variant}" if variant == "+ID" else fam, **st)
        ax.set_title(t, fontsize=9)
        ax.set_xlabel("severity (0 = clean)", fontsize=8)
        ax.axhline(0, color="k", lw=0.6)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    axes[0, 0].set_ylabel("action R2 (clipped at -2)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="upper center", ncol=min(5, len(labels)),
               bbox_to_anchor=(0.5, 1.0 + 0.06 * np.ceil(len(labels) / 5)))
    fig.tight_layout()
    return fig


def transfer_figure(t: dict[str, Any], families: pd.Series):
    """Scatter of per-encoder R2 on two benchmarks (``analysis.transfer`` output) with Spearman rho."""
    table = t["table"]
    if len(table) < 3:
        return None
    colours = family_colours(families.reindex(table.index).fillna("?"))
    fig, ax = plt.subplots(figsize=(5.4, 4.8))
    for lab, r in table.iterrows():
        fam = families.get(lab, "?")
        ax.scatter(r["r2_a"], r["r2_b"], color=colours[fam], s=36, marker="s" if lab.endswith("+ID") else "o")
        ax.annotate(lab, (r["r2_a"], r["r2_b"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    lo = float(min(table["r2_a"].min(), table["r2_b"].min()))
    hi = float(max(table["r2_a"].max(), table["r2_b"].max()))
    ax.plot([lo, hi], [lo, hi], color="0.6", lw=0.8)
    ax.set_xlabel(f"R2 on {t['dataset_a']}")
    ax.set_ylabel(f"R2 on {t['dataset_b']}")
    ax.set_title(f"Spearman rho = {t['rho']:.2f} [{t['rho_ci_low']:.2f}, {t['rho_ci_high']:.2f}], "
                 f"{t['n_encoders']} encoders", fontsize=9)
    ax.grid(alpha=0.3)
    return fig


__all__ = ["family_colours", "id_effect_figure", "pareto_figure", "per_axis_figure",
           "robustness_figure", "sweep_figure", "to_png", "transfer_figure"]
