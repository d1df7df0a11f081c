"""`--log wandb|mlflow|tensorboard`: the resolved config, one entry per record row, the findings and the report's
figures reach each tracker, read back offline (W&B offline mode, an MLflow file store, TensorBoard event files).
Each part skips when its optional package is not installed; nothing touches the network."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from wmprobe.records import read_records


@pytest.fixture(scope="module")
def results(store_dir, tmp_path_factory):
    """A tiny study's results directory (records, config.yaml, findings.json, figures/) via `wmprobe run`."""
    out = tmp_path_factory.mktemp("tracked") / "res"
    f = out.parent / "study.yaml"
    f.write_text(yaml.safe_dump({"name": "tracked", "datasets": [{"name": "square", "path": str(store_dir)}],
                                 "encoders": [{"name": "pixels:4", "label": "pixels"}, "random-conv:0"],
                                 "probes": ["ridge"], "ks": [1, 2], "seeds": [0], "n_boot": 20,
                                 "shard_episodes": 4, "executor": {"workers": 1}}))
    env = {**os.environ, "MLFLOW_TRACKING_URI": ""}
    cache = ["--cache", str(out.parent / "cache")]   # never the user's ~/.cache (module fixture: set it here)
    r = subprocess.run([sys.executable, "-m", "wmprobe.cli", "--quiet", "run", str(f), "--out", str(out),
                        *cache, "--log", "tensorboard"], capture_output=True, text=True, timeout=600, env=env)
    if "needs the tensorboard package" in r.stderr:
        r = subprocess.run([sys.executable, "-m", "wmprobe.cli", "--quiet", "run", str(f), "--out", str(out),
                            *cache], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return out


def _rows(out: Path) -> list[dict]:
    return read_records(out).to_dict(orient="records")


def test_tensorboard_event_files_read_back(results):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    runs = list((results / "tensorboard").iterdir())       # written by `wmprobe run --log tensorboard`
    assert [p.name for p in runs] == ["tracked"]
    ea = EventAccumulator(str(runs[0]), size_guidance={"tensors": 0, "images": 0, "scalars": 0})
    ea.Reload()
    rows = _rows(results)
    texts = ea.Tensors("records/text_summary")
    assert len(texts) == len(rows) > 0                      # one entry per record row
    logged = sorted(json.loads(t.tensor_proto.string_val[0].decode())["r2"] for t in texts)
    assert np.allclose(logged, sorted(r["r2"] for r in rows))
    assert [s.value for s in ea.Scalars("cells/r2")] == pytest.approx([r["r2"] for r in rows], rel=1e-5)
    cfg = ea.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "name: tracked" in cfg and "ks:" in cfg
    assert "findings/text_summary" in ea.Tags()["tensors"]
    figures = sorted(p.stem for p in (results / "figures").glob("*.png"))
    assert figures and sorted(t.removeprefix("figures/") for t in ea.Tags()["images"]) == figures


def test_mlflow_file_store_read_back(results, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient
    from wmprobe.trackers import log_results
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    where = log_results(results, ["mlflow"])
    assert where["mlflow"].startswith(uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")   # MLflow 3: reading a file store is opt-in too
    client = MlflowClient(tracking_uri=uri)
    run = client.search_runs([client.get_experiment_by_name("wmprobe").experiment_id])[0]
    assert run.data.params["name"] == "tracked" and json.loads(run.data.params["ks"]) == [1, 2]
    rows = _rows(results)
    hist = client.get_metric_history(run.info.run_id, "r2")
    assert sorted(m.step for m in hist) == list(range(len(rows)))
    assert [m.value for m in sorted(hist, key=lambda m: m.step)] == pytest.approx([r["r2"] for r in rows])
    art = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / "dl")))
    table = json.loads((art / "records.json").read_text())
    assert len(table["data"]) == len(rows) and "encoder" in table["columns"]
    assert yaml.safe_load((art / "config.yaml").read_text())["study"]["name"] == "tracked"
    assert json.loads((art / "findings.json").read_text()) == json.loads((results / "findings.json").read_text())
    pngs = sorted(p.name for p in (results / "figures").glob("*.png"))
    assert sorted(p.name for p in (art / "figures").iterdir()) == pngs


def wandb_records(path: Path) -> list:
    """The protobuf records of an offline W&B run file (``run-ID.wandb``): a 7-byte header, then the LevelDB
    log format (32 KiB blocks; each chunk: crc32c 4, length 2, type 1 = full / 2 first / 3 middle / 4 last)."""
    from wandb.proto import wandb_internal_pb2 as pb
    raw, out, buf, pos = path.read_bytes(), [], b"", 7
    assert b"W&B" in raw[:7], raw[:8]
    block = 32768
    while pos + 7 <= len(raw):
        left = block - (pos % block)
        if left < 7:            # block trailer: padding
            pos += left
            continue
        length, kind = int.from_bytes(raw[pos + 4:pos + 6], "little"), raw[pos + 6]
        if length == 0 and kind == 0:
            pos += left
            continue
        buf += raw[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(buf)
            out.append(rec)
            buf = b""
    return out


def test_wandb_offline_run_read_back(results, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from wmprobe.trackers import log_results
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    where = Path(log_results(results, ["wandb"])["wandb"])
    assert "offline-run" in where.name and where.is_dir()
    recs = wandb_records(next(where.glob("run-*.wandb")))
    config = {}   # the run record carries the config given to init; later config records update it
    for r in recs:
        kind = r.WhichOneof("record_type")
        if kind in ("run", "config"):
            config.update({i.key: json.loads(i.value_json)
                           for i in (r.run.config.update if kind == "run" else r.config.update) if i.key})
    assert "study" in config, (sorted(config), [r.WhichOneof("record_type") for r in recs])
    assert config["study"]["name"] == "tracked" and config["study"]["ks"] == [1, 2]
    summary = {i.key: json.loads(i.value_json) for r in recs if r.WhichOneof("record_type") == "summary"
               for i in r.summary.update}
    assert summary["findings"] == json.loads((results / "findings.json").read_text())
    files = where / "files"
    table = json.loads(next((files / "media" / "table").glob("records_*.table.json")).read_text())
    assert len(table["data"]) == len(_rows(results))
    images = list((files / "media" / "images").rglob("*.png"))
    assert len(images) == len(list((results / "figures").glob("*.png")))


def test_unknown_or_missing_tracker_is_one_clear_error(results):
    from wmprobe.errors import WmprobeError
    from wmprobe.trackers import log_results
    with pytest.raises(WmprobeError, match="unknown tracker"):
        log_results(results, ["comet"])
    r = subprocess.run([sys.executable, "-m", "wmprobe.cli", "report", str(results), "--log", "comet"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "invalid choice" in r.stderr
