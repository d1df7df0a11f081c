"""Does a ranking survive a new data seed? Rank stability of the encoders across runs of the same study.

A run is one results directory (``wmprobe run`` / ``wmprobe demo``) of a study whose data seed differs from the
others' (new episodes, new held-out initial states and, for zoo encoders, a zoo retrained on them). Per dataset
every run contributes each encoder's clean headline R2 (``analysis.summary_table``: the headline probe and k,
mean over probe seeds, mean episode-bootstrap CI). The references (``ceiling``, ``state``) are left out. A
study that trained its zoo with training-seed replicates (``zoo: {replicates: R}``) contributes each zoo
model once, the mean over its replicates (``analysis.collapse_replicates``): the family is the encoder under
test, a replicate is one draw of it, and the table says how many replicates each run averaged.

Per dataset and encoder group (``all`` encoders, the ``zoo`` models, the ``frozen`` ones with
``id_weight == 0``, the ``+ID`` ones; a group with fewer than 3 shared encoders is skipped):

- ``pairs``: Kendall tau (tau-b, ties allowed) of the R2 of every pair of runs over the encoders both measured;
  ``tau_mean`` / ``tau_min`` over the pairs. One pair of seeds is one draw: with 7 encoders a tau of 0.71
  is 3 discordant pairs of 21, so read the spread of the pairs, not one value.
- ``concordant_pairs``: the share of encoder pairs ordered the same way on every run, and
  ``separated_pairs``: the share ordered the same way with disjoint CIs on every run (orderings a reader may
  quote from any one run).

Held-out tasks: under a task split whose tasks are drawn with the seed (no ``test_tasks``), a new data seed
also tests other tasks, so tau then mixes estimator noise with which tasks are held out. Each dataset's
``test_tasks`` lists every run's held-out task names (from its config.yaml; empty when unknown) and every
pair carries ``shared_tasks``, how many of them the two runs share; ``format_stability`` says so when the
runs test different tasks.

Per encoder (``table``): R2 on each run, the mean, the data-seed sd (``ddof = 1``: the spread a new data seed
brings, not the probe-seed sd of one run) and, among the encoders that every run measured, the mean, best and
worst rank (NaN for an encoder some run lacks).
"""
from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from wmprobe.analysis import CEILING, FLOOR_FAMILIES, STATE, collapse_replicates, is_family, summary_table
from wmprobe.errors import ProbeError

MIN_ENCODERS = 3
GROUPS = ("all", "zoo", "frozen", "+ID")


