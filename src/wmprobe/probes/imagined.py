"""Probing imagined latents: ``g(z_t, z_hat_t+k)`` where ``z_hat`` is a world model's own k-step rollout.

``probe_imagined(encoder, store, split, ks, probes, seeds)`` pairs the steps of ``store`` as every probe does
(``pairs.make_pairs``: within an episode, k steps apart, target = the k actions summed, gripper last), then
replaces each pair's partner ``z_t+k`` by ``encoder.imagine(z_t, a_t .. a_t+k-1)`` (the TRUE actions of the
pair, raw units) and fits / scores the probes on the train / test episodes of ``split``. The rows carry
``latents = "imagined"``; with ``real=True`` (default) the same probes on the real ``z_t+k`` are returned
beside them with ``latents = "real"`` (the same pairs, the same seeds: the two differ only in the partner).

A world model whose predictions keep the action shows imagined R2 near the real one; one whose dynamics
ignore the action (``dynamics-actin``: its dynamics net has no action input) cannot: its imagined partner is
a function of ``z_t`` alone, so the pair carries no more action information than ``z_t`` does.

Needs the encoder's clean TOKENS at its probed layer (``(frames, N, C)``, per-frame encoders only), computed
here when ``tokens`` is not given. mlp / ridge probes read the tokens mean-pooled, as in studies.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from wmprobe.errors import ProbeError

IMAGINED, REAL = "imagined", "real"


def clean_tokens(encoder: Any, store: Any, layer: str = "out", batch: int = 64) -> np.ndarray:
    """``(frames, N, C) float32``: ``encoder``'s tokens at ``layer`` of every frame of ``store``."""
    out = []
    with torch.inference_mode():
        for s in range(0, store.n_frames, batch):
            frames = np.asarray(store.frames[s:s + batch])
            lat = encoder.encode(frames[:, None], layers=[layer]).tokens[layer][:, 0]
            out.append(torch.as_tensor(lat).float().cpu().numpy())
    return np.concatenate(out)


def imagined_partners(encoder: Any, tokens: np.ndarray, actions: np.ndarray, first: np.ndarray, k: int,
                      batch: int = 256, seed: int = 0) -> np.ndarray:
    """``(P, N, C)``: ``encoder.imagine`` from ``tokens[first]`` with the actions ``actions[first + 0..k-1]``;
    in fixed chunks of ``batch`` pairs, chunk ``c`` seeded ``seed + c`` (deterministic)."""
    out = []
    for c, s in enumerate(range(0, len(first), batch)):
        rows = first[s:s + batch]
        a = np.asarray(actions, np.float32)[rows[:, None] + np.arange(k)[None]]
        out.append(np.asarray(encoder.imagine(tokens[rows], a, seed=seed + c), np.float32))
    return np.concatenate(out) if out else np.zeros((0, *tokens.shape[1:]), np.float32)


def probe_imagined(encoder: Any, store: Any, split: Any, ks: Sequence[int] = (1,),
                   probes: Sequence[str] = ("mlp", "ridge"), seeds: Sequence[int] = (0,), *,
                   tokens: np.ndarray | None = None, layer: str = "out", real: bool = True, n_boot: int = 1000,
                   encoder_name: str | None = None, headline: Sequence[str] | None = None,
                   **probe_cfg: Any) -> list[dict[str, Any]]:
    """Record rows of the imagined (and, with ``real``, the real) probes; see the module doc. ``headline``: the
    action groups the headline r2 averages (default every group); ``probe_cfg``: the mlp probe's options."""
    from wmprobe.probes.core import evaluate
    from wmprobe.probes.spec import probe_spec
    from wmprobe.records import Source, row
    from wmprobe.probes.base import ProbeData
    from wmprobe.probes.pairs import make_pairs, tubelet_steps
    from wmprobe.zoo.imagine import can_imagine
    name = encoder_name or encoder.spec.name
    if not can_imagine(encoder):
        raise ProbeError(f"{name} has no dynamics model to imagine with (zoo families dynamics, dynamics-actin, "
                         "or a plugin encoder with an imagine(tokens_t, actions) method)")
    if getattr(encoder.spec, "frames_per_step", 1) != 1:
        raise ProbeError(f"{name}: imagined latents need a per-frame encoder (one latent step per frame)")
    for p in probes:
        if not probe_spec(p).on_imagined:
            raise ProbeError(f"probe_imagined: probe {p!r} is not mlp or ridge (the imagined probes are those two)")
    tokens = clean_tokens(encoder, store, layer) if tokens is None else np.asarray(tokens, np.float32)
    if tokens.ndim != 3 or tokens.shape[0] != store.n_frames:
        raise ProbeError(f"{name}: tokens must be (frames, N, C) = ({store.n_frames}, N, C), got {tokens.shape}")
    step_frame, step_episode = tubelet_steps(store.episode_ends, 1)
    rows: list[dict[str, Any]] = []
    for k in ks:
        pairs = make_pairs(step_frame, step_episode, store.actions, store.episode_ends, int(k),
                           store.action_groups, "sum", dataset=store.name)
        data: dict[str, dict[str, ProbeData]] = {REAL: {}, IMAGINED: {}}
        for part, eps in (("train", split.train), ("test", split.test)):
            mask = np.isin(pairs.episode, np.asarray(eps, np.int64))
            if len(np.unique(pairs.episode[mask])) < 2:
                raise ProbeError(f"{store.name}: the {part} split has pairs from fewer than 2 episodes at k={k}")
            i, j = step_frame[pairs.i[mask]], step_frame[pairs.j[mask]]
            z_t = tokens[i].mean(1)
            z_hat = imagined_partners(encoder, tokens, store.actions, i, int(k)).mean(1)
            y, ep = pairs.y[mask], pairs.episode[mask]
            data[IMAGINED][part] = ProbeData(z_t, z_hat, y, ep, f"{store.name} {part} (imagined)")
            data[REAL][part] = ProbeData(z_t, tokens[j].mean(1), y, ep, f"{store.name} {part}")
        for latents in ((REAL, IMAGINED) if real else (IMAGINED,)):
            for p in probes:
                cfg = probe_spec(p).study_options(probe_cfg)
                for r in evaluate(p, data[latents]["train"], data[latents]["test"], pairs.target_groups,
                                  seeds=seeds, n_boot=n_boot, headline=headline, **cfg):
                    src = Source(name, encoder.spec.family, store.name, split.kind,
                                 dataset_fingerprint=store.fingerprint)
                    rows.append(row(src, r, corruption="clean", layer=layer, k=int(k), latents=latents))
    return rows
