"""The study's execute stage: a plan's tasks through an executor, cached results reused, failures kept as rows.

``execute(plan, cache, ex, stats) -> rows``: latent shards first (a corrupt cached shard is recomputed), then
probe, fidelity, state and control cells; a cell whose shards failed gets rows with the extraction error
(``_error_rows``), and the fidelity of each (encoder, dataset) is joined into its clean probe rows.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from wmprobe.records import Source, row
from wmprobe.study.cache import Cache, content_key
from wmprobe.study.executors import Outcome
from wmprobe.study.plan import Plan, ProbeTask


FIDELITY_COLUMNS = ("psnr", "ssim", "psnr_ci_low", "psnr_ci_high", "ssim_ci_low", "ssim_ci_high", "decoder_params",
                    "psnr_own", "ssim_own", "psnr_own_ci_low", "psnr_own_ci_high", "ssim_own_ci_low",
                    "ssim_own_ci_high")


def _error_rows(task: ProbeTask, error: str) -> list[dict[str, Any]]:
    """The rows a failed probe task would have written (every corruption it scores, every seed), with NaN
    metrics and the error: a failure is reported in the records, never dropped."""
    source = Source(task.encoder.label, task.encoder.family, task.dataset.name, task.dataset.split_kind,
                    task.encoder.id_weight, task.encoder.key, task.dataset.fingerprint)
    base = row(source, layer=task.layer, probe=task.probe, k=task.k, error=error or "failed")
    if task.augmented:
        base = row(base, train_corruption=task.train_corruption)
    if task.latents != "real":   # a failed imagined cell must not replace the real one
        base = row(base, latents=task.latents)
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
            broken = [bad_shards[d] for d in t.required_shards if d in bad_shards]
            tests = t.tests if isinstance(t, ProbeTask) else ()   # a probe cell scores each corruption apart
            lost = [(c, next(bad_shards[x] for x in keys if x in bad_shards))
                    for c, keys in tests if any(x in bad_shards for x in keys)]
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



def stop_if_disk_full(stats: dict[str, Any]) -> None:
    """Tasks that failed for lack of disk space stop the run with that error (exit 2, naming the path): records
    full of disk errors would say nothing about the encoders. The cache stays consistent; a rerun resumes."""
    full = [f for f in stats["failures"]
            if any(m in f["error"] for m in ("disk full", "No space left", "Disk quota", "requested and"))]
    if full:
        from wmprobe.study.cache import CacheError
        first = full[0]["error"].split("\n")[0].removeprefix("CacheError: ")
        raise CacheError(f"{len(full)} task(s) failed for lack of disk space, the first: {first}")
