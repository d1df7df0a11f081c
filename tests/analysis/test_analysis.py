"""Analyses on a hand-made records table: summary, Pareto front, robustness, transfer (vs scipy), static gap."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from wmprobe.analysis import (corruption_order, paper_robustness, pareto, robustness_curves, robustness_long,
                              robustness_table, static_gap, summary_table, transfer)
from wmprobe.errors import ProbeError
from wmprobe.metrics import spearman

# (encoder, family, id_weight) -> clean R2 on (dynamic, static), PSNR
ENCODERS = {
    ("zoo:vae", "vae", 0.0): ((-0.5, -0.3), 30.0),
    ("pixels:32", "pixels", 0.0): ((0.0, 0.1), 40.0),
    ("dino", "dinov2", 0.0): ((0.1, 0.7), 15.0),
    ("vjepa", "vjepa2", 0.0): ((0.4, 0.8), 20.0),
    ("vjepa", "vjepa2", 1.0): ((0.8, 0.9), 19.0),
    ("vmae", "videomae", 0.0): ((0.3, 0.75), 22.0),
}
# R2 drop per unit severity: +ID latents degrade less than frozen ones
DROP = {0.0: 0.3, 1.0: 0.05}
CORR = {"noise:0.15": 2.0, "blur:11": 3.0, "fog:1": 1.0, "fog:3": 3.0}


def records() -> pd.DataFrame:
    rows = []
    for (enc, fam, idw), ((r2_dyn, r2_stat), psnr) in ENCODERS.items():
        for ds, base in (("dynamic", r2_dyn), ("static", r2_stat)):
            for seed, jitter in ((0, -0.01), (1, 0.01)):
                cell = dict(encoder=enc, family=fam, id_weight=idw, dataset=ds, split="task", layer="out", k=1,
                            seed=seed, error="")
                r2 = base + jitter
                rows.append(dict(cell, corruption="clean", probe="mlp", r2=r2, r2_ci_low=r2 - 0.1,
                                 r2_ci_high=r2 + 0.1, r2_translation=r2 + 0.05, r2_rotation=r2 - 0.05,
                                 r2_gripper=r2, psnr=psnr if seed == 0 else np.nan, ssim=psnr / 50))
                rows.append(dict(cell, corruption="clean", probe="ridge", r2=r2 - 0.2))
                rows.append(dict(cell, corruption="clean", probe="mlp-shuffled", r2=-0.01))
                rows.append(dict(cell, corruption="clean", probe="mlp", k=8, r2=r2 + 0.3))        # not headline k
                if ds == "dynamic":
                    for spec, sev in CORR.items():
                        rows.append(dict(cell, corruption=spec, probe="mlp", r2=r2 - DROP[idw] * sev))
    rows.append(dict(encoder="vjepa", family="vjepa2", id_weight=0.0, dataset="dynamic", split="task", layer="l2",
                     k=1, seed=0, error="", corruption="clean", probe="mlp", r2=0.99))             # less-measured layer
    rows.append(dict(encoder="dino", family="dinov2", id_weight=0.0, dataset="dynamic", split="task", layer="out",
                     k=1, seed=2, error="oom", corruption="clean", probe="mlp", r2=5.0))          # failed cell
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return records()


def test_summary_means_over_seeds_ranks_and_id_gain(df):
    s = summary_table(df, "dynamic").set_index("label")
    assert list(s.index) == ["vjepa +ID", "vjepa", "vmae", "dino", "pixels:32", "zoo:vae"]
    assert s.loc["vjepa", "r2"] == pytest.approx(0.4) and s.loc["vjepa", "layer"] == "out"
    assert s.loc["dino", "r2"] == pytest.approx(0.1) and s.loc["dino", "seeds"] == 2     # failed row ignored
    assert s.loc["vjepa", "r2_seed_std"] == pytest.approx(np.std([-0.01, 0.01], ddof=1))   # sample sd over seeds
    assert s.loc["vmae", "r2_translation"] == pytest.approx(0.35)
    assert s.loc["vmae", "psnr"] == pytest.approx(22.0) and s.loc["vmae", "ssim"] == pytest.approx(0.44)
    assert s.loc["vjepa +ID", "frozen_r2"] == pytest.approx(0.4)
    assert s.loc["vjepa +ID", "id_gain"] == pytest.approx(0.4)
    assert np.isnan(s.loc["vjepa", "id_gain"])
    assert set(summary_table(df)["dataset"]) == {"dynamic", "static"}


def test_headline_k_is_the_papers_k4_when_measured_else_the_smallest(df):
    from wmprobe.analysis import headline_k
    assert headline_k([1, 2, 8]) == 1 and headline_k([8, 4, 1]) == 4 and headline_k(pd.Series([16, 8])) == 8
    with_k4 = pd.concat([df, df[df["k"] == 8].assign(k=4, r2=lambda d: d["r2"] - 0.1)], ignore_index=True)
    s = summary_table(with_k4, "dynamic").set_index("label")
    assert (s["k"] == 4).all() and s.loc["vjepa", "r2"] == pytest.approx(0.4 + 0.3 - 0.1)


def test_pareto_front_on_hand_made_points(df):
    p = pareto(df, "dynamic").set_index("label")
    assert set(p.index[p["on_front"]]) == {"pixels:32", "vjepa +ID", "vjepa", "vmae"}
    # brute force: on the front iff no other point is >= in both and > in one
    x, y = p["psnr"].to_numpy(), p["r2"].to_numpy()
    brute = [not any((x[j] >= x[i]) and (y[j] >= y[i]) and ((x[j] > x[i]) or (y[j] > y[i]))
                     for j in range(len(x))) for i in range(len(x))]
    assert list(p["on_front"]) == brute


def test_robustness_table_orders_corruptions_and_shows_id_robustness(df):
    t = robustness_table(df, "dynamic").set_index("label")
    assert [c for c in t.columns if ":" in c or c == "clean"] == ["clean", "noise:0.15", "blur:11", "fog:1", "fog:3"]
    assert t.loc["vjepa", "blur:11"] == pytest.approx(0.4 - 0.9)
    assert t.loc["vjepa +ID", "blur:11"] == pytest.approx(0.8 - 0.15)
    long = robustness_long(df, "dynamic")
    drop = long[long["corruption"] == "noise:0.15"].set_index("label")["drop"]
    assert drop["vjepa +ID"] > drop["vjepa"] and drop["vjepa"] == pytest.approx(-0.6)
    assert set(long.loc[long["corruption"] == "fog:3", "severity"]) == {3.0}
    assert corruption_order(["fog:3", "clean", "blur:11", "contrast:1", "fog:1", "noise:0.15"]) == \
        ["clean", "noise:0.15", "blur:11", "contrast:1", "fog:1", "fog:3"]


def test_paper_robustness_pattern_is_computed_not_asserted(df):
    (row,) = paper_robustness(df, "dynamic").to_dict("records")          # vjepa (family vjepa2) frozen vs +ID
    assert row["encoder"] == "vjepa" and row["id_weight"] == 1.0
    assert row["frozen_clean"] == pytest.approx(0.4) and row["frozen_blur:11"] == pytest.approx(0.4 - 0.9)
    assert row["id_noise:0.15"] == pytest.approx(0.8 - 0.1) and row["id_drop_blur:11"] == pytest.approx(-0.15)
    assert row["repeats"] is True
    flipped = df.assign(id_weight=df["id_weight"].map({0.0: 1.0, 1.0: 0.0}))   # +ID now degrades more
    assert paper_robustness(flipped, "dynamic")["repeats"].tolist() == [False]
    assert paper_robustness(df, "static").empty                          # no corruptions measured there
    assert paper_robustness(df[df["corruption"] != "blur:11"], "dynamic").empty   # needs both of the paper's


def test_robustness_curves_start_at_clean_and_fall_with_severity(df):
    c = robustness_curves(df, "dynamic")
    fog = c[(c["family"] == "vjepa2") & (c["variant"] == "frozen") & (c["corruption_type"] == "fog")]
    assert list(fog["severity"]) == [0.0, 1.0, 3.0]
    assert list(fog["r2"]) == pytest.approx([0.4, 0.1, -0.5])
    fog_id = c[(c["family"] == "vjepa2") & (c["variant"] == "+ID") & (c["corruption_type"] == "fog")]
    assert fog_id["drop"].min() > fog["drop"].min()


def test_transfer_matches_scipy_spearman(df):
    t = transfer(df, "dynamic", "static", n_boot=300)
    a = t["table"]["r2_a"].to_numpy()
    b = t["table"]["r2_b"].to_numpy()
    assert t["n_encoders"] == 6
    assert t["rho"] == pytest.approx(stats.spearmanr(a, b).statistic)
    assert t["rho_ci_low"] <= t["rho"] <= t["rho_ci_high"]
    with pytest.raises(ProbeError, match="need >= 3"):
        transfer(df, "dynamic", "libero")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spearman_equals_scipy_with_ties(seed):
    r = np.random.default_rng(seed)
    a, b = r.integers(0, 5, 12).astype(float), r.normal(size=12)
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic)


def test_static_gap_is_smaller_in_static_scenes(df):
    g = static_gap(df).set_index("dataset")
    assert g.loc["dynamic", "gap"] == pytest.approx((0.4 + 0.3) / 2 - 0.1)
    assert g.loc["static", "gap"] == pytest.approx((0.8 + 0.75) / 2 - 0.7)
    assert g.attrs["gap_change"] == pytest.approx(g.loc["dynamic", "gap"] - g.loc["static", "gap"]) and \
        g.attrs["gap_change"] > 0
    with pytest.raises(ProbeError, match="image family"):
        static_gap(df[df["family"] != "dinov2"])


def test_records_without_required_columns_are_rejected():
    with pytest.raises(ProbeError, match="lacks column"):
        summary_table(pd.DataFrame({"encoder": ["a"], "r2": [0.1]}))


# ---- r2_norm: each encoder's place between the best floor and the ceiling ----------------------------------------
def _norm_records(ceiling: bool = True) -> pd.DataFrame:
    """Floors pixels 0.2 / random 0.3 (random the best), ceiling 0.8, an encoder at 0.55; two seeds (+-0.01),
    two layers for the ceiling (its headline layer 'out' is the most measured), one corruption, a control."""
    rows = []
    refs = {("pixels:8", "pixels"): 0.2, ("random-conv:0", "random"): 0.3, ("zoo:vjepa", "vjepa"): 0.55}
    if ceiling:
        refs[("ceiling", "ceiling")] = 0.8
    for (enc, fam), r2 in refs.items():
        for corr, drop in (("clean", 0.0), ("noise:0.15", 0.1 if fam != "random" else 0.25)):
            for seed, j in ((0, -0.01), (1, 0.01)):
                cell = dict(encoder=enc, family=fam, id_weight=0.0, dataset="dynamic", split="task", corruption=corr,
                            layer="out", k=4, seed=seed, error="")
                rows.append(dict(cell, probe="mlp", r2=r2 - drop + j))
                rows.append(dict(cell, probe="mlp-shuffled", r2=-0.02))
        if fam == "ceiling":   # a second, worse layer measured once: not the headline layer
            rows.append(dict(encoder=enc, family=fam, id_weight=0.0, dataset="dynamic", split="task",
                             corruption="clean", layer="conv2", k=4, seed=0, error="", probe="mlp", r2=0.1))
    return pd.DataFrame(rows)


def test_r2_norm_is_0_at_the_best_floor_and_1_at_the_ceiling():
    from wmprobe.analysis import add_r2_norm, floor_ceiling
    d = add_r2_norm(_norm_records())
    clean = d[(d["corruption"] == "clean") & (d["probe"] == "mlp") & (d["layer"] == "out")]
    mean = clean.groupby("encoder")["r2_norm"].mean()
    assert mean["random-conv:0"] == pytest.approx(0.0)          # the best floor is the max of the two floors
    assert mean["ceiling"] == pytest.approx(1.0)
    assert mean["zoo:vjepa"] == pytest.approx((0.55 - 0.3) / (0.8 - 0.3))
    assert mean["pixels:8"] == pytest.approx((0.2 - 0.3) / 0.5)
    # per seed: (r2 - floor) / (ceiling - floor) with the seed-mean floor and ceiling of the same group
    row = clean[(clean["encoder"] == "zoo:vjepa") & (clean["seed"] == 1)].iloc[0]
    assert row["r2_norm"] == pytest.approx((0.56 - 0.3) / 0.5)
    # each corruption is its own group: under noise the pixels floor (0.1) beats random-init (0.05)
    fc = floor_ceiling(_norm_records()).set_index(["corruption", "probe"])
    assert fc.loc[("noise:0.15", "mlp"), "floor_label"] == "pixels:8"
    assert fc.loc[("noise:0.15", "mlp"), "floor"] == pytest.approx(0.1)
    assert fc.loc[("clean", "mlp"), "ceiling"] == pytest.approx(0.8)    # its headline layer, not the best row
    noisy = d[(d["corruption"] == "noise:0.15") & (d["probe"] == "mlp") & (d["encoder"] == "zoo:vjepa")]
    assert noisy["r2_norm"].mean() == pytest.approx((0.45 - 0.1) / (0.7 - 0.1))
    assert d.loc[d["probe"] == "mlp-shuffled", "r2_norm"].isna().all()    # controls are not on this scale


def test_r2_norm_is_nan_without_a_ceiling_and_in_the_summary():
    from wmprobe.analysis import add_r2_norm
    assert add_r2_norm(_norm_records(ceiling=False))["r2_norm"].isna().all()
    s = summary_table(_norm_records()).set_index("label")
    assert s.loc["ceiling", "r2_norm"] == pytest.approx(1.0) and s.loc["random-conv:0", "r2_norm"] == pytest.approx(0)
    assert summary_table(_norm_records(ceiling=False))["r2_norm"].isna().all()
    flat = add_r2_norm(_norm_records().assign(r2=lambda x: np.where(x["family"] == "ceiling", 0.32, x["r2"])))
    assert flat.loc[flat["corruption"] == "clean", "r2_norm"].isna().all()   # ceiling - floor < MIN_SPAN
    assert flat.loc[(flat["corruption"] != "clean") & (flat["probe"] == "mlp"), "r2_norm"].notna().all()


def test_records_written_by_a_study_carry_r2_norm(tmp_path):
    from wmprobe.records import read_records, write_records
    rows = _norm_records().to_dict("records")
    write_records(rows[: len(rows) // 2], tmp_path)                 # no ceiling yet
    assert read_records(tmp_path)["r2_norm"].isna().all()
    write_records(rows[len(rows) // 2:], tmp_path)                  # the ceiling arrives: every row is recomputed
    df = read_records(tmp_path)
    got = df[(df["encoder"] == "zoo:vjepa") & (df["corruption"] == "clean") & (df["probe"] == "mlp")]
    assert got["r2_norm"].mean() == pytest.approx(0.5)
