"""The zoo's training data from an EpisodeStore: clip starts, frames at 64 px, action statistics, +ID dims."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from wmprobe.data.store import EpisodeStore
from wmprobe.errors import ConfigError


def clip_starts(store: EpisodeStore, episodes: Sequence[int], clip_len: int) -> np.ndarray:
    """Rows t such that t .. t+clip_len-1 lie in the same (train) episode."""
    rows = [np.arange(store.episode_starts[e], store.episode_starts[e] + store.episode_lengths[e] - clip_len + 1)
            for e in episodes]
    return np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, np.int64)


def task_names(store: EpisodeStore, episodes: Sequence[int]) -> list[str]:
    """Sorted names of the tasks of ``episodes`` (what the leakage check compares with held-out tasks)."""
    from wmprobe.data.splits import task_names_of
    names = task_names_of(store)
    return sorted({names[int(store.tasks[int(e)])] for e in episodes})


def frames(store: EpisodeStore, rows: np.ndarray, size: int = 64) -> torch.Tensor:
    """``(len(rows), 3, size, size)`` float frames in [0, 1] of store rows ``rows`` (read in row order; antialiased
    bilinear resize when the store's frames are not ``size`` px)."""
    order = np.argsort(rows, kind="stable")
    x = np.empty((len(rows), *store.frames.shape[1:]), np.uint8)
    x[order] = np.asarray(store.frames[rows[order]])
    x = torch.from_numpy(x).permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[-1] != size:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
    return x


def id_dims(store: EpisodeStore, id_groups: Sequence[str] | None = None) -> tuple[list[str], list[int], list[bool]]:
    """The +ID action dims: ``(groups, dims, state)``. ``id_groups`` None: ``translation`` when the store has
    that group (the embedded data's identifiable group), else every group. ``state[i]``: dim ``dims[i]`` is
    in a last-value group (``objectives.STATE_GROUPS``: its k-step target is the last value, not the sum)."""
    from wmprobe.zoo.objectives import STATE_GROUPS
    groups_of = {str(g): [int(d) for d in v] for g, v in store.action_groups.items()} or \
        {"action": list(range(store.action_dim))}
    if id_groups is None:
        groups = ["translation"] if "translation" in groups_of else list(groups_of)
    else:
        groups = [str(g) for g in id_groups]
        bad = [g for g in groups if g not in groups_of]
        if bad or not groups:
            raise ConfigError(f"+ID groups {bad or '[]'} are not action groups of {store.name} "
                              f"(it has {sorted(groups_of)})")
    dims = sorted({d for g in groups for d in groups_of[g]})
    state = [any(d in groups_of[g] for g in groups if g in STATE_GROUPS) for d in dims]
    return groups, dims, state


def action_stats(store: EpisodeStore, episodes: Sequence[int], clip_len: int) -> tuple[list[float], list[float]]:
    """``(mean, scale)`` per action dim over the clip starts of ``episodes``: the standardisation ``_fit``
    applies to the actions it trains on (``training``) (``(a - mean) / scale``, scale = std clamped to >= 1e-3)."""
    starts = torch.from_numpy(clip_starts(store, episodes, clip_len))
    a = torch.from_numpy(np.array(store.actions, np.float32))[starts]
    return a.mean(0).tolist(), a.std(0).clamp_min(1e-3).tolist()
