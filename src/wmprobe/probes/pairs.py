"""k-step pairing: which latent steps are probed together and what action target they get.

Alignment rule (docs/protocol.md, "Pairing"): latent step ``s`` covers frames starting at the global store
row ``step_frame[s]``; the pair ``(s, s')`` has ``s'`` the k-th next step of the SAME episode (steps ordered
by frame). Its target is the actions ``a[step_frame[s] : step_frame[s']]`` (the actions that move the first
frame of step s to the first frame of step s'), aggregated:

- ``agg="sum"``: translation and rotation dims (and dims in no group) summed, gripper = last value;
- ``agg="concat"``: the actions concatenated step-major, ``(L * A,)`` (needs one L for every pair).

Per-frame encoders (one step per frame) get ``L = k`` actions; tubelet encoders with 2 frames per step get
``L = 2k``. Pairs never cross an episode: an episode with k or fewer latent steps gives none (a warning names
the dataset and those episodes; ``Pairs.skipped_episodes`` lists them), and a k that leaves no pair at all is
a ProbeError naming the longest episode.

Shapes: ``step_frame, step_episode: (S,) int64``; ``actions: (N, A) float32``; ``episode_ends: (E,)``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np

from wmprobe.errors import ProbeError

AGGS = ("sum", "concat")


@dataclass
class Pairs:
    """``i, j: (P,) int64`` step indices (j is k steps after i), ``y: (P, A') float32``, ``episode: (P,)``;
    ``skipped_episodes: (E',) int64`` the episodes with latent steps but too few (<= k) for a pair."""

    i: np.ndarray
    j: np.ndarray
    y: np.ndarray
    episode: np.ndarray
    target_groups: dict[str, list[int]] = field(default_factory=dict)
    k: int = 1
    agg: str = "sum"
    skipped_episodes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self) -> int:
        return int(self.i.shape[0])

    def select(self, mask: np.ndarray) -> "Pairs":
        return replace(self, i=self.i[mask], j=self.j[mask], y=self.y[mask], episode=self.episode[mask])


def make_pairs(step_frame: np.ndarray, step_episode: np.ndarray, actions: np.ndarray, episode_ends: np.ndarray,
               k: int, action_groups: Mapping[str, Sequence[int]], agg: str = "sum", *,
               dataset: str = "dataset") -> Pairs:
    """All within-episode pairs ``(s, s + k steps)`` with their aggregated action targets (see module doc)."""
    step_frame = np.asarray(step_frame, dtype=np.int64)
    step_episode = np.asarray(step_episode, dtype=np.int64)
    episode_ends = np.asarray(episode_ends, dtype=np.int64)
    if agg not in AGGS:
        raise ProbeError(f"{dataset}: unknown target aggregation {agg!r}; choose one of {AGGS}")
    if int(k) != k or k < 1:
        raise ProbeError(f"{dataset}: k must be a positive integer, got {k!r}")
    k = int(k)
    if step_frame.ndim != 1 or step_frame.shape != step_episode.shape:
        raise ProbeError(f"{dataset}: step_frame {step_frame.shape} and step_episode {step_episode.shape} "
                         "must be 1-D arrays of one length (one entry per latent step)")
    if actions.ndim != 2:
        raise ProbeError(f"{dataset}: actions must be (N, A), got shape {actions.shape}")
    n = actions.shape[0]
    if len(episode_ends) == 0 or int(episode_ends[-1]) != n:
        raise ProbeError(f"{dataset}: episode_ends must end at the number of action rows ({n})")
    if len(step_frame) and (step_frame.min() < 0 or step_frame.max() >= n):
        raise ProbeError(f"{dataset}: step_frame indexes rows outside 0..{n - 1}")
    starts = np.concatenate([[0], episode_ends[:-1]])
    frame_ep = np.searchsorted(episode_ends, step_frame, side="right")
    wrong = np.nonzero(frame_ep != step_episode)[0]
    if len(wrong):
        s = int(wrong[0])
        raise ProbeError(f"{dataset}: latent step {s} says episode {int(step_episode[s])} but its frame row "
                         f"{int(step_frame[s])} lies in episode {int(frame_ep[s])}: features and store do not align")

    skipped = episodes_too_short(step_episode, k, dataset)
    order = np.lexsort((step_frame, step_episode))
    ep_sorted = step_episode[order]
    same = ep_sorted[k:] == ep_sorted[:-k]
    i, j = order[:-k][same], order[k:][same]
    fi, fj = step_frame[i], step_frame[j]
    ep = step_episode[i]
    used = np.unique(ep)
    bad = [int(e) for e in used if not np.isfinite(np.asarray(actions[starts[e]:episode_ends[e]])).all()]
    if bad:
        raise ProbeError(f"{dataset}: NaN or inf actions in episode(s) {bad[:10]}")

    a = np.asarray(actions, dtype=np.float64)
    groups = {g: [int(d) for d in idx] for g, idx in action_groups.items()}
    if agg == "sum":
        cs = np.concatenate([np.zeros((1, a.shape[1])), np.cumsum(a, axis=0)])
        y = cs[fj] - cs[fi]
        for d in groups.get("gripper", []):
            y[:, d] = a[fj - 1, d]
        target_groups = groups
    else:
        lengths = np.unique(fj - fi)
        if len(lengths) != 1:
            raise ProbeError(f"{dataset}: agg='concat' needs the same number of actions in every pair, got "
                             f"{lengths.tolist()} (irregular step frames); use agg='sum'")
        L, A = int(lengths[0]), a.shape[1]
        y = a[fi[:, None] + np.arange(L)[None, :]].reshape(len(fi), L * A)
        target_groups = {g: [r * A + d for r in range(L) for d in idx] for g, idx in groups.items()}
    return Pairs(i.astype(np.int64), j.astype(np.int64), y.astype(np.float32), ep.astype(np.int64),
                 target_groups, k, agg, skipped)


def episodes_too_short(step_episode: np.ndarray, k: int, dataset: str = "dataset") -> np.ndarray:
    """``(E',) int64``: the episodes of ``step_episode: (S,)`` with k or fewer steps (no k-step pair), with a
    warning naming them; ProbeError naming the longest episode when no episode is long enough."""
    eps, counts = np.unique(np.asarray(step_episode, np.int64), return_counts=True)
    if len(eps) == 0:
        raise ProbeError(f"{dataset}: there are no latent steps to pair")
    if counts.max() <= k:
        longest, n = int(eps[np.argmax(counts)]), int(counts.max())
        hint = f"use k <= {n - 1}" if n > 1 else "no pair can be formed from single-step episodes"
        raise ProbeError(f"{dataset}: k={k} is longer than every episode: the longest, episode {longest}, has {n} "
                         f"latent steps and a pair needs k + 1 = {k + 1}; {hint}")
    short = eps[counts <= k]
    if len(short):
        more = ", ..." if len(short) > 5 else ""
        warnings.warn(f"{dataset}: k={k} is longer than {len(short)} of {len(eps)} episodes (k or fewer latent "
                      f"steps, no pair), e.g. episode(s) {short[:5].tolist()}{more}; they are left out of the "
                      "probe", stacklevel=3)
    return short.astype(np.int64)


def other_episode_perm(episode: np.ndarray, rng: np.random.Generator, *, what: str = "pairs") -> np.ndarray:
    """``(P,)`` indices ``q`` with ``episode[q[p]] != episode[p]`` for every p (random, from ``rng``)."""
    episode = np.asarray(episode)
    if len(np.unique(episode)) < 2:
        raise ProbeError(f"{what}: the shuffled control needs pairs from >= 2 episodes, got "
                         f"{len(np.unique(episode))}")
    q = rng.permutation(len(episode))
    for _ in range(1000):
        bad = np.nonzero(episode[q] == episode)[0]
        if len(bad) == 0:
            return q
        q[bad] = rng.integers(0, len(episode), size=len(bad))
    raise ProbeError(f"{what}: could not draw partners from other episodes (one episode dominates)")


def shuffled_pairs(pairs: Pairs, step_episode: np.ndarray, rng: np.random.Generator) -> Pairs:
    """Control: keep step i and its target, take the partner step j from a pair of a DIFFERENT episode."""
    step_episode = np.asarray(step_episode)
    q = other_episode_perm(pairs.episode, rng)
    j = pairs.j[q]
    assert (step_episode[j] != step_episode[pairs.i]).all()
    return replace(pairs, j=j)


def single_frame(z: np.ndarray, pairs: Pairs) -> tuple[np.ndarray, None]:
    """Control input: only ``f(o_t)`` of each pair, ``(P, ...)``, no partner step."""
    return np.asarray(z[pairs.i]), None


def tubelet_steps(episode_ends: np.ndarray, frames_per_step: int) -> tuple[np.ndarray, np.ndarray]:
    """``(step_frame, step_episode)`` for latents with one row per ``frames_per_step`` frames of each episode.

    Episode e of length L gets ``L // frames_per_step`` steps starting at its rows ``start + f * i``; frames
    left over at an episode's end get no step (as in extraction).
    """
    f = int(frames_per_step)
    if f < 1:
        raise ProbeError(f"frames_per_step must be >= 1, got {frames_per_step}")
    ends = np.asarray(episode_ends, dtype=np.int64)
    starts = np.concatenate([[0], ends[:-1]])
    n_steps = (ends - starts) // f
    ep = np.repeat(np.arange(len(ends), dtype=np.int64), n_steps)
    offs = np.arange(int(n_steps.sum())) - np.repeat(np.cumsum(n_steps) - n_steps, n_steps)
    return (np.repeat(starts, n_steps) + f * offs).astype(np.int64), ep
