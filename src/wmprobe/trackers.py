"""Experiment trackers: send a results directory to W&B, MLflow and/or TensorBoard (optional extras).

``log_results(results_dir, ["wandb", "mlflow", "tensorboard"])`` reads what a run wrote (``config.yaml``,
``records.parquet``, ``findings.json``, ``figures/*.png``) and logs, to each tracker named:

- the resolved config (``config.yaml``'s ``config``: the study as run, datasets, encoders, overrides);
- one entry per record row, i.e. per computed cell and seed (W&B: a ``records`` table; MLflow: the
  ``records.json`` table artifact plus ``r2`` / ``r2_ci_low`` / ``r2_ci_high`` metrics with the row index as step;
  TensorBoard: one ``records`` text entry per row and the same scalars, step = row index);
- the findings (``findings.json``: W&B summary ``findings``, MLflow ``findings.json`` artifact, TensorBoard text);
- the report's figures (W&B images, MLflow artifacts under ``figures/``, TensorBoard images).

Where it goes: W&B under ``RESULTS/wandb`` (``WANDB_MODE=offline`` keeps it local; project ``$WANDB_PROJECT`` or
``wmprobe``); MLflow to ``$MLFLOW_TRACKING_URI``, else a file store at ``RESULTS/mlruns`` (experiment
``wmprobe``; MLflow 3 accepts a file store only with ``MLFLOW_ALLOW_FILE_STORE=true``, which is set while
logging to a ``file:`` URI); TensorBoard event files under ``RESULTS/tensorboard/``. ``wmprobe run|demo|report ...
--log KIND``
calls this after the report is written. A tracker whose package is missing is one clear error naming the extra.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

from wmprobe.errors import WmprobeError

TRACKERS = ("wandb", "mlflow", "tensorboard")
METRICS = ("r2", "r2_ci_low", "r2_ci_high")
_PACKAGE = {"wandb": "wandb", "mlflow": "mlflow", "tensorboard": "tensorboard"}


def _plain(v: Any) -> Any:
    """JSON-safe scalar: numpy -> python, NaN -> None."""
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _load(out: Path) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any], list[Path]]:
    from wmprobe.records import read_config, read_records
    config = read_config(out).get("config", {})
    rows = [{k: _plain(v) for k, v in r.items()} for r in read_records(out).to_dict(orient="records")]
    f = out / "findings.json"
    findings = json.loads(f.read_text()) if f.is_file() else {}
    figures = sorted((out / "figures").glob("*.png")) if (out / "figures").is_dir() else []
    return config, rows, findings, figures


def log_results(results_dir: str | os.PathLike, kinds: Sequence[str], name: str | None = None) -> dict[str, str]:
    """Log ``results_dir`` to every tracker in ``kinds``; returns ``{kind: where it went}``."""
    out = Path(results_dir)
    unknown = [k for k in kinds if k not in TRACKERS]
    if unknown:
        raise WmprobeError(f"unknown tracker(s) {unknown}: choose from {', '.join(TRACKERS)}")
    config, rows, findings, figures = _load(out)
    name = name or str(config.get("study", {}).get("name") or out.name)
    where = {}
    for kind in dict.fromkeys(kinds):
        try:
            fn = {"wandb": _wandb, "mlflow": _mlflow, "tensorboard": _tensorboard}[kind]
            where[kind] = fn(out, name, config, rows, findings, figures)
        except ImportError as exc:
            raise WmprobeError(f"--log {kind} needs the {_PACKAGE[kind]} package ({exc.name or exc}): "
                               f"pip install -c constraints.txt 'wmprobe[{kind}]'") from None
    return where


def _wandb(out: Path, name: str, config: dict, rows: list[dict], findings: dict, figures: list[Path]) -> str:
    import wandb
    run = wandb.init(project=os.environ.get("WANDB_PROJECT", "wmprobe"), name=name, dir=str(out),
                     config=config, job_type="wmprobe", settings=wandb.Settings(silent=True, console="off"))
    try:
        cols = list(rows[0]) if rows else []
        run.log({"records": wandb.Table(columns=cols, data=[[r[c] for c in cols] for r in rows])})
        run.log({f"figures/{p.stem}": wandb.Image(str(p)) for p in figures})
        run.summary["findings"] = findings
        where = str(Path(run.dir).parent)
    finally:
        run.finish()
        teardown = getattr(wandb, "teardown", None)
        if teardown is not None:  # stop the wandb service process: its files are complete once it has exited
            teardown()
    return where


def _mlflow(out: Path, name: str, config: dict, rows: list[dict], findings: dict, figures: list[Path]) -> str:
    from mlflow.tracking import MlflowClient
    uri = os.environ.get("MLFLOW_TRACKING_URI") or (out / "mlruns").resolve().as_uri()
    # MLflow 3 refuses its file store unless opted in; a file: URI (ours or the user's) is that opt-in
    saved = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
    if uri.startswith("file:"):
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        return _mlflow_log(MlflowClient(tracking_uri=uri), uri, out, name, config, rows, findings, figures)
    finally:
        if saved is None:
            os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
        else:
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = saved


def _mlflow_log(client: Any, uri: str, out: Path, name: str, config: dict, rows: list[dict], findings: dict,
                figures: list[Path]) -> str:
    import time

    from mlflow.entities import Metric
    exp = client.get_experiment_by_name("wmprobe")
    exp_id = exp.experiment_id if exp else client.create_experiment("wmprobe")
    run = client.create_run(exp_id, run_name=name, tags={"wmprobe.results": str(out.resolve())})
    rid = run.info.run_id
    try:
        client.log_dict(rid, config, "config.yaml")
        study = config.get("study", {})
        for key in ("name", "preset", "seed", "split", "ks", "seeds", "probes", "corruptions"):
            if key in study:
                client.log_param(rid, key, json.dumps(study[key]) if isinstance(study[key], list) else study[key])
        client.log_table(rid, data={c: [r.get(c) for r in rows] for c in (rows[0] if rows else {})},
                         artifact_file="records.json")
        now = int(time.time() * 1000)
        metrics = [Metric(m, float(r[m]), now, i) for i, r in enumerate(rows) for m in METRICS
                   if isinstance(r.get(m), (int, float))]
        for i in range(0, len(metrics), 1000):
            client.log_batch(rid, metrics=metrics[i:i + 1000])
        client.log_dict(rid, findings, "findings.json")
        for p in figures:
            client.log_artifact(rid, str(p), "figures")
        client.set_terminated(rid)
    except BaseException:
        client.set_terminated(rid, status="FAILED")
        raise
    return f"{uri} (run {rid})"


def _tensorboard(out: Path, name: str, config: dict, rows: list[dict], findings: dict, figures: list[Path]) -> str:
    import numpy as np
    import yaml
    from PIL import Image
    from torch.utils.tensorboard import SummaryWriter
    logdir = out / "tensorboard" / name
    w = SummaryWriter(log_dir=str(logdir))
    try:
        w.add_text("config", "```yaml\n" + yaml.safe_dump(config, sort_keys=False) + "```")
        for i, r in enumerate(rows):
            w.add_text("records", json.dumps(r, sort_keys=True), global_step=i)
            for m in METRICS:
                if isinstance(r.get(m), (int, float)):
                    w.add_scalar(f"cells/{m}", float(r[m]), global_step=i)
        w.add_text("findings", "```json\n" + json.dumps(findings, indent=1, default=str) + "\n```")
        for p in figures:
            w.add_image(f"figures/{p.stem}", np.asarray(Image.open(p).convert("RGB")), dataformats="HWC")
    finally:
        w.close()
    return str(logdir)
