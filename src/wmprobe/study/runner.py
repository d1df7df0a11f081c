"""`wmprobe run study.yaml`: resolve -> plan -> extract -> probe (+ fidelity) -> records -> report.

1. Resolve: generate or open every dataset (cached), split it, train or reuse the zoo models (cached), open
   every encoder once to read its spec key (weights hash + preprocessing), which enters every cache key.
2. Plan: ``plan.plan_study`` expands the study into extract, probe and fidelity tasks.
3. Execute through the configured executor, skipping tasks whose results are already in the cache; a probe
   cell whose latents failed to extract gets rows with the extraction error instead of running.
4. Write records (merged with what ``out`` already holds) and config.yaml (resolved config, plan, what was
   computed vs reused, failures, provenance), then the report (rebuilt when the records changed or its last
   build did not complete).

A re-run of a finished study recomputes nothing; a run killed at any moment (kill -9) resumes with only the
unfinished shards and cells, and ends with records identical to an uninterrupted run.

The stages live in their own modules: resolve.py (datasets, pool, encoders), zoo_train.py (the zoo),
plan.py (tasks), execute.py (tasks through the executor -> rows); this module runs them in order and
re-exports the names callers import from here.
"""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Sequence

from wmprobe.records import Source, row
from wmprobe.study.cache import Cache
from wmprobe.study.config import StudyConfig, load_config
from wmprobe.study.execute import FIDELITY_COLUMNS, _error_rows, execute, stop_if_disk_full
from wmprobe.study.executors import make_executor
from wmprobe.study.plan import plan_study
from wmprobe.study.resolve import dataset_ref, pretraining_pool, resolve_datasets, resolve_encoders
from wmprobe.study.zoo_train import ZooModel, train_zoo, zoo_id_groups

_dataset_ref, _stop_if_disk_full = dataset_ref, stop_if_disk_full   # the names they had here


def run(study: str | os.PathLike | dict | StudyConfig, out: str | os.PathLike | None = None,
        cache: str | os.PathLike | None = None, executor: str | None = None, progress: bool = True,
        report: bool = True, merge: bool = True, extra_config: dict[str, Any] | None = None,
        overrides: Sequence[str] = (), log: Sequence[str] = ()):
    """Run a study; returns its records (a pandas DataFrame). See the module doc. ``overrides``: dotted
    ``KEY=VALUE`` strings over the config (``probe.steps=200``, ``ks=[1,4]``), checked like the file and
    recorded in config.yaml (``overrides``). ``log``: trackers (``wandb``, ``mlflow``, ``tensorboard``) that get
    the resolved config, the records, the findings and the figures once the report is written (trackers.py)."""
    from wmprobe.records import read_records, write_records
    t0 = time.perf_counter()
    cfg = load_config(study, overrides)
    if executor:
        cfg = dataclasses.replace(cfg, executor=dataclasses.replace(cfg.executor, kind=executor))
    out = Path(out or f"{cfg.name}-results")
    from wmprobe._dest import check_dest
    check_dest(out, "results", merge=True)  # before any work: never write into a directory wmprobe did not make
    c = Cache(cache)
    say = (lambda m: print(f"[wmprobe {cfg.name}] {m}", flush=True)) if progress else (lambda m: None)
    datasets = resolve_datasets(cfg, c, progress)
    say("data ready: " + ", ".join(f"{n} {s.n_episodes} episodes ({sp.kind} split, {len(sp.test)} test)"
                                   for n, (s, sp) in datasets.items()))
    from wmprobe.probes import headline as H   # the action-space audit and the headline groups, per dataset
    headlines, audits = H.for_study(cfg, datasets)
    for n, head in headlines.items():
        say(H.describe(n, head))
    ex = make_executor(cfg.executor, c.root, cfg.name, progress, cfg.threads, cfg.device)
    stats: dict[str, Any] = {"executor": ex.name, "workers": getattr(ex, "workers", None), "failures": []}
    try:
        # the leakage check: before any training (split and pool), then again with every zoo checkpoint
        from wmprobe.study.leakage import assert_no_leak, check_leakage
        pool = pretraining_pool(datasets, c) if cfg.zoo.families else None
        assert_no_leak(check_leakage(datasets, pool))
        zoo_models = train_zoo(cfg, datasets, c, ex, stats, headlines, audits)
        given = [e.name[4:] for e in cfg.encoders if e.name.startswith("zoo:")]
        leakage = assert_no_leak(check_leakage(datasets, pool, [m.checkpoint for m in zoo_models if not m.error]
                                               + given))
        say(f"leakage check: ok ({leakage['checked']['test_episodes']} test episodes, "
            f"{len(leakage['checked']['test_task_names'])} held-out task names, "
            f"{leakage['checked']['zoo_checkpoints']} zoo checkpoints)")
        encoders = resolve_encoders(cfg, zoo_models)
        say(f"encoders ready: {', '.join(sorted({e.label for e in encoders}))}")
        plan = plan_study(cfg, encoders, [dataset_ref(n, s, sp, headlines[n]["headline_groups"])
                                          for n, (s, sp) in datasets.items()])
        say(f"plan: {plan.summary()}")
        rows = execute(plan, c, ex, stats)
        stop_if_disk_full(stats)
    finally:
        getattr(ex, "close", lambda: None)()
    rows += [row(Source(m.label, m.family, n, sp.kind, m.id_weight), corruption="clean", probe="-",
                 error=f"zoo training failed: {m.error}")
             for m in zoo_models if m.error for n, (_, sp) in datasets.items()]
    stats["seconds"] = round(time.perf_counter() - t0, 1)
    config = {"command": "run", **(extra_config or {}), "overrides": list(overrides), "study": cfg.to_dict(),
              "cache": str(c.root),
              "datasets": {n: {"fingerprint": s.fingerprint, "path": str(s.path), "split": sp.describe()}
                           for n, (s, sp) in datasets.items()},
              "encoders": {e.label + (f" +ID{e.id_weight:g}" if e.id_weight else ""):
                           {"name": e.name, "key": e.key, "layers": list(e.layers)} for e in encoders},
              "leakage": leakage, "headline": headlines, "audit": audits, "run": stats}
    write_records(rows, out, config, merge_existing=merge)
    from wmprobe.report.publish import report_current
    if report and not report_current(out):  # records changed, or the last build did not complete
        from wmprobe.report import build_report
        build_report(out)
    if log:
        from wmprobe.trackers import log_results
        for kind, where in log_results(out, log, name=cfg.name).items():
            say(f"logged to {kind}: {where}")
    if stats["failures"]:
        say(f"{len(stats['failures'])} task(s) failed; their rows carry the error (see config.yaml run.failures)")
    say(f"done in {stats['seconds']:.0f}s: extract {stats['extract']}, probe {stats.get('probe')}")
    return read_records(out)


def failed_tasks(out: str | os.PathLike) -> list[dict[str, Any]]:
    """The failures of the last run that wrote ``out`` (config.yaml ``run.failures``; [] when none)."""
    import yaml
    try:
        doc = yaml.safe_load((Path(out) / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return []
    conf = doc.get("config", doc) if isinstance(doc, dict) else {}
    fails = (conf.get("run") or {}).get("failures") if isinstance(conf, dict) else None
    return list(fails) if isinstance(fails, list) else []


__all__ = ["run", "execute", "resolve_datasets", "resolve_encoders", "train_zoo", "pretraining_pool",
           "failed_tasks", "zoo_id_groups", "ZooModel", "FIDELITY_COLUMNS", "_error_rows"]
