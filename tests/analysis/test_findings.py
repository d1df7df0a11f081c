"""The findings are computed in ``wmprobe.analysis.findings`` from records alone; the report only renders them
(issue 20). Checked on the hand-made records of test_analysis.py, whose numbers are known."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from analysis.test_analysis import records
from wmprobe.analysis import findings as AF
from wmprobe.analysis import pareto, robustness_long


@pytest.fixture(scope="module")
def df():
    return records()


def test_dataset_findings_name_the_best_encoder_the_floor_and_the_id_gain(df):
    summ = AF.ranked_summary(df, "dynamic")
    f = AF.dataset_findings(summ, pareto(df, "dynamic"), robustness_long(df, "dynamic"))
    assert f["best"]["label"] == "vjepa +ID" and f["best"]["r2"] == pytest.approx(0.8)
    assert f["best_floor"]["label"] == "pixels:32" and f["best_floor"]["r2"] == pytest.approx(0.0)
    assert set(f["above_floor"]) == {"vjepa +ID", "vjepa", "vmae"}   # CI low above the best floor's R2
    assert f["shuffled_max"] == pytest.approx(-0.01)
    assert f["id"]["families"] == 1 and f["id"]["raised"] == 1 and f["id"]["mean_gain"] == pytest.approx(0.4)
    # drop: R2 under a corruption minus clean, mean over the 4 corruptions (mean severity 2.25; DROP per unit)
    assert f["id"]["mean_drop_frozen"] == pytest.approx(-0.3 * 2.25)
    assert f["id"]["mean_drop_id"] == pytest.approx(-0.05 * 2.25)
    assert f["fidelity"]["n"] == 6 and f["fidelity"]["highest_psnr"] == "pixels:32"
    assert list(summ["ridge_r2"]) == pytest.approx(list(summ["r2"] - 0.2))
    assert AF.dataset_findings(summ.iloc[:0], pareto(df, "dynamic"), robustness_long(df, "dynamic")) == {}


def test_across_findings_hold_transfer_and_the_static_gap_only_when_they_exist(df):
    pairs, gap = AF.transfers(df, ["dynamic", "static"]), AF.suite_gap(df, ["dynamic", "static"])
    found = AF.across_findings(pairs, gap)
    assert list(found) == ["transfer", "static_gap"] and list(found["transfer"]) == ["dynamic|static"]
    assert "table" not in found["transfer"]["dynamic|static"] and found["transfer"]["dynamic|static"]["n_encoders"] == 6
    assert found["static_gap"]["gap_change"] == pytest.approx(gap.attrs["gap_change"])
    assert AF.transfers(df, ["dynamic", "libero"]) == [] and AF.suite_gap(df, ["dynamic", "libero"]) is None
    assert AF.suite_gap(df[df["family"] != "dinov2"], ["dynamic", "static"]) is None   # no image family
    assert AF.across_findings([], None) == {}


def test_the_report_package_computes_no_statistic():
    """No module of wmprobe.report imports the metrics or scipy: every number it shows comes from analysis."""
    root = Path(AF.__file__).resolve().parents[1] / "report"
    for f in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.startswith(("wmprobe.metrics", "scipy")) for n in names), f"{f.name} imports {names}"