def _group(s: pd.DataFrame, name: str) -> pd.DataFrame:
    """Rows of ``s`` (one run's summary of one dataset) in encoder group ``name``."""
    if name == "zoo":
        return s[s["encoder"].astype(str).str.startswith("zoo:")]
    if name == "frozen":   # the encoders under test without +ID: the floors are references, as in `all` only
        return s[(s["id_weight"] == 0) & ~is_family(s, FLOOR_FAMILIES)]
    if name == "+ID":
        return s[s["id_weight"] > 0]
    return s


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall tau-b of two equally long vectors (ties count as neither concordant nor discordant); NaN when
    either vector is constant."""
    from scipy.stats import kendalltau
    t = kendalltau(np.asarray(a, float), np.asarray(b, float)).statistic
    return float(t) if np.isfinite(t) else math.nan


def _order_shares(runs: Sequence[pd.DataFrame]) -> tuple[float, float, int]:
    """(share of encoder pairs ordered alike on every run, share also CI-separated on every run, pairs) over
    the encoders measured by every run that measured the group (>= 3 encoders); each run indexed by label with
    ``r2, r2_ci_low, r2_ci_high``."""
    runs = [r for r in runs if len(r) >= MIN_ENCODERS]
    if len(runs) < 2:
        return math.nan, math.nan, 0
    common = sorted(set.intersection(*(set(r.index) for r in runs)))
    same = sep = total = 0
    for x, y in itertools.combinations(common, 2):
        signs = {np.sign(r.at[x, "r2"] - r.at[y, "r2"]) for r in runs}
        total += 1
        if len(signs) == 1 and 0 not in signs:
            same += 1
            up = signs.pop() > 0
            hi, lo = (x, y) if up else (y, x)
            sep += all(r.at[hi, "r2_ci_low"] > r.at[lo, "r2_ci_high"] for r in runs)
    return (same / total if total else math.nan), (sep / total if total else math.nan), total


def stability(runs: Mapping[str, pd.DataFrame],
              test_tasks: Mapping[str, Mapping[str, Sequence[str]]] | None = None) -> dict[str, Any]:
    """Rank stability of the encoders across ``runs`` (``{name: records}``, >= 2 runs); see the module doc.
    ``test_tasks``: ``{run: {dataset: held-out task names}}`` where known (``stability_from_dirs`` reads them).

    Returns ``{"runs": [...], "datasets": {dataset: {"groups": {group: {...}}, "table": DataFrame}}}``.
    ProbeError when fewer than two runs, or no dataset with >= 3 encoders in two runs.
    """
    if len(runs) < 2:
        raise ProbeError(f"stability needs >= 2 runs of the same study with different data seeds, got {len(runs)}")
    sums: dict[str, pd.DataFrame] = {}
    for name, df in runs.items():
        s = collapse_replicates(summary_table(df))   # a zoo model's training-seed replicates: one row, their mean
        if s.empty:
            raise ProbeError(f"stability: run {name!r} holds no clean headline cells")
        sums[name] = s[~is_family(s, (CEILING, STATE))]
    names = list(sums)
    datasets = sorted(set.intersection(*(set(s["dataset"].astype(str)) for s in sums.values())))
    out: dict[str, Any] = {"runs": names, "datasets": {}}
    for ds in datasets:
        per = {n: s[s["dataset"] == ds].set_index("label") for n, s in sums.items()}
        held = {n: sorted((test_tasks or {}).get(n, {}).get(ds, ())) for n in names}
        groups: dict[str, Any] = {}
        for g in GROUPS:
            sub = {n: _group(p.reset_index(), g).set_index("label") for n, p in per.items()}
            pairs: list[dict[str, Any]] = []
            for a, b in itertools.combinations(names, 2):
                common = sorted(set(sub[a].index) & set(sub[b].index))
                if len(common) >= MIN_ENCODERS:
                    pairs.append({"a": a, "b": b, "n": len(common),
                                  "tau": kendall_tau(sub[a].loc[common, "r2"].to_numpy(),
                                                     sub[b].loc[common, "r2"].to_numpy()),
                                  "shared_tasks": len(set(held[a]) & set(held[b]))})
            if not pairs:
                continue
            taus = [float(p["tau"]) for p in pairs if not math.isnan(p["tau"])]
            same, sep, n_pairs = _order_shares(list(sub.values()))
            groups[g] = {"pairs": pairs, "tau_mean": float(np.mean(taus)) if taus else math.nan,
                         "tau_min": float(np.min(taus)) if taus else math.nan,
                         "concordant_pairs": same, "separated_pairs": sep, "encoder_pairs": n_pairs,
                         "n_encoders": int(max(p["n"] for p in pairs))}
        if not groups:
            continue
        r2 = pd.DataFrame({n: p["r2"] for n, p in per.items()})
        ranks = r2.dropna().rank(ascending=False).reindex(r2.index)   # among the encoders every run measured
        reps = pd.DataFrame({n: p["replicates"] for n, p in per.items()}).max(axis=1)
        table = pd.DataFrame({"runs": r2.notna().sum(axis=1), "r2_mean": r2.mean(axis=1),
                              "r2_data_seed_sd": r2.std(axis=1, ddof=1), "rank_mean": ranks.mean(axis=1),
                              "rank_best": ranks.min(axis=1), "rank_worst": ranks.max(axis=1),
                              "replicates": reps.reindex(r2.index).fillna(1).astype(int)})
        table = pd.concat([r2.add_prefix("r2_"), table], axis=1).sort_values("rank_mean")
        out["datasets"][ds] = {"groups": groups, "table": table, "test_tasks": held}
    if not out["datasets"]:
        raise ProbeError(f"stability: no dataset has >= {MIN_ENCODERS} encoders measured in two of the runs "
                         f"(datasets per run: {[sorted(s['dataset'].unique()) for s in sums.values()]})")
    return out


def _config(path: Path) -> dict[str, Any]:
    """The ``config`` mapping of a run's config.yaml; {} when the file is missing or not such a mapping."""
    cfg = path / "config.yaml"
    if not cfg.is_file():
        return {}
    import yaml
    try:
        doc = (yaml.safe_load(cfg.read_text(encoding="utf-8")) or {}).get("config") or {}
    except (yaml.YAMLError, AttributeError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _run_name(path: Path, taken: set[str], doc: Mapping[str, Any]) -> str:
    """A short unique name for a run directory: its config's ``seed`` when it has one, else its folder name."""
    name = path.name or str(path)
    study = doc.get("study")
    seed = study.get("seed", doc.get("seed")) if isinstance(study, dict) else doc.get("seed")
    if seed is not None and f"seed {seed}" not in taken:
        name = f"seed {seed}"
    return name if name not in taken else f"{name} ({len(taken)})"


def _held_out(doc: Mapping[str, Any]) -> dict[str, list[str]]:
    """``{dataset: held-out task names}`` from a run's config (``datasets.NAME.split``); {} when the entry is
    missing (records written by ``wmprobe probe``, an episode split)."""
    dsets = doc.get("datasets")
    if not isinstance(dsets, dict):
        return {}
    return {str(n): [str(t) for t in ((d.get("split") or {}).get("test_task_names") or [])]
            for n, d in dsets.items() if isinstance(d, dict) and isinstance(d.get("split") or {}, dict)}


def stability_from_dirs(dirs: Sequence[str | Path]) -> dict[str, Any]:
    """``stability`` over results directories (each read with ``records.read_records``; the run's name and its
    held-out task names from its config.yaml, read once)."""
    from wmprobe.records import read_records
    runs: dict[str, pd.DataFrame] = {}
    held: dict[str, dict[str, list[str]]] = {}
    for d in dirs:
        p = Path(d)
        doc = _config(p)
        name = _run_name(p, set(runs), doc)
        runs[name] = read_records(p)
        held[name] = _held_out(doc)
    return stability(runs, held)


def format_stability(res: Mapping[str, Any]) -> str:
    """The text ``wmprobe stability`` prints: per dataset the groups' tau and the per-encoder table."""
    lines = [f"rank stability across {len(res['runs'])} runs: {', '.join(res['runs'])}"]
    for ds, d in res["datasets"].items():
        lines.append(f"\n{ds}")
        held = {n: tuple(t) for n, t in (d.get("test_tasks") or {}).items() if t}
        if held:
            same = len(set(held.values())) == 1 and len(held) == len(res["runs"])
            lines.append("  held-out tasks: " + ("the same in every run: " + ", ".join(next(iter(held.values())))
                                                 if same else "; ".join(f"{n}: {', '.join(t)}"
                                                                        for n, t in held.items())))
            if not same:
                lines.append("  (the runs test different tasks: tau mixes estimator noise with the choice of "
                             "held-out tasks; name them with the study's `test_tasks` to compare seeds alone)")
        for g, v in d["groups"].items():
            pairs = ", ".join(f"{p['a']}/{p['b']} {p['tau']:.2f}"
                              + (f" [{p.get('shared_tasks', 0)} shared]" if held else "") for p in v["pairs"])
            lines.append(f"  {g:<7} n={v['n_encoders']:<3} Kendall tau mean {v['tau_mean']:.2f} min "
                         f"{v['tau_min']:.2f} ({pairs}); ordered alike on every run "
                         f"{v['concordant_pairs']:.0%}, CI-separated on every run {v['separated_pairs']:.0%} "
                         f"of {v['encoder_pairs']} pairs")
        lines.append(d["table"].round(3).to_string())
    return "\n".join(lines)


def to_json(res: Mapping[str, Any]) -> dict[str, Any]:
    """``res`` with each table as a list of row mappings (``encoder`` = the label), NaN as None."""
    def clean(v: Any) -> Any:
        return None if isinstance(v, float) and math.isnan(v) else v
    out: dict[str, Any] = {"runs": list(res["runs"]), "datasets": {}}
    for ds, d in res["datasets"].items():
        rows = [{"encoder": str(k), **{c: clean(float(x)) for c, x in r.items()}}
                for k, r in d["table"].iterrows()]
        groups = {g: {k: ([{**p, "tau": clean(p["tau"])} for p in v] if k == "pairs" else clean(v))
                      for k, v in grp.items()} for g, grp in d["groups"].items()}
        out["datasets"][ds] = {"groups": groups, "table": rows, "test_tasks": d.get("test_tasks", {})}
    return out
