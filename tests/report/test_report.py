"""The report from a hand-made records table, checked in headless Chromium (page loads with no console
errors, every figure decodes and is non-blank, the summary table sorts)."""
import json

import numpy as np
import pandas as pd
import pytest

from helpers import chromium, chromium_check

from wmprobe.records import write_records
from wmprobe.report import build_report

pytestmark = pytest.mark.slow   # the module's fixtures build whole reports with every figure (minutes)


def fake_records(test_episodes: int = 8):
    """Two suites; floors (pixels, random-init), three zoo families frozen and +ID, the ceiling and the state
    ceiling (frozen only), headline groups and gripper accuracy as the current records carry them."""
    rng = np.random.default_rng(0)
    fams = {"pixels": ("pixels", 0.15, 30), "random-conv": ("random", 0.2, 14),
            "zoo:vae": ("vae", 0.35, 28), "zoo:vjepa": ("vjepa", 0.6, 15), "zoo:image-ssl": ("image-ssl", 0.45, 13),
            "ceiling": ("ceiling", 0.9, np.nan), "state": ("state", 0.95, np.nan)}
    rows = []
    for ds, shift in (("dynamic", 0.0), ("static", 0.1)):
        for enc, (fam, base, psnr) in fams.items():
            for idw in ((0.0,) if fam in ("pixels", "random", "ceiling", "state") else (0.0, 0.1)):
                for corr, drop in (("clean", 0), ("noise:0.15", 0.3), ("blur:11", 0.5)):
                    for layer, lb in (("l1", -0.1), ("l2", 0.0)):
                        for k in (1, 4):
                            for probe, pb in (("mlp", 0), ("ridge", -0.05), ("mlp-shuffled", -10)):
                                for seed in range(3):
                                    r2 = base + shift + 0.2 * (idw > 0) - drop * (1 - (idw > 0) / 2) + lb + pb \
                                        + 0.05 * (k == 4) + rng.normal(0, 0.01)
                                    r2 = r2 if pb > -1 else rng.normal(-0.05, 0.02)
                                    rows.append(dict(encoder=enc, family=fam, id_weight=idw, dataset=ds, split="task",
                                                     corruption=corr, layer=layer, probe=probe, k=k, seed=seed,
                                                     r2=r2, r2_ci_low=r2 - 0.05, r2_ci_high=r2 + 0.05,
                                                     r2_translation=r2 + 0.1, r2_rotation=r2 - 0.2, r2_gripper=r2,
                                                     psnr=psnr + 3 * (idw > 0) if corr == "clean" else np.nan,
                                                     ssim=0.5, dataset_fingerprint=f"fp-{ds}",
                                                     headline_groups="translation", acc_gripper=0.7,
                                                     bacc_gripper=0.6, n_test_episodes=test_episodes))
    return rows


RULE = "a group is in the headline iff its state-ceiling R2 is >= 0.5 and it is not constant on the test episodes"
AUDIT = {"dynamic": {  # as wmprobe.data.audit writes it (config.yaml `audit`)
    "headline_groups": ["translation"], "rule": RULE, "override": False, "fallback": False, "fallback_reason": None,
    "groups": {
        "translation": {"axes": ["x", "y", "z"], "var_share": 0.8, "constant_on_test": False, "state_ceiling_r2": 0.95,
                        "image_px_per_step": 2.4, "image_px_per_k": 9.6, "identifiable": True, "reasons": []},
        "rotation": {"axes": ["roll", "pitch", "yaw"], "var_share": 2.5, "constant_on_test": False,
                     "state_ceiling_r2": 0.13, "image_px_per_step": 0.3, "image_px_per_k": 1.2, "identifiable": False,
                     "reasons": ["state ceiling R2 0.130 < 0.5", "median image motion over k 1.20 px < 2 px"]},
        "gripper": {"axes": ["gripper"], "var_share": 0.0, "constant_on_test": True, "state_ceiling_r2": 0.81,
                    "image_px_per_step": None, "image_px_per_k": None, "identifiable": False,
                    "reasons": ["constant on all 8 test episodes"]}}}}
HEADLINE = {"dynamic": {  # as the study resolves it (config.yaml `headline`)
    "headline_groups": ["translation"], "source": "audit", "rule": f"the action-space audit: {RULE}", "k": 4,
    "left_out": {"rotation": f"not identifiable by the audit's rule ({RULE})",
                 "gripper": f"not identifiable by the audit's rule ({RULE})"}}}
