"""The report is written atomically (issue 18): built in a temp directory, renamed into place, and marked complete
last with the digest of its records. A build that fails leaves the previous report intact; one killed while
renaming is detected (no ``.report-complete``) and rebuilt; stale files of an earlier build are removed, files
wmprobe did not write are not."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from wmprobe.errors import WmprobeError
from wmprobe.records import write_records
from wmprobe.report import build_report
from wmprobe.report import figures as F
from wmprobe.report import publish
from wmprobe.report.publish import COMPLETE, records_digest, report_current

pytestmark = pytest.mark.slow   # every test builds one or more whole reports (tens of seconds each)


def rows(shift: float = 0.0, failed: bool = False) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for enc, fam, base in (("pixels", "pixels", 0.1), ("zoo:vae", "vae", 0.4), ("zoo:vjepa", "vjepa", 0.6)):
        for probe in ("mlp", "ridge", "mlp-shuffled"):
            for k in (1, 4):
                for seed in range(2):
                    r2 = base + shift + rng.normal(0, 0.01) if probe != "mlp-shuffled" else rng.normal(-0.05, 0.01)
                    out.append(dict(encoder=enc, family=fam, id_weight=0.0, dataset="dynamic", split="task",
                                    corruption="clean", layer="out", probe=probe, k=k, seed=seed, r2=r2,
                                    r2_ci_low=r2 - 0.05, r2_ci_high=r2 + 0.05, r2_translation=r2,
                                    r2_rotation=r2 - 0.1, r2_gripper=r2, dataset_fingerprint="fp"))
    if failed:
        out.append(dict(encoder="zoo:broken", family="broken", id_weight=0.0, dataset="dynamic", split="task",
                        corruption="clean", layer="out", probe="mlp", k=1, seed=0, error="RuntimeError: boom"))
    return out


def files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture
def results(tmp_path) -> Path:
    out = tmp_path / "results"
    write_records(rows(), out, {"command": "test"})
    build_report(out)
    return out


def test_a_complete_build_is_marked_with_its_records(results):
    doc = json.loads((results / COMPLETE).read_text())
    assert doc["records"] == records_digest(results) and report_current(results)
    assert "report.html" in doc["files"] and "findings.json" in doc["files"]
    assert any(f.startswith("figures/") for f in doc["files"]) and any(f.startswith("tables/") for f in doc["files"])
    assert not list(results.glob(".report-tmp-*"))
    write_records(rows(0.1), results, {"command": "test"})         # new records: the report is stale
    assert not report_current(results)


def test_a_build_that_fails_leaves_the_previous_report_intact(results, monkeypatch):
    before = files(results)
    write_records(rows(0.2), results, {"command": "test"})
    before_records = {k: v for k, v in files(results).items() if k.startswith("records") or k == "config.yaml"}

    def boom(*a, **k):
        raise RuntimeError("matplotlib crashed half-way")
    monkeypatch.setattr(F, "robustness_figure", boom)                  # after several figures were written
    with pytest.raises(RuntimeError):
        build_report(results)
    now = files(results)
    report_files = [k for k in before if not k.startswith("records") and k != "config.yaml" and k != ".wmprobe.json"]
    assert all(now[k] == before[k] for k in report_files)              # the old report, byte for byte
    assert {k: v for k, v in now.items() if k in before_records} == before_records
    assert not list(results.glob(".report-tmp-*"))                     # no half-built temp left
    assert not report_current(results)                                 # stale: the next run rebuilds it
    monkeypatch.undo()
    build_report(results)
    assert report_current(results)
    assert json.loads((results / "findings.json").read_text()) != json.loads(before["findings.json"])


def test_a_build_killed_while_renaming_is_detected_and_rebuilt(results, monkeypatch):
    import os
    write_records(rows(0.3), results, {"command": "test"})
    real, calls = os.replace, {"n": 0}

    def dies(a, b):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device", str(b))
        return real(a, b)
    monkeypatch.setattr(publish.os, "replace", dies)
    with pytest.raises(WmprobeError, match="cannot write the report into .*incomplete"):
        build_report(results)
    monkeypatch.undo()
    assert not (results / COMPLETE).exists() and not report_current(results)
    build_report(results)
    assert report_current(results)


def test_stale_files_of_an_earlier_build_go_and_the_users_stay(tmp_path):
    out = tmp_path / "results"
    write_records(rows(failed=True), out, {"command": "test"})
    build_report(out)
    assert (out / "tables" / "failed.csv").exists()
    (out / "tables" / "my-notes.txt").write_text("mine")
    write_records(rows(), out, {"command": "test"}, merge_existing=False)   # every cell succeeded now
    build_report(out)
    assert not (out / "tables" / "failed.csv").exists()                     # not a stale failure list
    assert (out / "tables" / "my-notes.txt").read_text() == "mine"
    assert "Failed cells" not in (out / "report.html").read_text()


def test_the_runner_rebuilds_an_incomplete_report(store_dir, tmp_path, monkeypatch):
    """``wmprobe run`` rebuilds when the records changed OR the last build did not complete (before: only when the
    records' digest changed, so a failed build left a stale report for good); a complete one is kept."""
    import wmprobe.report
    from wmprobe.study.runner import run
    doc = {"name": "micro", "datasets": [{"name": "square", "path": str(store_dir)}],
           "encoders": [{"name": "pixels:4", "label": "pixels"}], "corruptions": ["clean"], "probes": ["ridge"],
           "ks": [1], "seeds": [0], "n_boot": 20, "executor": {"workers": 1}}
    out, cache = tmp_path / "out", tmp_path / "cache"
    run(doc, out=out, cache=cache, progress=False)
    assert report_current(out)
    real, built = wmprobe.report.build_report, []
    monkeypatch.setattr(wmprobe.report, "build_report", lambda o: (built.append(Path(o)), real(o))[1])
    run(doc, out=out, cache=cache, progress=False)       # same records, complete report: not rebuilt
    assert built == []
    (out / COMPLETE).unlink()                            # as a build killed half-way leaves it
    run(doc, out=out, cache=cache, progress=False)
    assert built == [out] and report_current(out)
