"""`wmprobe run study.yaml`: resolve -> plan -> extract -> probe (+ fidelity) -> records -> report.

1. Resolve: generate or open every dataset (cached), split it, train or reuse the zoo models (cached), open
   every encoder once to read its spec key (weights hash + preprocessing), which enters every cache key.
2. Plan: ``plan.plan_study`` expands the study into extract, probe and fidelity tasks.
3. Execute through the configured executor, skipping tasks whose results are already in the cache; a probe
   cell whose latents failed to extract gets rows with the extraction error instead of running.
4. Write records (merged with what ``out`` already holds) and config.yaml (resolved config, plan, what was
   computed vs reused, failures, provenance), then the report (rebuilt only when the records changed).

A re-run of a finished study recomputes nothing; a run killed at any moment (kill -9) resumes with only the
unfinished shards and cells, and ends with records identical to an uninterrupted run.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from pathlib import Path
from typing import Any


from wmprobe.errors import ConfigError, EncoderError
from wmprobe.study.cache import Cache
from wmprobe.study.config import StudyConfig, load_config
from wmprobe.study.executors import Outcome, make_executor
from wmprobe.study.plan import DatasetRef, EncoderRef, Plan, plan_study


def resolve_datasets(cfg: StudyConfig, cache: Cache, progress: bool = True) -> dict[str, tuple[Any, Any]]:
    """name -> (EpisodeStore, Split)."""
    from wmprobe.data.sim import cached_generate
    from wmprobe.data.splits import make_split
    from wmprobe.data.store import EpisodeStore
    out = {}
    for d in cfg.datasets:
        if d.sim:
            store = cached_generate(d.sim, cache.data_dir, episodes=d.episodes, steps=d.steps, size=d.size,
                                    seed=cfg.seed, camera=d.camera, progress=progress)
        else:
            store = EpisodeStore.load(d.path)
        out[d.name] = (store, make_split(store, kind=cfg.split, test_frac=cfg.test_frac, seed=cfg.seed))
    return out


def resolve_encoders(cfg: StudyConfig, datasets: dict[str, tuple[Any, Any]], cache: Cache,
                     progress: bool = True) -> list[EncoderRef]:
    from wmprobe.encoders.registry import load_encoder
    entries = [(e.name, e.shown, dict(e.options), e.layers, e.id_weight) for e in cfg.encoders]
    if cfg.zoo.families:
        from wmprobe import zoo
        from wmprobe.demo import pool_train_episodes
        stores = {n: s for n, (s, _) in datasets.items()}
        dims = {s.action_dim for s in stores.values()}
        if len(dims) > 1:
            raise ConfigError(f"zoo training pools the train episodes of every dataset, but their action dims "
                              f"differ ({sorted(dims)}); run one study per action space")
        pool = pool_train_episodes(stores, {n: sp for n, (_, sp) in datasets.items()})
        for fam in cfg.zoo.families:
            for w in cfg.zoo.id_weights:
                ckpt = zoo.train(fam, pool, train_episodes=list(range(pool.n_episodes)), preset=cfg.zoo.preset,
                                 id_weight=float(w), objective=cfg.zoo.objective, seed=cfg.seed,
                                 cache_dir=cache.zoo_dir, progress=progress, device=cfg.device)
                entries.append((f"zoo:{ckpt}", f"zoo:{fam}", {}, None, float(w)))
    refs = []
    for name, label, options, layers, id_weight in entries:
        enc = load_encoder(name, device=cfg.device, **options)
        spec = enc.spec
        want = tuple(layers or cfg.layers or (spec.default_layer,))
        missing = [l for l in want if l not in spec.layers]
        if missing:
            raise EncoderError(f"encoder {label}: no layer(s) {missing}; it has {list(spec.layers)}")
        refs.append(EncoderRef(label, name, tuple(sorted(options.items())), want, spec.family, id_weight,
                               spec.key(), spec.frames_per_step))
        del enc
    return refs


def _dataset_ref(name: str, store: Any, split: Any) -> DatasetRef:
    return DatasetRef(name, str(store.path), store.fingerprint, store.n_episodes, split.kind,
                      tuple(int(e) for e in split.train), tuple(int(e) for e in split.test))


def _error_rows(task: Any, error: str) -> list[dict[str, Any]]:
    base = {"encoder": task.encoder.label, "family": task.encoder.family, "id_weight": task.encoder.id_weight,
            "dataset": task.dataset.name, "split": task.dataset.split_kind, "corruption": task.corruption,
            "layer": task.layer, "probe": task.probe, "k": task.k, "encoder_key": task.encoder.key,
            "dataset_fingerprint": task.dataset.fingerprint, "error": error or "failed"}
    seeds = (task.seeds[0],) if task.probe.startswith("ridge") else task.seeds
    return [{**base, "seed": s, "r2": float("nan")} for s in seeds]


def execute(plan: Plan, cfg: StudyConfig, cache: Cache, progress: bool = True) -> tuple[list[dict], dict]:
    """Run the plan's tasks; returns rows and a summary of what was computed, reused and failed."""
    ex = make_executor(cfg.executor, cache.root, cfg.name, progress)
    root = str(cache.root)
    stats: dict[str, Any] = {"executor": ex.name, "failures": []}

    todo = [t for t in plan.extract if not (cache.has_latents(t.key) and cache.verify_latents(t.key))]
    for t in todo:
        if cache.has_latents(t.key):  # present but corrupt: dropped here, recomputed below
            cache.load_latents(t.key)
    stats["extract"] = {"planned": len(plan.extract), "computed": len(todo)}
    bad_shards: dict[str, str] = {}
    for t, o in zip(todo, ex.map(todo, root, "extract") if todo else []):
        if not o.ok:
            bad_shards[t.key] = f"extraction failed ({t.describe()}): {o.error}"
            stats["failures"].append({"task": t.describe(), "error": o.error, "attempts": o.attempts})

    def cells(tasks: list[Any], desc: str) -> dict[str, list[dict] | Outcome]:
        done: dict[str, Any] = {}
        runnable = []
        for t in tasks:
            rows = cache.load_cell(t.key)
            if rows is not None:
                done[t.key] = rows
                continue
            deps = list(getattr(t, "clean_shards", ())) + list(getattr(t, "test_shards", ())) + \
                list(getattr(t, "shards", ()))
            broken = [bad_shards[d] for d in deps if d in bad_shards]
            if broken:
                done[t.key] = Outcome(False, error=broken[0], attempts=0)
            else:
                runnable.append(t)
        for t, o in zip(runnable, ex.map(runnable, root, desc) if runnable else []):
            done[t.key] = o.value if o.ok else o
            if not o.ok:
                stats["failures"].append({"task": t.describe(), "error": o.error, "attempts": o.attempts})
        stats[desc] = {"planned": len(tasks), "computed": len(runnable)}
        return done

    probe_res = cells(plan.probe, "probe")
    fid_res = cells(plan.fidelity, "fidelity")
    fid = {}
    for t in plan.fidelity:
        r = fid_res[t.key]
        if isinstance(r, Outcome):
            fid[(t.encoder.label, t.encoder.id_weight, t.dataset.name)] = {"fidelity_error": r.error}
        else:
            fid[(t.encoder.label, t.encoder.id_weight, t.dataset.name)] = r[0]
    rows = []
    for t in plan.probe:
        r = probe_res[t.key]
        cell_rows = _error_rows(t, r.error) if isinstance(r, Outcome) else [dict(x) for x in r]
        f = fid.get((t.encoder.label, t.encoder.id_weight, t.dataset.name))
        if f and t.corruption == "clean":
            for x in cell_rows:
                x.update({k: f.get(k) for k in ("psnr", "ssim", "psnr_ci_low", "psnr_ci_high", "decoder_params")})
                if f.get("fidelity_error"):
                    x["error"] = (x.get("error") or "") + f"fidelity: {f['fidelity_error']}"
        rows.extend(cell_rows)
    return rows, stats