LEAKAGE = {"ok": True, "problems": [], "checked": {"datasets": 2, "train_episodes": 80, "test_episodes": 16,
                                                  "test_task_names": ["lift-blue", "reach-red"],
                                                  "pool": {"episodes": 60, "tasks": 6, "fingerprint": "f"},
                                                  "zoo_checkpoints": 7}}
CONFIG = {"preset": "test", "audit": AUDIT, "headline": HEADLINE, "leakage": LEAKAGE}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    rows = fake_records()
    rows.append(dict(rows[0], seed=9, r2=np.nan, error="ProbeError: k=8 is longer than episode 3 (7 steps)"))
    write_records(rows, out, CONFIG)
    return build_report(out)


FIGURES = ("pareto", "per_axis", "id_effect", "r2_vs_layer", "r2_vs_k", "robustness", "r2_norm")
N_FIGURES = 2 * len(FIGURES) + 2     # per dataset, plus transfer and the headline figure


def test_report_files(report):
    out = report.parent
    for name in FIGURES + ("transfer",) + tuple(f"{f}-static" for f in FIGURES):
        assert (out / "figures" / f"{name}.png").stat().st_size > 5000, name
        assert (out / "figures" / f"{name}.svg").exists()
    tex = (out / "tables" / "summary.tex").read_text()
    assert "\\begin{tabular}" in tex and "zoo:vjepa +ID" in tex
    assert "\\begin{tabular}" in (out / "tables" / "robustness.tex").read_text()
    html = report.read_text()
    assert "http://" not in html and "https://" not in html  # self-contained
    assert html.count("data:image/png;base64,") == N_FIGURES
    assert (out / "figures" / "headline.png").exists()


def test_summary_ranks_by_r2_and_reports_the_control(report):
    import pandas as pd
    for name in ("summary", "summary-static"):
        s = pd.read_csv(report.parent / "tables" / f"{name}.csv")
        assert list(s["label"].iloc[:3]) == ["state", "ceiling", "zoo:vjepa +ID"]
        assert (s["r2"].diff().dropna() <= 0).all()
        assert (s["shuffled_r2"] < 0.05).all()
        assert s["r2_norm"].iloc[1] == pytest.approx(1.0)            # the ceiling
        idr = s[s["label"].str.endswith("+ID")]
        np.testing.assert_allclose(idr["id_gain"], idr["r2"] - idr["frozen_r2"])
        assert (idr["id_gain"] > 0.1).all()          # the fake +ID adds 0.2


def test_tables_and_findings_come_from_the_analysis(report):
    import pandas as pd
    from wmprobe import analysis as A
    from wmprobe.records import read_records
    out = report.parent
    df = read_records(out)
    p = pd.read_csv(out / "tables" / "pareto.csv")
    ref = A.pareto(df)
    assert sorted(p.loc[p["on_front"], "label"]) == sorted(ref.loc[ref["on_front"], "label"])
    rob = pd.read_csv(out / "tables" / "robustness.csv")
    assert {"clean", "noise:0.15", "blur:11"} <= set(rob.columns)
    f = json.loads((out / "findings.json").read_text())
    dyn = f["per_dataset"]["dynamic"]
    assert dyn["best"]["label"] == "zoo:vjepa +ID"
    assert dyn["id"]["raised"] == dyn["id"]["families"] == 3                  # vae, vjepa, image-ssl
    assert dyn["id"]["mean_drop_id"] > dyn["id"]["mean_drop_frozen"]     # the fake +ID halves the drop
    assert dyn["shuffled_max"] < 0.05
    (paper,) = dyn["paper_robustness"]                                   # zoo:vjepa, frozen vs +ID 0.1
    assert paper["encoder"] == "zoo:vjepa" and paper["repeats"] is True
    assert paper["id_drop_blur:11"] > paper["frozen_drop_blur:11"]
    t = f["transfer"]["dynamic|static"]
    assert t["rho"] == pytest.approx(A.transfer(df, "dynamic", "static")["rho"])
    assert "static_gap" in f and (out / "tables" / "static_gap.csv").exists()
    failed = pd.read_csv(out / "tables" / "failed.csv")
    assert len(failed) == 1 and "longer than episode" in failed["error"].iloc[0]
    html = report.read_text()
    assert "Failed cells (1)" in html and "Findings" in html
    assert "the paper's +ID robustness pattern on zoo:vjepa" in html and "Repeated:" in html


