"""`wmprobe run --dry-run`: a study's work estimated from its config alone (no data generated, no model
loaded) and printed as a table of tasks, frames, probe cells and fits per dataset."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from wmprobe.probes.spec import probe_spec
from wmprobe.study.task_types import IMAGINING_FAMILIES


def estimate(cfg: Any) -> dict[str, Any]:
    """Work of a study from its config alone (no data generated, no model loaded)."""
    from wmprobe.data.store import EpisodeStore
    # training-seed replicates: each is its own encoder (only the `replicate_weights` models get them)
    per_family = sum(cfg.zoo.replicates_of(w)
                     for w, _ in {(w, o if w else "l1") for w in cfg.zoo.id_weights for o in cfg.zoo.all_objectives})
    zoo_models = len(cfg.zoo.families) * per_family + int(bool(cfg.zoo.families) and cfg.zoo.ceiling)
    encoders = len(cfg.encoders) + zoo_models
    world_models = len([f for f in cfg.zoo.families if f in IMAGINING_FAMILIES]) * per_family   # imagined cells
    specs = [probe_spec(p) for p in cfg.probes]
    imagined = [s for s in specs if s.on_imagined]
    rows = []
    for d in cfg.datasets:
        if d.path:
            st = EpisodeStore.load(d.path, allow_symlinks_out=d.allow_symlinks_out)
            n_eps, n_frames = st.n_episodes, st.n_frames
        else:
            from wmprobe.data.sim import DEFAULT_STEPS
            from wmprobe.data.sim.metaworld import DEFAULT_STEPS as METAWORLD_STEPS
            default = METAWORLD_STEPS if d.sim == "metaworld" else DEFAULT_STEPS
            n_eps, n_frames = d.episodes, d.episodes * (d.steps or default)   # one frame per control step
        corr = cfg.corruptions if cfg.corrupt_datasets is None or d.name in cfg.corrupt_datasets else ("clean",)
        n_corr = len([c for c in corr if c != "clean"])
        test_frac = cfg.test_frac
        n_shards = -(-n_eps // cfg.shard_episodes)
        n_test_shards = -(-max(1, round(n_eps * test_frac)) // cfg.shard_episodes)
        layers = len(cfg.layers) if cfg.layers else 1
        n_ctrl = len([s for s in specs if s.is_control])
        cells = encoders * layers * len(cfg.ks) * (len(corr) * (len(cfg.probes) - n_ctrl) + n_ctrl)
        fits = sum(len(s.fit_seeds(cfg.seeds)) for s in specs)  # one fit scores every corruption
        n_aug = n_corr if cfg.corrupt_train else 0   # probe-train corruption: train shards + fits per corruption
        n_train_shards = -(-max(0, n_eps - max(1, round(n_eps * test_frac))) // cfg.shard_episodes)
        aug_fits = sum(len(s.fit_seeds(cfg.seeds)) for s in specs if not s.is_control)
        # the state ceiling: stores with states.npy, and the pybullet suites (Meta-World stores have none)
        has_states = (Path(d.path) / "states.npy").is_file() if d.path else d.sim != "metaworld"
        rows.append({"dataset": d.name, "episodes": n_eps, "frames": n_frames,
                     "state_cells": len(cfg.ks) * len([s for s in specs if s.on_states]) * has_states,
                     "extract_tasks": encoders * (n_shards + n_corr * n_test_shards + n_aug * n_train_shards),
                     "frames_encoded": encoders * int(n_frames * (1 + n_corr * test_frac + n_aug * (1 - test_frac))),
                     "probe_cells": cells + encoders * layers * len(cfg.ks) * n_aug * (len(cfg.probes) - n_ctrl)
                     + world_models * layers * len(cfg.ks) * len(imagined),
                     "probe_fits": encoders * layers * len(cfg.ks) * (fits + n_aug * aug_fits)
                     + world_models * layers * len(cfg.ks) * sum(len(s.fit_seeds(cfg.seeds)) for s in imagined),
                     "fidelity_tasks": encoders if cfg.fidelity and (cfg.fidelity_datasets is None
                                                                     or d.name in cfg.fidelity_datasets) else 0})
    return {"encoders": encoders, "zoo_models": zoo_models, "datasets": rows}


def _replicates_text(zoo: Any) -> str:
    """``x 2 training seeds (id_weight [0.0] only) `` for a zoo with replicates, else ``""``."""
    if zoo.replicates <= 1:
        return ""
    only = f"(id_weight {list(zoo.replicate_weights)} only) " if zoo.replicate_weights is not None else ""
    return f"x {zoo.replicates} training seeds {only}"


def describe_study(src: str | os.PathLike | dict, cache: str | os.PathLike | None = None,
                   overrides: Sequence[str] = ()) -> str:
    """The plan of a study config (with dotted ``overrides``) as text: what runs, how much, where results and
    cache go."""
    from wmprobe.study.cache import default_cache_dir
    from wmprobe.study.config import load_config
    cfg = load_config(src, overrides)
    est = estimate(cfg)
    lines = [f"study '{cfg.name}'" + (f" (preset {cfg.preset})" if cfg.preset else ""),
             f"  encoders: {', '.join(e.shown for e in cfg.encoders) or '-'}"
             + (f"; zoo {', '.join(cfg.zoo.families)} x id_weight {list(cfg.zoo.id_weights)}"
                + (f" x objectives {list(cfg.zoo.all_objectives)} " if cfg.zoo.objectives else " ")
                + _replicates_text(cfg.zoo)
                +
                f"({est['zoo_models']} models{' incl. the ceiling' if cfg.zoo.ceiling else ''}, "
                f"zoo preset {cfg.zoo.preset})" if cfg.zoo.families else ""),
             f"  split {cfg.split}; corruptions {', '.join(cfg.corruptions)}; probes {', '.join(cfg.probes)}; "
             f"k {list(cfg.ks)}; seeds {list(cfg.seeds)}; fidelity {'on' if cfg.fidelity else 'off'}"
             + ("; probes also fit on corrupted train latents (corrupt_train)" if cfg.corrupt_train else ""),
             "  headline groups: " + (str(cfg.headline_groups) if cfg.headline_groups is not None else
                                      "chosen per dataset by the action-space audit at run time"),
             f"  executor {cfg.executor.kind} (max_retries {cfg.executor.max_retries}); "
             f"cache {default_cache_dir(cache)}"]
    tot = {"extract_tasks": 0, "frames_encoded": 0, "probe_cells": 0, "probe_fits": 0, "fidelity_tasks": 0,
           "state_cells": 0}
    cols = [("dataset", "dataset"), ("episodes", "episodes"), ("frames", "frames"), ("extract tasks", "extract_tasks"),
            ("frames encoded", "frames_encoded"), ("probe cells", "probe_cells"), ("probe fits", "probe_fits"),
            ("decoder probes", "fidelity_tasks"), ("state-ceiling cells", "state_cells")]
    table = [[str(r[k]) for _, k in cols] for r in est["datasets"]]
    for r in est["datasets"]:
        for k in tot:
            tot[k] += r[k]
    table.append(["total", "", "", *(str(tot[k]) for _, k in cols[3:])])
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, (h, _) in enumerate(cols)]
    lines.append("  " + "  ".join(h.rjust(w) if i else h.ljust(w) for i, ((h, _), w) in enumerate(zip(cols, widths))))
    for row in table:
        lines.append("  " + "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(row, widths))))
    lines.append("  (tasks already in the cache are skipped)")
    return "\n".join(lines)
