"""The study's zoo stage: which action groups +ID trains on, then every zoo family x id_weight (x objective)
and the ceiling trained (or reused from the cache) through the executor, one ``ZooModel`` each."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from wmprobe.study.cache import Cache
from wmprobe.study.config import StudyConfig
from wmprobe.study.resolve import pretraining_pool


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


REPLICATE_STRIDE = 1000   # replicate r of a zoo model trains with zoo seed ``seed + REPLICATE_STRIDE * r``
REPLICATE_MARK = "#"      # and is labelled ``zoo:FAMILY#r`` (r = 0 keeps ``zoo:FAMILY``: a one-replicate study)


def replicate_seed(seed: int, r: int) -> int:
    return int(seed) + REPLICATE_STRIDE * int(r)


@dataclasses.dataclass(frozen=True)
class ZooModel:
    """One zoo model a study trained: ``label`` (``zoo:FAMILY``, ``zoo:FAMILY[OBJECTIVE]`` for an objective
    other than l1, ``#r`` after either for training-seed replicate r > 0, ``ceiling``), ``family``,
    ``checkpoint`` directory ('' when training failed), ``id_weight``
    (0 for the ceiling: it has no twin) and ``error`` (None when it trained)."""

    label: str
    family: str
    checkpoint: str
    id_weight: float
    error: str | None = None


#: seconds per step of each family relative to the VAE's (one thread, the demo preset, measured on seed 21's
#: pool on a 2-core AVX2 machine); +ID costs ``ID_COST`` x its frozen twin (1.0-1.5, mean 1.31 there), the
#: ceiling (a trunk and a head) ~0.45 of a VAE step. Only a scheduling hint: a wrong value costs wall time,
#: never a different result (each model's training is seeded by its own recipe); an unknown family counts 1.
STEP_COST = {"dynamics-actin": 1.45, "dynamics": 1.2, "diffusion": 1.15, "image-ssl": 1.05, "videomae": 1.05,
             "vae": 1.0, "vjepa": 0.85, "ceiling": 0.45}
ID_COST = 1.3


def expected_cost(family: str, id_weight: float, ceiling_factor: float) -> float:
    """Relative seconds of one zoo training task: the families train the preset's steps, the ceiling
    ``ceiling_factor`` times as many (zoo/ceiling.py)."""
    from wmprobe.zoo import CEILING
    if family == CEILING:
        return STEP_COST[CEILING] * ceiling_factor
    return STEP_COST.get(family, 1.0) * (ID_COST if id_weight else 1.0)


def train_zoo(cfg: StudyConfig, datasets: dict[str, tuple[Any, Any]], cache: Cache, ex: Any,
              stats: dict[str, Any], headlines: dict[str, Any] | None = None,
              audits: dict[str, Any] | None = None) -> list[ZooModel]:
    """Train (or reuse) every zoo family x id_weight (x objective) x replicate, and the ceiling (one), through
    the executor; one ``ZooModel`` each."""
    if not cfg.zoo.families:
        return []
    from wmprobe.study.plan import TrainTask
    from wmprobe.zoo import CEILING, PRESETS, id_dims
    pool = pretraining_pool(datasets, cache)
    groups, source = zoo_id_groups(cfg, datasets, headlines, audits)
    id_dims(pool, groups)   # an unknown group is one ConfigError here, not a failure in every training task
    g = tuple(groups) if groups else None
    combos = dict.fromkeys((fam, float(w), obj if w else "l1")  # a frozen model has no +ID objective
                           for fam in cfg.zoo.families for w in cfg.zoo.id_weights for obj in cfg.zoo.all_objectives)
    # replicate r > 0 of a model: the same recipe with zoo seed seed + REPLICATE_STRIDE r (its own cache key)
    tasks, labels = [], []
    for r in range(cfg.zoo.replicates):
        mark = f"{REPLICATE_MARK}{r}" if r else ""
        for fam, w, obj in combos:
            if r >= cfg.zoo.replicates_of(w):   # `replicate_weights` leaves this weight at one replicate
                continue
            tasks.append(TrainTask(f"{fam}-{w:g}-{obj}{mark}", fam, w, cfg.zoo.preset, obj, replicate_seed(cfg.seed, r),
                                   str(pool.path), cfg.device, g if w else None))
            labels.append(f"zoo:{fam}" + (f"[{obj}]" if obj != "l1" else "") + mark)
    if cfg.zoo.ceiling:
        tasks.append(TrainTask(CEILING, CEILING, 1.0, cfg.zoo.preset, "l1", cfg.seed, str(pool.path), cfg.device, g))
        labels.append(CEILING)
    # longest expected task first (the ceiling, ceiling_factor x the families' steps, usually), so that the
    # workers finish together instead of one idling through the last long task; results keep ``tasks``' order
    ceiling_factor = getattr(PRESETS.get(cfg.zoo.preset), "ceiling_factor", 1)
    order = sorted(range(len(tasks)), key=lambda i: -expected_cost(tasks[i].family, tasks[i].id_weight, ceiling_factor))
    outcomes: list[Any] = [None] * len(tasks)
    for i, o in zip(order, ex.map([tasks[i] for i in order], str(cache.root), "train zoo")):
        outcomes[i] = o
    out = []
    for t, o, label in zip(tasks, outcomes, labels):
        w = 0.0 if t.family == CEILING else t.id_weight   # the ceiling has no frozen twin
        out.append(ZooModel(label, t.family, o.value if o.ok else "", w, None if o.ok else o.error))
        if not o.ok:
            stats["failures"].append({"task": t.describe(), "error": o.error, "attempts": o.attempts})
    stats["train"] = {"planned": len(tasks)}
    stats["zoo"] = {"id_groups": id_dims(pool, groups)[0], "id_groups_source": source, "ceiling": cfg.zoo.ceiling,
                    "replicates": cfg.zoo.replicates,
                    "replicate_weights": None if cfg.zoo.replicate_weights is None else list(cfg.zoo.replicate_weights),
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