def test_report_refuses_records_where_every_cell_failed(tmp_path):
    from wmprobe.errors import ProbeError
    rows = [dict(r, r2=np.nan, error="boom") for r in fake_records()[:5]]
    write_records(rows, tmp_path, {"preset": "test"})
    with pytest.raises(ProbeError, match="every cell in the records failed"):
        build_report(tmp_path)


def test_report_opens_with_a_verdict_computed_from_the_records(report):
    import re
    html = report.read_text()
    assert html.index('id="verdict"') < html.index('id="headline-figure"') < html.index("<table")
    text = re.sub(r"<[^>]+>", "", re.search(r'<p id="verdict".*?</p>', html, re.S).group(0))
    for fact in ("held-out tasks", "headline k = 4", "8 test episodes", "3 seed(s)", "headline group(s) translation",
                 "Above the floors", "zoo:vjepa +ID", "The ceiling", "tiers whose tops are CI-separated",
                 "left out of the headline by the action-space audit", "The best encoder, zoo:vjepa +ID, covers",
                 "rotation (state ceiling R2 0.130 &lt; 0.5; median image motion over k 1.20 px &lt; 2 px)",
                 "gripper (constant on all 8 test episodes)",
                 "Of 3 families measured frozen and +ID, +ID raised R2 for 3 (CI-separated: zoo:vjepa +0.20",
                 "shuffled-pairs control", "leakage check found no test task",
                 "held-out tasks lift-blue, reach-red; against the 60-episode pretraining pool; 7 zoo checkpoints",
                 "With only 8 test episodes (fewer than 20)"):
        assert fact in text, fact
    from html import escape
    assert "<h3>Action-space audit</h3>" in html and escape(RULE) in html
    f = json.loads((report.parent / "findings.json").read_text())["per_dataset"]["dynamic"]["verdict"]
    assert f["limits"]["audit"]["left_out"]["gripper"] == "constant on all 8 test episodes"
    assert 0 < f["r2_norm"]["zoo:vjepa +ID"] < 1 and list(f["r2_norm"])[0] == "zoo:vjepa +ID"
    assert f["tiers"][0] == ["zoo:vjepa +ID"] and f["small_data"] is True
    assert "state" not in sum(f["tiers"], []) and f["references"]["ceiling"][0]["label"] == "ceiling"
    assert {r["agreement"] for r in f["paper_table1"]["families"]} == {"agrees"}      # the fake +ID adds 0.2
    assert "lambda" not in html and "(id_weight 0.1)" in html          # one name for +ID strength


@pytest.fixture(scope="module")
def large_report(tmp_path_factory):
    """One dataset, clean cells only, 40 test episodes, old records (no ceiling, no groups, no audit)."""
    out = tmp_path_factory.mktemp("large")
    keep = ("headline_groups", "acc_gripper", "bacc_gripper")
    rows = [{k: v for k, v in r.items() if k not in keep} for r in fake_records(test_episodes=40)
            if r["dataset"] == "dynamic" and r["corruption"] == "clean" and r["family"] not in ("ceiling", "state")]
    write_records(rows, out, {"preset": "test"})
    return build_report(out)


def test_small_data_warning_only_for_small_test_sets(report, large_report):
    import re
    html = large_report.read_text()
    text = re.sub(r"<[^>]+>", "", re.search(r'<p id="verdict".*?</p>', html, re.S).group(0))
    assert "40 test episodes" in text and "read the CIs before the ranks" not in html
    assert "read the CIs before the ranks" in report.read_text()
    assert "No ceiling was measured" in text and "No leakage check was recorded" in text
    assert "No action-space audit was recorded" in text and "every action dim" in text
    # the +ID figure's caption describes what is drawn: no corruptions here, so no dashed arrows
    cap = re.search(r"<b>Frozen vs \+ID\.</b>(.*?)</figcaption>", html, re.S).group(1)
    assert "arrow" in cap and "corruption" not in cap and "Dashed" not in cap
    cap = re.search(r"<b>Frozen vs \+ID\.</b>(.*?)</figcaption>", report.read_text(), re.S).group(1)
    assert "Dashed arrows" in cap


