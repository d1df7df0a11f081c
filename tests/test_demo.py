"""`wmprobe demo --preset tiny` end to end through the installed entry point (simulator -> zoo -> probes ->
records -> report), with the properties a user relies on."""
import subprocess
import sys

import pandas as pd
import pytest

from wmprobe.records import CELL_KEY, RECORD_COLUMNS

pytestmark = pytest.mark.slow   # every test reads the tiny demo, a whole study run once per session (minutes)


@pytest.fixture(scope="module")
def demo(tiny_demo):
    out, r, _ = tiny_demo            # one run per session (conftest.py), shared with the golden test
    return out, r


def test_demo_writes_records_config_and_report(demo):
    out, r = demo
    assert f"report: {out / 'report.html'}" in r.stdout
    df = pd.read_parquet(out / "records.parquet")
    assert set(RECORD_COLUMNS) <= set(df.columns)
    assert not df.duplicated(list(CELL_KEY)).any()
    assert {"pixels", "random-conv", "zoo:vae"} <= set(df["encoder"])
    assert {0.0, 1.0} <= set(df["id_weight"])                    # frozen and +ID
    ceiling = df[df["encoder"] == "ceiling"]                     # the trunk trained by +ID alone, probed like any
    assert len(ceiling) and (ceiling["family"] == "ceiling").all() and set(ceiling["dataset"]) == {"dynamic", "static"}
    assert {"dynamic", "static"} == set(df["dataset"])
    assert {"clean", "noise:0.15"} <= set(df["corruption"])
    assert df["r2"].notna().all() and (df["r2_ci_low"] <= df["r2_ci_high"]).all()
    assert "provenance" in (out / "config.yaml").read_text()
    import yaml
    cfg = yaml.safe_load((out / "config.yaml").read_text())["config"]
    leak = cfg["leakage"]                 # both suites hold out the same task names; the zoo never saw them
    assert leak["ok"] and leak["checked"]["zoo_checkpoints"] >= 2 and leak["checked"]["pool"]["episodes"] > 0
    held = [set(d["split"]["test_task_names"]) for d in cfg["datasets"].values()]
    assert held[0] == held[1] == set(leak["checked"]["test_task_names"]) and held[0]
    assert (out / "report.html").stat().st_size > 10_000


def test_demo_is_deterministic_for_a_seed(demo, tmp_path):
    out, _ = demo
    # a fresh cache regenerates data and retrains the zoo: the same seed gives the same numbers
    r = subprocess.run([sys.executable, "-m", "wmprobe.cli", "--quiet", "demo", "--preset", "tiny", "--out",
                        str(tmp_path / "again")], capture_output=True, text=True, timeout=900,
                       env={**__import__("os").environ, "WMPROBE_CACHE": str(tmp_path / "c2")})
    assert r.returncode == 0, r.stderr[-2000:]
    a = pd.read_csv(out / "records.csv").sort_values(list(CELL_KEY)).reset_index(drop=True)
    b = pd.read_csv(tmp_path / "again" / "records.csv").sort_values(list(CELL_KEY)).reset_index(drop=True)
    pd.testing.assert_series_equal(a["r2"], b["r2"])


def test_demo_report_opens_in_headless_chromium(demo, tmp_path):
    """The report of a real (tiny) study, not hand-made records: loads without console errors, every figure
    decodes and is not blank, the summary table sorts; findings.json and the tables sit beside it."""
    from helpers import chromium, chromium_check
    out, _ = demo
    assert (out / "findings.json").exists() and (out / "tables" / "summary.csv").exists()
    if chromium() is None:
        pytest.skip("chromium not installed (.ci/run installs it)")
    verdict = chromium_check(out / "report.html", tmp_path)
    assert verdict["errors"] == [] and verdict["broken"] == [] and verdict["blank"] == []
    assert verdict["figures"] >= 5 and verdict["sorted"] is True
    lay = verdict["layout"]            # the page opens with the verdict, then the headline figure, then tables
    assert None not in (lay["verdict"], lay["headline"]) and lay["verdict"] < lay["headline"] < lay["first_table"]


@pytest.mark.parametrize("executor", [{"kind": "submitit", "submitit": {"cluster": "local", "tasks_per_job": 16,
                                                                          "timeout_min": 20}},
                                      {"kind": "ray", "ray": {"num_cpus": 2}}], ids=["submitit-local", "ray-local"])
def test_tiny_preset_gives_the_demos_records_on_every_executor(demo, tiny_demo, tmp_path, executor):
    """The tiny preset's study on submitit's LocalExecutor and on a local Ray gives the records the local
    executor gave (the demo). The generated data and the zoo checkpoints are copied from the demo's cache (they
    are deterministic, tested above); latents and probe cells are all recomputed under the executor."""
    import shutil

    pytest.importorskip(executor["kind"])
    from wmprobe.study.runner import run
    out, _ = demo
    cache = tmp_path / "cache"
    for sub in ("data", "zoo"):
        shutil.copytree(tiny_demo[2] / sub, cache / sub)
    try:
        got = run({"preset": "tiny", "name": "demo-tiny", "seed": 0, "executor": executor}, out=tmp_path / "out",
                  cache=cache, progress=False, report=False)
    finally:
        if executor["kind"] == "ray":
            import ray
            ray.shutdown()
    import yaml
    ran = yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())["config"]["run"]
    assert ran["extract"]["computed"] > 0 and ran["probe"]["computed"] > 0      # recomputed under the executor
    ref = pd.read_parquet(out / "records.parquet")
    key = list(CELL_KEY)
    a = ref.drop(columns=["train_seconds"]).sort_values(key).reset_index(drop=True)
    b = got.drop(columns=["train_seconds"]).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
