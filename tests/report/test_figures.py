"""Report figures drawn from hand-made tables: one palette keyed by family, +ID by marker not colour, labels that
never overlap, corruption axes in their unit, an outlier that does not squash the rest."""
from __future__ import annotations

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest

from wmprobe.report import figures as F
from wmprobe.report.style import family_colour, family_colours, png_dpi, to_png
from wmprobe.verdict import tiers

FAMILIES = ("vae", "image-ssl", "diffusion", "videomae", "vjepa", "dynamics", "dynamics-actin")


def summary(n_fam: int = 7, spread: float = 0.01) -> pd.DataFrame:
    """16 encoders: 7 families frozen and +ID, the two floors; R2 packed within ``spread`` of 0.4."""
    rows = [dict(label="pixels:8", encoder="pixels:8", family="pixels", id_weight=0.0, r2=0.35, psnr=21.5),
            dict(label="random-conv:0", encoder="random-conv:0", family="random", id_weight=0.0, r2=0.3, psnr=24.3)]
    for i, fam in enumerate(FAMILIES[:n_fam]):
        for idw in (0.0, 1.0):
            r2 = 0.4 + spread * (i + 7 * idw) / 14
            rows.append(dict(label=f"zoo:{fam}" + (" +ID" if idw else ""), encoder=f"zoo:{fam}", family=fam,
                             id_weight=idw, r2=r2, psnr=21.0 + 0.1 * i + 0.05 * idw))
    s = pd.DataFrame(rows)
    s["r2_ci_low"], s["r2_ci_high"] = s["r2"] - 0.03, s["r2"] + 0.03
    s["r2_translation"], s["r2_rotation"] = s["r2"] + 0.1, s["r2"] - 0.5
    s["frozen_r2"] = np.where(s["id_weight"] > 0, s["r2"] - 0.05, np.nan)
    s["on_front"] = False
    return s


def _rgb(c) -> tuple:
    return tuple(np.round(mcolors.to_rgb(c), 4))


def _drawn_colours(fig) -> set[tuple]:
    out = set()
    for ax in fig.axes:
        for ln in ax.lines:
            if ln.get_marker() not in (None, "None", "", " "):
                out.add(_rgb(ln.get_color()))
        for p in ax.patches:
            if p.get_width() != 0:
                out.add(_rgb(p.get_facecolor()))
    return out


def test_one_family_palette_across_figures():
    assert family_colours(["vjepa"])["vjepa"] == family_colours(["vae", "vjepa", "x"])["vjepa"]   # set-independent
    assert len({_rgb(family_colour(f)) for f in FAMILIES + ("pixels", "random", "ceiling", "state")}) == 11
    assert family_colour("my-own-family") == family_colour("my-own-family")            # unknown: stable
    s = summary()
    s["tier"] = tiers(s)
    want = {_rgb(family_colour(f)) for f in s["family"]}
    for fig in (F.headline_figure(s, s["tier"], "d", 4), F.pareto_figure(s, "d"), F.per_axis_figure(s),
                F.id_effect_figure(s)):
        drawn = _drawn_colours(fig) - {_rgb("k"), _rgb("0.3"), _rgb("0.85")}     # axes, legend keys, floor band
        assert drawn and drawn <= want, drawn - want                  # every mark is in its family's colour
    fig = F.headline_figure(s, s["tier"], "d", 4)                     # +ID differs by marker, not colour
    ax = fig.axes[0]
    marks = {(ln.get_marker(), _rgb(ln.get_color())) for ln in ax.lines if ln.get_marker() in ("o", "s")}
    assert ("o", _rgb(family_colour("vjepa"))) in marks and ("s", _rgb(family_colour("vjepa"))) in marks
    png = to_png(fig)
    assert png_dpi(png) >= 150


def test_pareto_labels_do_not_overlap_in_a_tight_cluster():
    s = summary(spread=0.004)                                         # 14 encoders within 0.004 R2, 0.7 dB
    fig = F.pareto_figure(s, "d")
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    texts = fig.axes[0].texts
    boxes = [t.get_window_extent(r) for t in texts]
    shown = "\n".join(t.get_text() for t in texts)
    assert all(lab in shown for lab in s["label"])                    # beside its point or in the numbered key
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert not boxes[i].overlaps(boxes[j]), (fig.axes[0].texts[i].get_text(), fig.axes[0].texts[j].get_text())


def test_pareto_labels_sit_beside_their_points_when_there_is_room():
    s = summary(spread=0.6)
    fig = F.pareto_figure(s, "d")
    assert sorted(t.get_text() for t in fig.axes[0].texts) == sorted(s["label"])


def test_sixteen_lines_stay_distinguishable():
    d = pd.DataFrame([dict(label=r.label, family=r.family, id_weight=r.id_weight, k=k, layer="out",
                           r2=r.r2 + 0.01 * k) for r in summary().itertuples() for k in (1, 2, 4)])
    fig = F.sweep_figure(d, "k", "k")
    lines = [ln for ln in fig.axes[0].lines if ln.get_label() in set(d["label"])]
    assert len(lines) == 16
    looks = {(_rgb(ln.get_color()), ln.get_marker(), ln.get_linestyle()) for ln in lines}
    assert len(looks) == 16                                           # colour x marker x line style: all distinct


def test_robustness_axes_in_units_and_an_outlier_does_not_squash_the_rest():
    rows = []
    for fam, drop in (("vjepa", 0.3), ("vae", 0.5), ("diffusion", 0.4), ("videomae", 0.6), ("random", 4.5)):
        for t, sev in (("noise", (0.0, 0.05, 0.15)), ("blur", (0.0, 5.0, 11.0)), ("fog", (0.0, 3.0))):
            for x in sev:                                            # random-init collapses to -4: the outlier
                rows.append(dict(dataset="d", family=fam, variant="frozen", corruption_type=t, severity=x,
                                 r2=0.5 - drop * x / max(sev), drop=0.0))
    c = pd.DataFrame(rows)
    fig = F.robustness_figure(c)
    labels = {ax.get_title(): ax.get_xlabel() for ax in fig.axes if ax.get_title()}
    assert "sigma" in labels["noise"] and "kernel size" in labels["blur"] and "severity" in labels["fog"]
    lo, hi = fig.axes[0].get_ylim()
    assert lo > -1.5 and hi - lo < 2.0                                  # the bulk keeps its resolution
    clipped = [ln for ax in fig.axes for ln in ax.lines if ln.get_marker() == "v" and len(ln.get_xdata())]
    assert clipped                                                     # and the clipped points are marked
    assert "drawn at the lower edge" in fig.wmprobe_note


@pytest.mark.parametrize("drop", [False, True])
def test_id_effect_draws_the_corruption_arrows_only_when_measured(drop):
    s = summary()
    rob = None if drop else pd.DataFrame([dict(encoder=r.encoder, id_weight=r.id_weight, corruption="noise:0.15",
                                               r2=r.r2 - 0.2) for r in s.itertuples()])
    fig = F.id_effect_figure(s, rob)
    assert fig.wmprobe_drew_corruptions is (not drop)
    assert all("id_weight=" in t.get_text() for t in fig.axes[0].get_yticklabels())