def test_pngs_are_at_least_150_dpi(report):
    from wmprobe.report.style import png_dpi
    pngs = sorted((report.parent / "figures").glob("*.png"))
    assert len(pngs) == N_FIGURES
    for p in pngs:
        assert png_dpi(p.read_bytes()) >= 150, p.name


@pytest.mark.skipif(chromium() is None, reason="chromium not installed (.ci/run installs it)")
def test_report_in_headless_chromium(report, tmp_path):
    verdict = chromium_check(report, tmp_path)
    assert verdict["errors"] == [] and verdict["broken"] == [] and verdict["blank"] == []
    assert verdict["figures"] == N_FIGURES
    assert verdict["sorted"] is True
    lay = verdict["layout"]                         # rendered positions: verdict, then headline figure, then tables
    assert lay["verdict"] is not None and lay["headline"] is not None
    assert lay["verdict"] < lay["headline"] < lay["first_table"]
    img = verdict["shot"]
    assert img.std() > 0.05                         # not a blank page
    assert (img.std(axis=2) > 0.1).mean() > 0.002   # coloured plot marks are visible


def test_the_pixel_check_catches_a_blank_figure(report, tmp_path):
    """The self-test is not vacuous: a report whose first figure is a flat grey PNG is reported blank."""
    if chromium() is None:
        pytest.skip("chromium not installed (.ci/run installs it)")
    import base64
    import io

    import matplotlib.pyplot as plt
    fig = plt.figure(figsize=(2, 2), facecolor="0.9")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="0.9")
    plt.close(fig)
    html = report.read_text()
    start = html.index("data:image/png;base64,") + len("data:image/png;base64,")
    end = html.index('"', start)
    bad = tmp_path / "bad.html"
    bad.write_text(html[:start] + base64.b64encode(buf.getvalue()).decode() + html[end:])
    verdict = chromium_check(bad, tmp_path)
    assert verdict["errors"] == [] and len(verdict["blank"]) == 1


def test_report_shows_the_zoos_training_seed_replicates(tmp_path):
    """A study with ``zoo: {replicates: 2}``: replicate 1 of each zoo model is ``zoo:FAMILY#1``; the report
    lists every model's mean over its replicates and their spread, in a table, a CSV and findings.json."""
    rows = fake_records()
    rows += [dict(r, encoder=r["encoder"] + "#1", r2=r["r2"] + (0.1 if r["family"] == "vae" else -0.02))
             for r in rows if str(r["encoder"]).startswith("zoo:")]
    write_records(rows, tmp_path, CONFIG)
    html = build_report(tmp_path).read_text()
    reps = pd.read_csv(tmp_path / "tables" / "replicates.csv")
    vae = reps[(reps["label"] == "zoo:vae") & (reps["dataset"] == "dynamic")].iloc[0]
    assert vae["replicates"] == 2 and vae["r2_max"] - vae["r2_min"] == pytest.approx(0.1, abs=0.02)
    assert set(reps["label"]) == {"zoo:vae", "zoo:vae +ID", "zoo:vjepa", "zoo:vjepa +ID", "zoo:image-ssl",
                                  "zoo:image-ssl +ID"}
    f = json.loads((tmp_path / "findings.json").read_text())["per_dataset"]["dynamic"]["replicates"]
    assert len(f["models"]) == 6 and 0.02 < f["train_sd"] < 0.08
    assert "training-seed sd" in html and "zoo:vae#1" in html
    assert "2 training seeds each" in html
    # `zoo.replicate_weights: [0]`: only the frozen models have a replicate; the table lists those alone
    rows = fake_records()
    rows += [dict(r, encoder=r["encoder"] + "#1", r2=r["r2"] + 0.05)
             for r in rows if str(r["encoder"]).startswith("zoo:") and not r["id_weight"]]
    write_records(rows, tmp_path / "frozen", CONFIG)
    html = build_report(tmp_path / "frozen").read_text()
    reps = pd.read_csv(tmp_path / "frozen" / "tables" / "replicates.csv")
    assert set(reps["label"]) == {"zoo:vae", "zoo:vjepa", "zoo:image-ssl"} and (reps["replicates"] == 2).all()
    assert "a zoo model not listed here was trained once" in html
