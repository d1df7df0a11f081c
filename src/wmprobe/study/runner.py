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
"""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Sequence


import numpy as np

from wmprobe._fs import mark_used
from wmprobe.errors import ConfigError, EncoderError
from wmprobe.records import Source, row
from wmprobe.study.cache import Cache, content_key
from wmprobe.study.config import StudyConfig, load_config
from wmprobe.study.executors import Outcome, make_executor
from wmprobe.study.plan import DatasetRef, EncoderRef, Plan, plan_study


def resolve_datasets(cfg: StudyConfig, cache: Cache, progress: bool = True) -> dict[str, tuple[Any, Any]]:
    """name -> (EpisodeStore, Split)."""
    from wmprobe.data.sim import cached_generate
    from wmprobe.data.splits import study_splits
    from wmprobe.data.store import EpisodeStore
    stores = {}
    for d in cfg.datasets:
        if d.sim:
            stores[d.name] = cached_generate(d.sim, cache.data_dir, episodes=d.episodes, steps=d.steps, size=d.size,
                                             seed=cfg.seed, camera=d.camera, tasks=d.tasks, wrist=d.wrist,
                                             progress=progress)
        else:
            stores[d.name] = EpisodeStore.load(str(d.path), allow_symlinks_out=d.allow_symlinks_out)
        if d.action_groups is not None:
            from wmprobe.data.formats.groups import regroup
            stores[d.name] = regroup(stores[d.name], d.action_groups, cache.data_dir)
    # task-OOD: the same held-out task names in every dataset (chosen once from the names they share)
    splits = study_splits(stores, kind=cfg.split, test_frac=cfg.test_frac, seed=cfg.seed)
    return {n: (stores[n], splits[n]) for n in stores}


def pretraining_pool(datasets: dict[str, tuple[Any, Any]], cache: Cache) -> Any:
    """The zoo's pretraining corpus: the TRAIN episodes of every dataset in one store, written once into the
    cache (workers read it from there). Test episodes never enter, and no episode of a task that ANY
    dataset holds out (by task name: the pool mixes datasets) enters either; ``leakage.check_leakage``
    verifies both before any training."""
    from wmprobe.data.splits import task_names_of
    from wmprobe.data.store import EpisodeStore, from_episodes, open_cached
    from wmprobe.study.cache import content_key
    stores = {n: s for n, (s, _) in datasets.items()}
    dims = {s.action_dim for s in stores.values()}
    if len(dims) > 1:
        raise ConfigError(f"zoo training pools the train episodes of every dataset, but their action dims "
                          f"differ ({sorted(dims)}); run one study per action space")
    held = {str(t) for _, sp in datasets.values() for t in getattr(sp, "test_task_names", ()) or ()}
    keep = {}
    for n, (s, sp) in datasets.items():
        names, test = task_names_of(s), set(map(int, sp.test))
        keep[n] = [int(e) for e in sp.train if int(e) not in test and names[int(s.tasks[int(e)])] not in held]
    key = content_key({"pool": [[n, s.fingerprint, keep[n]] for n, s in stores.items()]})
    path = cache.data_dir / f"pool-{key}"
    if open_cached(path) is not None:   # a corrupt pool is moved aside with a warning and rebuilt
        mark_used(path)
        return EpisodeStore.load(path)
    with cache.lock(f"pool-{key}"):
        if open_cached(path) is None:
            eps, tasks, names = [], [], []
            for name, (store, split) in datasets.items():
                offset = len(names)
                names += [f"{name}/{t}" for t in store.meta["task_names"]]
                for e in keep[name]:
                    sl = store.episode_slice(e)
                    eps.append((np.asarray(store.frames[sl]), np.asarray(store.actions[sl])))
                    tasks.append(offset + int(store.tasks[e]))
            first = next(iter(stores.values()))
            pool = from_episodes(eps, tasks, fps=first.meta["fps"], action_names=first.meta["action_names"],
                                 action_groups=first.meta["action_groups"], task_names=names,
                                 source={"kind": "pretraining-pool",
                                         "datasets": {n: s.fingerprint for n, s in stores.items()}},
                                 name="pretrain-pool")
            pool.save(path)  # write_store is atomic: meta.json appears last
    return EpisodeStore.load(path)


def zoo_id_groups(cfg: StudyConfig, datasets: dict[str, tuple[Any, Any]], headlines: dict[str, Any] | None = None,
                  audits: dict[str, Any] | None = None) -> tuple[list[str] | None, str]:
    """The action groups +ID (and the ceiling) train on, and where that choice came from: ``zoo.id_groups``
    of the config, else the groups in the headline of EVERY dataset (``headlines``/``audits``: the study's,
    ``probes.headline.for_study``; a headline that is the audit's fallback or "every group" is no evidence),
    else (no headlines given) the config's ``headline_groups`` or the audit run here, else None
    (``zoo.id_dims``' default: translation where the data have it)."""
    if cfg.zoo.id_groups:
        return list(cfg.zoo.id_groups), "config zoo.id_groups"
    if headlines:
        lists = []
        for n, h in headlines.items():
            weak = h.get("source") == "all" or (h.get("source") == "audit"
                                                and (audits or {}).get(n, {}).get("fallback"))
            lists.append([] if weak else list(h.get("headline_groups") or []))
        common = [g for g in lists[0] if all(g in x for x in lists)]
        if common:
            sources = ", ".join(sorted({str(h.get("source")) for h in headlines.values()}))
            return common, f"the study's headline groups ({sources})"
        return None, "default (translation; no group is in every dataset's headline by config or audit)"
    named = getattr(cfg, "headline_groups", None)
    if isinstance(named, dict):   # {dataset: [groups]}: the groups every named dataset puts in its headline
        lists = [list(v) for v in named.values()]
        named = [g for g in lists[0] if all(g in x for x in lists)] if lists else None
    if named:
        return list(named), "config headline_groups"
    try:
        from wmprobe.data.audit import audit
    except ImportError:
        return None, "default (translation)"
    shared: list[str] | None = None
    for store, split in datasets.values():
        res = audit(store, split, k=min(4, int(store.episode_lengths.max()) - 1))
        # the audit's fallback (no group meets its rule: every group) is no evidence of what the images show
        found = [] if res.get("fallback") else [str(g) for g in (res.get("headline_groups") or [])]
        shared = found if shared is None else [g for g in shared if g in found]
    if shared:
        return shared, "audit"
    return None, "default (translation; the audit found no group identifiable in every dataset)"


@dataclasses.dataclass(frozen=True)
class ZooModel:
    """One zoo model a study trained: ``label`` (``zoo:FAMILY``, ``zoo:FAMILY[OBJECTIVE]`` for an objective
    other than l1, ``ceiling``), ``family``, ``checkpoint`` directory ('' when training failed), ``id_weight``
    (0 for the ceiling: it has no twin) and ``error`` (None when it trained)."""

    label: str
    family: str
    checkpoint: str
    id_weight: float
    error: str | None = None


def train_zoo(cfg: StudyConfig, datasets: dict[str, tuple[Any, Any]], cache: Cache, ex: Any,
              stats: dict[str, Any], headlines: dict[str, Any] | None = None,
              audits: dict[str, Any] | None = None) -> list[ZooModel]:
    """Train (or reuse) every zoo family x id_weight (x objective), and the ceiling, through the executor;
    one ``ZooModel`` each."""
    if not cfg.zoo.families:
        return []
    from wmprobe.study.plan import TrainTask
    from wmprobe.zoo import CEILING, id_dims
    pool = pretraining_pool(datasets, cache)
    groups, source = zoo_id_groups(cfg, datasets, headlines, audits)
    id_dims(pool, groups)   # an unknown group is one ConfigError here, not a failure in every training task
    g = tuple(groups) if groups else None
    combos = dict.fromkeys((fam, float(w), obj if w else "l1")  # a frozen model has no +ID objective
                           for fam in cfg.zoo.families for w in cfg.zoo.id_weights for obj in cfg.zoo.all_objectives)
    tasks = [TrainTask(f"{fam}-{w:g}-{obj}", fam, w, cfg.zoo.preset, obj, cfg.seed, str(pool.path), cfg.device,
                       g if w else None) for fam, w, obj in combos]
    if cfg.zoo.ceiling:
        tasks.append(TrainTask(CEILING, CEILING, 1.0, cfg.zoo.preset, "l1", cfg.seed, str(pool.path), cfg.device, g))
    out = []
    for t, o in zip(tasks, ex.map(tasks, str(cache.root), "train zoo")):
        if t.family == CEILING:
            label, w = CEILING, 0.0
        else:
            label, w = f"zoo:{t.family}" + (f"[{t.objective}]" if t.objective != "l1" else ""), t.id_weight
        out.append(ZooModel(label, t.family, o.value if o.ok else "", w, None if o.ok else o.error))
        if not o.ok:
            stats["failures"].append({"task": t.describe(), "error": o.error, "attempts": o.attempts})
    stats["train"] = {"planned": len(tasks)}
    stats["zoo"] = {"id_groups": id_dims(pool, groups)[0], "id_groups_source": source, "ceiling": cfg.zoo.ceiling,
                    "plateau": _plateaus(out)}
    return out


def _plateaus(models: list[ZooModel]) -> dict[str, Any]:
    """``{label [+IDw]: plateau of its loss (and of its +ID loss)}`` from each checkpoint's recipe.json."""
    import json
    out = {}
    for m in models:
        if m.error:
            continue
        try:
            meta = json.loads((Path(m.checkpoint) / "recipe.json").read_text())
        except (OSError, ValueError):
            continue
        entry = dict(meta.get("plateau") or {})
        if meta.get("id_plateau"):
            entry["id"] = meta["id_plateau"]
        out[m.label + (f" +ID{m.id_weight:g}" if m.id_weight else "")] = entry
    return out


def resolve_encoders(cfg: StudyConfig, zoo_models: list[ZooModel]) -> list[EncoderRef]:
    from wmprobe.encoders.registry import load_encoder
    entries = [(e.name, e.shown, dict(e.options), e.layers, e.id_weight) for e in cfg.encoders]
    entries += [(f"zoo:{m.checkpoint}", m.label, {}, None, m.id_weight) for m in zoo_models if m.error is None]
    refs = []
    for name, label, options, layers, id_weight in entries:
        enc = load_encoder(name, device=cfg.device, **options)
        spec = enc.spec
        want = tuple(layers or cfg.layers or (spec.default_layer,))
        missing = [l for l in want if l not in spec.layers]
        if missing:
            raise EncoderError(f"encoder {label}: no layer(s) {missing}; it has {list(spec.layers)}")
        from wmprobe.fidelity import has_own_decoder
        from wmprobe.zoo.imagine import can_imagine
        refs.append(EncoderRef(label, name, tuple(sorted(options.items())), want, spec.family, id_weight,
                               spec.key(), spec.frames_per_step, has_own_decoder(enc), can_imagine(enc)))
        del enc
    return refs


def _dataset_ref(name: str, store: Any, split: Any, headline: Any = ()) -> DatasetRef:
    return DatasetRef(name, str(store.path), store.fingerprint, store.n_episodes, split.kind,
                      tuple(int(e) for e in split.train), tuple(int(e) for e in split.test), tuple(headline),
                      store.states is not None)


FIDELITY_COLUMNS = ("psnr", "ssim", "psnr_ci_low", "psnr_ci_high", "ssim_ci_low", "ssim_ci_high", "decoder_params",
                    "psnr_own", "ssim_own", "psnr_own_ci_low", "psnr_own_ci_high", "ssim_own_ci_low",
                    "ssim_own_ci_high")


def _error_rows(task: Any, error: str) -> list[dict[str, Any]]:
    """The rows a failed probe task would have written (every corruption it scores, every seed), with NaN
    metrics and the error: a failure is reported in the records, never dropped."""
    source = Source(task.encoder.label, task.encoder.family, task.dataset.name, task.dataset.split_kind,
                    task.encoder.id_weight, task.encoder.key, task.dataset.fingerprint)
    base = row(source, layer=task.layer, probe=task.probe, k=task.k, error=error or "failed")
    if task.augmented:
        base["train_corruption"] = task.train_corruption
    if getattr(task, "latents", "real") != "real":   # a failed imagined cell must not replace the real one
        base["latents"] = task.latents
    from wmprobe.probes.spec import probe_spec
    seeds = probe_spec(task.probe).fit_seeds(task.seeds)
    return [row(base, corruption=c, seed=s, r2=float("nan")) for c in task.corruptions for s in seeds]


def execute(plan: Plan, cache: Cache, ex: Any, stats: dict[str, Any]) -> list[dict]:
    """Run the plan's tasks through ``ex``; returns rows; ``stats`` gets what was computed, reused, failed."""
    from wmprobe.probes.spec import probe_spec
    root = str(cache.root)

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
        runnable, partial = [], {}
        for t in tasks:
            rows = cache.load_cell(t.key)
            if rows is not None:
                done[t.key] = rows
                continue
            deps: tuple[str, ...] = tuple(getattr(t, "required_shards", ()) or getattr(t, "shards", ()))
            broken = [bad_shards[d] for d in deps if d in bad_shards]
            lost = [(c, next(bad_shards[x] for x in keys if x in bad_shards))
                    for c, keys in getattr(t, "tests", ()) if any(x in bad_shards for x in keys)]
            if broken:
                done[t.key] = Outcome(False, error=broken[0], attempts=0)
            elif lost:   # a corruption's shards failed: score the others, report that corruption as failed
                keep = tuple((c, keys) for c, keys in t.tests if c not in dict(lost))
                sub = dataclasses.replace(t, tests=keep, key=content_key({"partial": t.key, "tests": keep}))
                partial[t.key] = (sub, lost)
                runnable.append(sub)
            else:
                runnable.append(t)
        for t, o in zip(runnable, ex.map(runnable, root, desc) if runnable else []):
            done[t.key] = o.value if o.ok else o
            if not o.ok:
                stats["failures"].append({"task": t.describe(), "error": o.error, "attempts": o.attempts})
        for key, (sub, lost) in partial.items():
            r = done.pop(sub.key)
            if isinstance(r, Outcome):
                done[key] = r
            else:
                done[key] = list(r) + [x for c, err in lost
                                       for x in _error_rows(dataclasses.replace(sub, tests=((c, ()),)), err)]
        stats[desc] = {"planned": len(tasks), "computed": len(runnable)}
        return done

    probe_res = cells(plan.probe, "probe")
    fid_res = cells(plan.fidelity, "fidelity")
    state_res = cells(plan.state, "state")
    fid: dict[tuple[str, float, str], dict[str, Any]] = {}
    for ft in plan.fidelity:
        fr = fid_res[ft.key]
        if isinstance(fr, Outcome):
            fid[(ft.encoder.label, ft.encoder.id_weight, ft.dataset.name)] = {"fidelity_error": fr.error}
        else:
            fid[(ft.encoder.label, ft.encoder.id_weight, ft.dataset.name)] = fr[0]
    rows: list[dict[str, Any]] = []
    for pt in plan.probe:
        r = probe_res[pt.key]
        cell_rows = _error_rows(pt, r.error) if isinstance(r, Outcome) else [dict(x) for x in r]
        f = fid.get((pt.encoder.label, pt.encoder.id_weight, pt.dataset.name)) or {}
        for x in cell_rows if f else ():
            if x.get("corruption") == "clean":
                x.update({k: f.get(k) for k in FIDELITY_COLUMNS if k in f})
                if f.get("fidelity_error"):
                    x["error"] = (x.get("error") or "") + f"fidelity: {f['fidelity_error']}"
        rows.extend(cell_rows)
    for st in plan.state:   # the state ceiling: clean rows, encoder = family = layer = state
        sr = state_res[st.key]
        if isinstance(sr, Outcome):
            src = Source("state", "state", st.dataset.name, st.dataset.split_kind,
                         dataset_fingerprint=st.dataset.fingerprint)
            sr = [row(src, corruption="clean", layer="state", probe=st.probe, k=st.k, seed=s, r2=float("nan"),
                      error=sr.error or "failed") for s in probe_spec(st.probe).fit_seeds(st.seeds)]
        rows.extend(dict(x) for x in sr)
    if plan.control:   # study `control:`: closed-loop behaviour cloning (wmprobe.study.control)
        from wmprobe.study.control import error_rows
        ctl = cells(plan.control, "control")
        for t in plan.control:
            r = ctl[t.key]
            rows.extend(error_rows(t, r.error) if isinstance(r, Outcome) else [dict(x) for x in r])
    return rows


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
        plan = plan_study(cfg, encoders, [_dataset_ref(n, s, sp, headlines[n]["headline_groups"])
                                          for n, (s, sp) in datasets.items()])
        say(f"plan: {plan.summary()}")
        rows = execute(plan, c, ex, stats)
        _stop_if_disk_full(stats)
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


def _stop_if_disk_full(stats: dict[str, Any]) -> None:
    """Tasks that failed for lack of disk space stop the run with that error (exit 2, naming the path): records
    full of disk errors would say nothing about the encoders. The cache stays consistent; a rerun resumes."""
    full = [f for f in stats["failures"]
            if any(m in f["error"] for m in ("disk full", "No space left", "Disk quota", "requested and"))]
    if full:
        from wmprobe.study.cache import CacheError
        first = full[0]["error"].split("\n")[0].removeprefix("CacheError: ")
        raise CacheError(f"{len(full)} task(s) failed for lack of disk space, the first: {first}")


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


__all__ = ["run", "execute", "resolve_datasets", "resolve_encoders", "train_zoo", "pretraining_pool"]
