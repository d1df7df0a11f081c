"""Zoo training: ``train`` (one checkpoint per recipe, reused), the one training loop ``_fit``, ``plateau``,
``lambda_sweep``.

Every family uses the same CoordConv trunk at the preset's width, the same data (clips of consecutive frames
of the training episodes, the same number of FRAMES per step) and the same schedule (AdamW, warm-up then
cosine); only the pretraining signal differs (docs/zoo.md).
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from filelock import FileLock

from wmprobe._fs import mark_used
from wmprobe._hashing import json_hash
from wmprobe._progress import progress_bar
from wmprobe._threads import torch_threads
from wmprobe.data.store import EpisodeStore
from wmprobe.errors import ConfigError, EncoderError
from wmprobe.zoo.checkpoint import CODE_VERSION, default_cache_dir, intact, save
from wmprobe.zoo.data import action_stats, clip_starts, frames, id_dims, task_names
from wmprobe.zoo.families import CEILING, build, model_class
from wmprobe.zoo.families import family as family_of
from wmprobe.zoo.objectives import LAMBDA_SWEEP, OBJECTIVES, aux_loss, make_head
from wmprobe.zoo.presets import PRESETS, Preset


def train(family: str, store: EpisodeStore, *, train_episodes: Sequence[int], preset: str = "demo",
          id_weight: float = 0.0, objective: str = "l1", seed: int = 0, cache_dir: str | os.PathLike | None = None,
          forbid_episodes: Sequence[int] | None = None, progress: bool = True, device: str = "cpu",
          bf16: bool = False, threads: int | None = None, overrides: dict[str, Any] | None = None,
          id_groups: Sequence[str] | None = None) -> Path:
    """Train (or reuse) one zoo model on ``train_episodes`` of ``store``; returns its checkpoint directory.

    ``family``: one of ``FAMILIES``, or ``"ceiling"`` (the trunk trained by +ID alone for the preset's
    ``ceiling_factor`` x ``steps``; ``id_weight`` is then 1 and ``objective`` l1 or l2). ``forbid_episodes``:
    the probe's test episodes (and, for task-OOD, every episode of its held-out tasks); any overlap with
    ``train_episodes`` is refused. ``id_groups``: the action groups +ID trains on (``id_dims``; default
    translation). ``bf16``: autocast the forward pass to bfloat16 (CPU or CUDA). ``threads``: torch CPU threads
    while training (restored after). ``overrides``: preset fields to change (e.g. ``{"steps": 200}``);
    the recipe records the resulting values."""
    fam = family_of(family)   # ConfigError for an unknown family
    if family == CEILING:
        if objective not in ("l1", "l2"):
            raise ConfigError(f"the zoo ceiling is trained by inverse dynamics (objective l1 or l2), not '{objective}'")
        id_weight = 1.0
    if preset not in PRESETS:
        raise ConfigError(f"unknown zoo preset '{preset}': choose one of {sorted(PRESETS)}")
    if objective not in OBJECTIVES:
        raise ConfigError(f"unknown +ID objective '{objective}': choose one of {sorted(OBJECTIVES)}")
    train_episodes = sorted(int(e) for e in train_episodes)
    overlap = sorted(set(train_episodes) & set(int(e) for e in (forbid_episodes or ())))
    if overlap:
        raise ConfigError(f"zoo training data overlaps the probe's test episodes {overlap[:10]}: pretraining "
                          "must never see test episodes")
    cfg = PRESETS[preset]
    if overrides:
        unknown = sorted(set(overrides) - set(asdict(cfg)))
        if unknown:
            raise ConfigError(f"unknown zoo preset field(s) {unknown}: choose from {sorted(asdict(cfg))}")
        cfg = replace(cfg, **overrides)
    if family == CEILING:   # the reference trains ceiling_factor x the families' steps (docs/zoo.md "The ceiling")
        cfg = replace(cfg, steps=cfg.steps * cfg.ceiling_factor)
    schedule = {k: v for k, v in asdict(cfg).items() if k != "ceiling_factor"}   # in steps (the ceiling's own)
    groups, dims, state = id_dims(store, id_groups)
    recipe = {"family": family, "preset": preset, **schedule, "id_weight": float(id_weight),
              "objective": objective, "id_groups": groups if id_weight > 0 else None,
              "clip_len": model_class(family).clip_len, "seed": int(seed), "data": store.fingerprint,
              "train_episodes": json_hash(train_episodes, 12),
              "train_tasks": task_names(store, train_episodes),
              "bf16": bool(bf16), "code_version": CODE_VERSION}
    key = json_hash(recipe, 12)
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    suffix = f"-{objective}" if objective != "l1" and id_weight else ""
    dest = root / f"{family}-{preset}-id{id_weight:g}{suffix}-{key}"
    root.mkdir(parents=True, exist_ok=True)
    # one trainer per checkpoint across processes: a second process waits, then reuses what the first saved
    with FileLock(str(root / f"{dest.name}.lock")):
        if intact(dest):   # a corrupt checkpoint (truncated, bit flips, garbage recipe) is retrained
            mark_used(dest)
            return dest
        with torch_threads(threads):
            model, head, curves, seconds, clips = _fit(family, store, train_episodes, cfg, float(id_weight),
                                                       objective, seed, progress, device, bf16, dims, state)
        curve = curves["loss"]
        from wmprobe.data.splits import episode_hashes
        meta = {"recipe": recipe, "key": key, "action_dim": store.action_dim,
                "train_episode_hashes": episode_hashes(store, train_episodes),
                "params": sum(p.numel() for p in model.parameters()),
                "trunk_params": sum(p.numel() for p in model.trunk.parameters()),
                "head_params": sum(p.numel() for p in head.parameters()) if id_weight > 0 else 0,
                "clip_len": model.clip_len, "clips_per_step": clips,
                "probe_input": getattr(model, "probe_input", ""), "seconds": round(seconds, 2),
                "id_dims": dims if id_weight > 0 else [],
                "loss_curve": curve[:: max(1, len(curve) // 100)], "final_loss": float(np.mean(curve[-20:])),
                "plateau": plateau(curve)}
        if fam.dynamics:   # the dynamics net was trained on these standardised actions (imagine)
            meta["action_mean"], meta["action_scale"] = action_stats(store, train_episodes, model.clip_len)
        if curves.get("id"):
            meta["id_curve"] = curves["id"][:: max(1, len(curves["id"]) // 100)]
            meta["id_scale"] = curves["scale"][:: max(1, len(curves["scale"]) // 100)]
            meta["id_plateau"] = plateau(curves["id"])
        save(dest, model, meta)
    return dest


PLATEAU_TAIL, PLATEAU_SHARE = 0.2, 0.1


def plateau(curve: Sequence[float], tail: float = PLATEAU_TAIL, share: float = PLATEAU_SHARE) -> dict[str, Any]:
    """Did a loss curve plateau? ``m(f)``: the mean loss over the 10 % of steps ending at fraction ``f`` of
    training. ``tail_share = (m(1 - tail) - m(1)) / (m(0.1) - m(1))``: the share of the whole improvement
    made in the last ``tail`` of the steps (negative when the loss rose there); plateaued when its size is
    below ``share`` (10 %) and the loss fell at all. (The schedule anneals the learning rate, so a curve that
    still falls steeply at its end is a budget that stopped too early; one that climbs back in its last steps
    (``trend`` rising: e.g. a latent-prediction loss whose EMA target drifts) has not converged either; a flat
    end after a real drop is convergence at this budget.)"""
    c = np.asarray(curve, np.float64)
    n = len(c)
    w = max(1, n // 10)

    def m(f: float) -> float:
        end = max(w, int(round(f * n)))
        return float(np.mean(c[end - w: end]))
    drop = m(0.1) - m(1.0)
    tail_share = (m(1.0 - tail) - m(1.0)) / drop if drop > 0 else float("inf")
    flat = drop > 0 and abs(tail_share) < share
    trend = "flat" if flat else ("rising" if drop > 0 and tail_share < 0 else "falling" if drop > 0 else "no drop")
    return {"tail_share": round(tail_share, 4), "plateaued": bool(flat), "trend": trend}


BALANCE_MOMENTUM = 0.9   # running means of the family loss and the +ID term (their ratio scales +ID)


def _fit(family: str, store: EpisodeStore, train_episodes: Sequence[int], cfg: Preset, id_weight: float,
         objective: str, seed: int, progress: bool, device: str, bf16: bool, dims: Sequence[int],
         state: Sequence[bool]) -> tuple[Any, Any, dict[str, list[float]], float, int]:
    """The one training loop. Returns ``(model, head, curves, seconds, clips_per_step)``; ``curves``:
    ``loss`` (the family loss per step; the +ID loss for the ceiling), ``id`` (the +ID loss) and ``scale``
    (the +ID term's weight relative to its raw value: ``id_weight * mean(family) / mean(+ID)``)."""
    torch.manual_seed(seed)
    gen = np.random.default_rng(seed)
    model = build(family, cfg.width, store.action_dim).to(device)
    own = getattr(model, "own_loss", True)
    head = make_head(objective, cfg.width, len(dims)).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    params += list(head.parameters()) if id_weight > 0 else []
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-4)
    L = model.clip_len
    starts = clip_starts(store, train_episodes, L)
    if not len(starts):
        raise ConfigError(f"zoo {family}: no training episode has the {L} consecutive frames a sample needs")
    n_clips = max(2, (2 * cfg.batch_size) // L)       # the same clips (and frames) per step for every family
    actions = torch.from_numpy(np.array(store.actions, np.float32))  # a copy: stores are memory-mapped
    act_scale = actions[torch.from_numpy(starts)].std(0).clamp_min(1e-3)
    act_mean = actions[torch.from_numpy(starts)].mean(0)
    # +ID targets: actions / std on the +ID dims; state (last-value) dims also centred (objectives doc)
    d_idx = torch.tensor(dims, dtype=torch.long)
    is_state = torch.tensor(state, dtype=torch.bool)
    id_shift = torch.where(is_state, act_mean[d_idx], torch.zeros(len(dims)))
    curves: dict[str, list[float]] = {"loss": [], "id": [], "scale": []}
    ema_f = ema_a = None
    t0 = time.perf_counter()
    bar = progress_bar(cfg.steps, f"zoo {family}{' +ID' if id_weight and own else ''}", progress)
    dev_type = torch.device(device).type
    model.train()
    for step in range(cfg.steps):
        lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup) * 0.5 * (1 + np.cos(np.pi * step / cfg.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        b = starts[gen.integers(0, len(starts), n_clips)]
        idx = torch.from_numpy(b[:, None] + np.arange(L)[None])
        x = frames(store, idx.numpy().ravel()).reshape(n_clips, L, 3, 64, 64).to(device)
        raw = actions[idx]
        a = ((raw - act_mean) / act_scale).clamp(-10, 10).to(device)
        with torch.autocast(dev_type, dtype=torch.bfloat16, enabled=bf16):
            loss, z = model.loss(x, a) if own else (None, None)
            aux = None
            if id_weight > 0:
                if z is None:
                    z = model.latents(x.reshape(n_clips * L, 3, 64, 64))
                    z = z.reshape(n_clips, L, *z.shape[1:])
                a_id = ((raw[..., d_idx] - id_shift) / act_scale[d_idx]).clamp(-10, 10).to(device)
                aux = aux_loss(objective, head, z.float(), a_id, is_state)
        if not own:
            total, loss, scale = aux, aux, 1.0
        elif aux is not None:
            assert loss is not None                                  # own: the family's loss is computed
            # balance: the +ID term's running mean is id_weight x the family loss's running mean, for every
            # family (their own losses differ by orders of magnitude; a raw weight would favour some)
            lf, la = float(loss.detach()), float(aux.detach())
            ema_f = lf if ema_f is None else BALANCE_MOMENTUM * ema_f + (1 - BALANCE_MOMENTUM) * lf
            ema_a = la if ema_a is None else BALANCE_MOMENTUM * ema_a + (1 - BALANCE_MOMENTUM) * la
            scale = id_weight * ema_f / max(ema_a, 1e-12)
            total = loss + scale * aux
        else:
            total = loss
        if total is None or loss is None:                            # the ceiling without +ID: nothing to train
            raise ConfigError(f"zoo {family}: no loss to train (id_weight {id_weight:g} for a family without its own)")
        opt.zero_grad(set_to_none=True)
        total.float().backward()
        opt.step()
        model.after_step(step, cfg.steps)
        curves["loss"].append(float(loss.detach()))
        if aux is not None and own:
            curves["id"].append(float(aux.detach()))
            curves["scale"].append(float(scale))
        if not np.isfinite(curves["loss"][-1]) or curves["loss"][-1] > 1e6:
            raise EncoderError(f"zoo {family}: the loss diverged at step {step} (lr {lr:.2g})")
        bar.update(1)
        bar.set_postfix(loss=f"{curves['loss'][-1]:.4f}")
    bar.close()
    model.eval()
    return model, head, curves, time.perf_counter() - t0, n_clips


def lambda_sweep(family: str, store: Any, *, train_episodes: Sequence[int],
                 lambdas: Sequence[float] = LAMBDA_SWEEP, objective: str = "l1", include_frozen: bool = True,
                 **train_kw: Any) -> dict[float, Path]:
    """``{id_weight: checkpoint}`` for ``family`` at every weight in ``lambdas`` (and 0: the frozen twin).

    Everything else (preset, seed, data, forbid_episodes, cache_dir) is passed to ``train`` unchanged, so the
    runs differ only in the weight; checkpoints already trained are reused."""
    weights = ([0.0] if include_frozen else []) + [float(w) for w in lambdas]
    return {w: train(family, store, train_episodes=train_episodes, id_weight=w, objective=objective,
                     **train_kw) for w in weights}
