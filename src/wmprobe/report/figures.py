"""Report figures (matplotlib, Agg), each drawn from the records DataFrame only.

Every function takes the records and returns a ``Figure`` or ``None`` when the records hold nothing to
show (e.g. a single k). Conventions: the headline cell of an encoder is probe ``mlp`` (else the first probe
present), the smallest k, the clean corruption and the encoder's most-measured layer; values are means over
seeds, error bars the mean bootstrap CI over test episodes. ``label`` names an encoder as it appears in
tables: ``encoder`` plus ``+ID`` when it was trained with inverse-dynamics supervision.
"""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

FAMILY_ORDER = ("pixels", "random", "image-ssl", "vae", "autoencoder", "diffusion", "videomae", "video-mae",
                "vjepa", "video-jepa", "dynamics", "dynamics-actin")
AXES = ("translation", "rotation", "gripper")


def label(df: pd.DataFrame) -> pd.Series:
    plus = np.where(df["id_weight"].astype(float) > 0, " +ID", "")
    return df["encoder"].astype(str) + plus


def headline_probe(df: pd.DataFrame) -> str:
    probes = [p for p in df["probe"].unique() if not str(p).endswith(("-shuffled", "-single"))]
    return "mlp" if "mlp" in probes else (sorted(probes)[0] if probes else str(df["probe"].iloc[0]))


def headline(df: pd.DataFrame, dataset: str | None = None, corruption: str = "clean",
             probe: str | None = None) -> pd.DataFrame:
    """One row per encoder label: mean R2 (+ CI, per axis, psnr, ssim) over seeds for its headline cell."""
    d = df[df["error"].fillna("") == ""] if "error" in df else df
    probe = probe or headline_probe(d)
    d = d[(d["probe"] == probe) & (d["corruption"] == corruption)]
    if dataset is not None:
        d = d[d["dataset"] == dataset]
    if d.empty:
        return pd.DataFrame()
    d = d[d["k"] == d["k"].min()].assign(label=label(d))
    layer = d.groupby("label")["layer"].agg(lambda s: s.value_counts().sort_index().idxmax())
    d = d[d["layer"] == d["label"].map(layer)]
    cols = ["r2", "r2_ci_low", "r2_ci_high", *(f"r2_{a}" for a in AXES), "psnr", "ssim"]
    g = d.groupby("label")
    out = g[cols].mean()
    out["r2_seed_std"] = g["r2"].std(ddof=0)
    out["seeds"] = g["seed"].nunique()
    out["family"] = g["family"].first()
    out["id_weight"] = g["id_weight"].first()
    out["layer"] = g["layer"].first()
    return out.sort_values("r2", ascending=False)


def family_colours(families) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab10")
    fams = sorted(set(families), key=lambda f: (FAMILY_ORDER.index(f) if f in FAMILY_ORDER else 99, f))
    return {f: cmap(i % 10) for i, f in enumerate(fams)}


def to_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def pareto_figure(h: pd.DataFrame, front: np.ndarray):
    """Fidelity (PSNR) vs action R2, the frontier highlighted; ``front`` is a bool mask over ``h`` rows."""
    h = h[np.isfinite(h["psnr"])]
    if len(h) < 2:
        return None
    colours = family_colours(h["family"])
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for (lab, r), on in zip(h.iterrows(), front):
        ax.errorbar(r["psnr"], r["r2"], yerr=[[r["r2"] - r["r2_ci_low"]], [r["r2_ci_high"] - r["r2"]]],
                    fmt="o" if r["id_weight"] == 0 else "s", color=colours[r["family"]], ms=8 if on else 6,
                    mec="k" if on else "none", capsize=2, label=r["family"])
        ax.annotate(lab, (r["psnr"], r["r2"]), fontsize=7, xytext=(4, 3), textcoords="offset points")
    f = h[front].sort_values("psnr")
    ax.plot(f["psnr"], f["r2"], "k--", lw=1, alpha=0.6, label="Pareto frontier")
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    ax.legend(uniq.values(), uniq.keys(), fontsize=7, loc="best")
    ax.set_xlabel("fidelity: decoder PSNR (dB)")
    ax.set_ylabel("action R2 (inverse-dynamics probe)")
    ax.grid(alpha=0.3)
    return fig


