"""Features + store -> paired probe data: ``build_probe_data`` (used by the pipeline, the API and the audit).

``build_probe_data(features, step_frame, step_episode, store, split, k)`` pairs steps within episodes
(``pairs.make_pairs``) and cuts the pairs into train / test by the split's episodes.
"""
from __future__ import annotations

import numpy as np

from wmprobe.data.splits import Split
from wmprobe.data.store import EpisodeStore
from wmprobe.errors import ProbeError
from wmprobe.probes.base import ProbeData
from wmprobe.probes.pairs import make_pairs


def _check_features(features: np.ndarray, step_episode: np.ndarray, name: str, what: str = "latents") -> None:
    """``features: (S, D) | (S, N, D)`` finite, one row per step of ``step_episode: (S,)``; ``what`` names them."""
    if features.ndim not in (2, 3):
        raise ProbeError(f"{name}: {what} must be (S, D) pooled or (S, N, D) tokens, got {features.shape}")
    if 0 in features.shape[1:]:
        raise ProbeError(f"{name}: {what} have shape {tuple(features.shape)}: every row needs at least one "
                         "feature (and one token)")
    if features.shape[0] != step_episode.shape[0]:
        raise ProbeError(f"{name}: {features.shape[0]} rows of {what} but {step_episode.shape[0]} latent steps")
    for c in range(0, features.shape[0], 65536):
        block = np.asarray(features[c : c + 65536]).reshape(min(65536, features.shape[0] - c), -1)
        bad = ~np.isfinite(block).all(1)
        if bad.any():
            eps = np.unique(step_episode[c : c + 65536][bad])[:10].tolist()
            raise ProbeError(f"{name}: NaN or inf {what} in episode(s) {eps}")


def build_probe_data(features: np.ndarray, step_frame: np.ndarray, step_episode: np.ndarray,
                     store: EpisodeStore, split: Split, k: int = 1, *, agg: str = "sum", shuffle: bool = False,
                     single: bool = False, seed: int = 0,
                     what: str = "latents") -> tuple[ProbeData, ProbeData, dict[str, list[int]]]:
    """``(train, test, target_groups)`` for ``features: (S, D) | (S, N, D)`` of the steps ``step_frame``.

    ``shuffle`` / ``single`` apply the controls here already (``evaluate`` can also apply them by name);
    ``what`` names the features in error messages (e.g. ``"latents (Z.npy)"``)."""
    from wmprobe.probes.core import shuffle_partners, single_frame_data
    name = store.name
    features = np.asarray(features)
    step_frame, step_episode = np.asarray(step_frame, np.int64), np.asarray(step_episode, np.int64)
    _check_features(features, step_episode, name, what)
    pairs = make_pairs(step_frame, step_episode, store.actions, store.episode_ends, k, store.action_groups,
                       agg, dataset=name)
    out = []
    for part, eps in (("train", split.train), ("test", split.test)):
        mask = np.isin(pairs.episode, np.asarray(eps, np.int64))
        n_eps = len(np.unique(pairs.episode[mask]))
        if n_eps < 2:
            raise ProbeError(f"{name}: the {part} split has pairs from {n_eps} episode(s) at k={k}; a probe needs "
                             ">= 2 (more episodes, or a smaller k)")
        pi, pj = pairs.i[mask], pairs.j[mask]
        d = ProbeData(features[pi], features[pj], pairs.y[mask], pairs.episode[mask], f"{name} {part}")
        if shuffle:
            d = shuffle_partners(d, seed + (part == "test"))
        if single:
            d = single_frame_data(d)
        out.append(d)
    return out[0], out[1], pairs.target_groups