def run(study: str | os.PathLike | dict | StudyConfig, out: str | os.PathLike | None = None,
        cache: str | os.PathLike | None = None, executor: str | None = None, progress: bool = True,
        report: bool = True, merge: bool = True, extra_config: dict[str, Any] | None = None):
    """Run a study; returns its records (a pandas DataFrame). See the module doc."""
    from wmprobe.records import read_records, write_records
    t0 = time.perf_counter()
    cfg = load_config(study)
    if executor:
        cfg = dataclasses.replace(cfg, executor=dataclasses.replace(cfg.executor, kind=executor))
    out = Path(out or f"{cfg.name}-results")
    c = Cache(cache)
    say = (lambda m: print(f"[wmprobe {cfg.name}] {m}", flush=True)) if progress else (lambda m: None)
    datasets = resolve_datasets(cfg, c, progress)
    say("data ready: " + ", ".join(f"{n} {s.n_episodes} episodes ({sp.kind} split, {len(sp.test)} test)"
                                   for n, (s, sp) in datasets.items()))
    encoders = resolve_encoders(cfg, datasets, c, progress)
    say(f"encoders ready: {', '.join(sorted({e.label for e in encoders}))}")
    plan = plan_study(cfg, encoders, [_dataset_ref(n, s, sp) for n, (s, sp) in datasets.items()])
    say(f"plan: {plan.summary()}")
    rows, stats = execute(plan, cfg, c, progress)
    stats["seconds"] = round(time.perf_counter() - t0, 1)
    config = {"command": "run", **(extra_config or {}), "study": cfg.to_dict(), "cache": str(c.root),
              "datasets": {n: {"fingerprint": s.fingerprint, "path": str(s.path), "split": sp.describe()}
                           for n, (s, sp) in datasets.items()},
              "encoders": {e.label + (f" +ID{e.id_weight:g}" if e.id_weight else ""):
                           {"name": e.name, "key": e.key, "layers": list(e.layers)} for e in encoders},
              "run": stats}
    before = _digest(out / "records.parquet")
    write_records(rows, out, config, merge_existing=merge)
    if report and (before != _digest(out / "records.parquet") or not (out / "report.html").exists()):
        from wmprobe.report import build_report
        build_report(out)
    if stats["failures"]:
        say(f"{len(stats['failures'])} task(s) failed; their rows carry the error (see config.yaml run.failures)")
    say(f"done in {stats['seconds']:.0f}s: extract {stats['extract']}, probe {stats.get('probe')}")
    return read_records(out)


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


__all__ = ["run", "execute", "resolve_datasets", "resolve_encoders"]
