"""The report from a hand-made records table, checked in headless Chromium (page loads with no console
errors, every figure decodes and is non-blank, the summary table sorts)."""
import json

import numpy as np
import pytest

from helpers import chromium, chromium_check

from wmprobe.records import write_records
from wmprobe.report import build_report



def fake_records():
    rng = np.random.default_rng(0)
    fams = {"pixels": ("pixels", 0.15, 30), "random-conv": ("random", 0.2, 14),
            "zoo:vae": ("vae", 0.35, 28), "zoo:vjepa": ("vjepa", 0.6, 15), "zoo:image-ssl": ("image-ssl", 0.45, 13)}
    rows = []
    for ds, shift in (("dynamic", 0.0), ("static", 0.1)):
        for enc, (fam, base, psnr) in fams.items():
            for idw in (0.0, 0.1):
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
                                                     ssim=0.5, dataset_fingerprint=f"fp-{ds}"))
    return rows


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    rows = fake_records()
    rows.append(dict(rows[0], seed=9, r2=np.nan, error="ProbeError: k=8 is longer than episode 3 (7 steps)"))
    write_records(rows, out, {"preset": "test"})
    return build_report(out)


FIGURES = ("pareto", "per_axis", "id_effect", "r2_vs_layer", "r2_vs_k", "robustness")


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
    assert html.count("data:image/png;base64,") == 2 * len(FIGURES) + 1


def test_summary_ranks_by_r2_and_reports_the_control(report):
    import pandas as pd
    for name in ("summary", "summary-static"):
        s = pd.read_csv(report.parent / "tables" / f"{name}.csv")
        assert s["label"].iloc[0] == "zoo:vjepa +ID"
        assert (s["r2"].diff().dropna() <= 0).all()
        assert (s["shuffled_r2"] < 0.05).all()
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
    assert dyn["id"]["raised"] == dyn["id"]["families"] == 5
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


@pytest.mark.skipif(chromium() is None, reason="chromium not installed (.ci/run installs it)")
def test_report_in_headless_chromium(report, tmp_path):
    verdict = chromium_check(report, tmp_path)
    assert verdict["errors"] == [] and verdict["broken"] == [] and verdict["blank"] == []
    assert verdict["figures"] == 2 * len(FIGURES) + 1
    assert verdict["sorted"] is True
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
