"""Across benchmarks: how well one dataset's encoder ranking transfers to another (Spearman rho with a
bootstrap CI over encoders), and the static-scene effect (video minus image-SSL mean R2 per suite)."""
from __future__ import annotations

from typing import Any, Sequence

import pandas as pd

from wmprobe.analysis.cells import CEILING, IMAGE_FAMILIES, STATE, VIDEO_FAMILIES, is_family, summary_table
from wmprobe.errors import ProbeError


def transfer(df: pd.DataFrame, dataset_a: str, dataset_b: str, *, n_boot: int = 1000,
             seed: int = 0) -> dict[str, Any]:
    """Spearman rho of the clean headline R2 of the encoders measured on both datasets, with a bootstrap CI (the
    ceiling and the state rows are references, not encoders: left out)."""
    from wmprobe.metrics import spearman, spearman_ci
    s = summary_table(df)
    if s.empty:
        raise ProbeError("transfer: the records hold no clean headline cells")
    s = s[~is_family(s, (CEILING, STATE))]
    a = s[s["dataset"] == dataset_a].set_index("label")["r2"]
    b = s[s["dataset"] == dataset_b].set_index("label")["r2"]
    common = a.index.intersection(b.index)
    if len(common) < 3:
        raise ProbeError(f"transfer: {len(common)} encoder(s) measured on both {dataset_a!r} and {dataset_b!r}; "
                         f"need >= 3 (datasets present: {sorted(s['dataset'].unique())})")
    table = pd.DataFrame({"r2_a": a[common], "r2_b": b[common]})
    table["rank_a"] = table["r2_a"].rank(ascending=False)
    table["rank_b"] = table["r2_b"].rank(ascending=False)
    rho = spearman(table["r2_a"].to_numpy(), table["r2_b"].to_numpy())
    lo, hi = spearman_ci(table["r2_a"].to_numpy(), table["r2_b"].to_numpy(), n_boot=n_boot, seed=seed)
    return {"dataset_a": dataset_a, "dataset_b": dataset_b, "rho": float(rho), "rho_ci_low": lo,
            "rho_ci_high": hi, "n_encoders": int(len(common)), "table": table.sort_values("rank_a")}


def static_gap(df: pd.DataFrame, dynamic: str = "dynamic", static: str = "static", *,
               image_families: Sequence[str] = IMAGE_FAMILIES,
               video_families: Sequence[str] = VIDEO_FAMILIES, frozen_only: bool = True) -> pd.DataFrame:
    """Per suite: mean clean R2 of image-SSL and of video families and ``gap = video - image``.

    The paper's static-scene effect is a smaller gap on the static suite (image priors suffice when the scene
    does not move); ``attrs['gap_change']`` holds gap(dynamic) - gap(static).
    """
    s = summary_table(df)
    if s.empty:
        raise ProbeError("static_gap: the records hold no clean headline cells")
    if frozen_only:
        s = s[s["id_weight"] == 0]
    rows = []
    for suite in (dynamic, static):
        d = s[s["dataset"] == suite]
        img = d[d["family"].isin(image_families)]["r2"]
        vid = d[d["family"].isin(video_families)]["r2"]
        if img.empty or vid.empty:
            raise ProbeError(f"static_gap: suite {suite!r} needs encoders of both an image family "
                             f"{list(image_families)} and a video family {list(video_families)}; it has families "
                             f"{sorted(d['family'].unique())}")
        rows.append({"dataset": suite, "image_r2": float(img.mean()), "video_r2": float(vid.mean()),
                     "gap": float(vid.mean() - img.mean()), "n_image": int(len(img)), "n_video": int(len(vid))})
    out = pd.DataFrame(rows)
    out.attrs["gap_change"] = float(out["gap"].iloc[0] - out["gap"].iloc[1])
    return out