def per_axis_figure(h: pd.DataFrame):
    cols = [f"r2_{a}" for a in AXES if np.isfinite(h.get(f"r2_{a}", pd.Series(dtype=float))).any()]
    if h.empty or not cols:
        return None
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(h) + 2), 3.8))
    x = np.arange(len(h))
    w = 0.8 / len(cols)
    for i, c in enumerate(cols):
        ax.bar(x + (i - (len(cols) - 1) / 2) * w, h[c].clip(lower=-1), w, label=c[3:])
    ax.set_xticks(x, h.index, rotation=45, ha="right", fontsize=8)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_ylabel("R2 (clipped at -1)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig


def sweep_figure(df: pd.DataFrame, by: str, xlabel: str):
    """R2 vs ``by`` ('layer' or 'k') for encoders measured at >= 2 values (headline probe, clean)."""
    d = df[(df["probe"] == headline_probe(df)) & (df["corruption"] == "clean")].assign(label=label(df))
    if by == "layer":
        d = d[d["k"] == d["k"].min()]
    d = d.groupby(["label", by])["r2"].mean().reset_index()
    multi = d.groupby("label")[by].nunique()
    d = d[d["label"].isin(multi[multi >= 2].index)]
    if d.empty:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for lab, g in d.groupby("label"):
        if by == "layer":
            g = g.assign(order=g["layer"].map(_layer_order)).sort_values("order")
            ax.plot(range(len(g)), g["r2"], "o-", label=lab)
            ax.set_xticks(range(len(g)), g["layer"], rotation=45, ha="right", fontsize=8)
        else:
            g = g.sort_values(by)
            ax.plot(g[by], g["r2"], "o-", label=lab)
    if by == "k":
        ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("action R2")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return fig


def _layer_order(name: str) -> float:
    digits = "".join(ch for ch in str(name) if ch.isdigit())
    return float(digits) if digits else 1e9


def robustness_figure(df: pd.DataFrame):
    """R2 per corruption, frozen (circles, solid) vs +ID (squares, dashed), one line per family."""
    probe = headline_probe(df)
    d = df[(df["probe"] == probe)]
    d = d[d["k"] == d["k"].min()]
    corr = [c for c in d["corruption"].unique() if c != "clean"]
    if not corr:
        return None
    order = ["clean", *sorted(corr)]
    g = d.groupby(["family", "id_weight", "corruption"])["r2"].mean().reset_index()
    colours = family_colours(g["family"])
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for (fam, idw), s in g.groupby(["family", "id_weight"]):
        s = s.set_index("corruption").reindex(order)
        ax.plot(range(len(order)), s["r2"].clip(lower=-2), "s--" if idw > 0 else "o-", color=colours[fam],
                label=f"{fam}{' +ID' if idw > 0 else ''}")
    ax.set_xticks(range(len(order)), order, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("action R2 (clipped at -2)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return fig


def transfer_figure(a: pd.Series, b: pd.Series, name_a: str, name_b: str, rho: float, ci: tuple[float, float],
                    families: pd.Series):
    """Scatter of per-encoder R2 on two benchmarks with Spearman rho of the rankings."""
    common = a.index.intersection(b.index)
    if len(common) < 3:
        return None
    colours = family_colours(families.loc[common])
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    for lab in common:
        ax.scatter(a[lab], b[lab], color=colours[families[lab]], s=36)
        ax.annotate(lab, (a[lab], b[lab]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    lo = min(a[common].min(), b[common].min())
    hi = max(a[common].max(), b[common].max())
    ax.plot([lo, hi], [lo, hi], color="0.6", lw=0.8)
    ax.set_xlabel(f"R2 on {name_a}")
    ax.set_ylabel(f"R2 on {name_b}")
    ax.set_title(f"Spearman rho = {rho:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]", fontsize=10)
    ax.grid(alpha=0.3)
    return fig
