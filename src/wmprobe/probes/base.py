"""The probe contract and the pieces every probe shares: data, normalisation, validation split, inputs.

``ProbeData``: ``z_t: (P, D)`` pooled or ``(P, N, D)`` tokens, ``z_tk`` the same shape or ``None`` (the
single-frame control), ``y: (P, A) float32``, ``episode: (P,) int64``.

A ``Probe`` fits on train data only (normalisation statistics, hyper-parameter selection on a validation
part of TRAIN episodes) and predicts ``(S, P, A)``, one prediction per seed (ridge: S = 1).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from wmprobe.errors import ProbeError

EPS = 1e-8


@dataclass
class ProbeData:
    """Paired features and targets: ``z_t, z_tk: (P, D) | (P, N, D)``, ``y: (P, A)``, ``episode: (P,)``."""

    z_t: np.ndarray
    z_tk: np.ndarray | None
    y: np.ndarray
    episode: np.ndarray
    name: str = "data"

    def __post_init__(self) -> None:
        self.z_t = np.asarray(self.z_t, dtype=np.float32)
        self.z_tk = None if self.z_tk is None else np.asarray(self.z_tk, dtype=np.float32)
        self.y = np.asarray(self.y, dtype=np.float32)
        if self.y.ndim == 1:
            self.y = self.y[:, None]
        self.episode = np.asarray(self.episode, dtype=np.int64)
        n = self.z_t.shape[0]
        if self.z_t.ndim not in (2, 3):
            raise ProbeError(f"{self.name}: features must be (P, D) or (P, N, D), got {self.z_t.shape}")
        if self.z_tk is not None and self.z_tk.shape != self.z_t.shape:
            raise ProbeError(f"{self.name}: z_t {self.z_t.shape} and z_tk {self.z_tk.shape} differ in shape")
        if self.y.shape[0] != n or self.episode.shape != (n,):
            raise ProbeError(f"{self.name}: {n} feature rows but {self.y.shape[0]} targets and "
                             f"{self.episode.shape[0]} episode ids")
        for what, arr in (("features", self.z_t), ("features", self.z_tk), ("targets", self.y)):
            if arr is None:
                continue
            bad = ~np.isfinite(arr.reshape(n, -1)).all(1)
            if bad.any():
                raise ProbeError(f"{self.name}: NaN or inf {what} in episode(s) "
                                 f"{np.unique(self.episode[bad])[:10].tolist()}")

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def is_tokens(self) -> bool:
        return self.z_t.ndim == 3

    @property
    def n_episodes(self) -> int:
        return int(len(np.unique(self.episode)))

    def select(self, mask: np.ndarray) -> "ProbeData":
        return ProbeData(self.z_t[mask], None if self.z_tk is None else self.z_tk[mask], self.y[mask],
                         self.episode[mask], self.name)

    def pooled(self) -> "ProbeData":
        """Mean over tokens: ``(P, N, D) -> (P, D)`` (a no-op for pooled data)."""
        if not self.is_tokens:
            return self
        return ProbeData(self.z_t.mean(1), None if self.z_tk is None else self.z_tk.mean(1), self.y,
                         self.episode, self.name)


@runtime_checkable
class Probe(Protocol):
    seeds: list[int]

    def fit(self, train: ProbeData) -> "Probe": ...

    def predict(self, data: ProbeData) -> np.ndarray: ...

    def config(self) -> dict[str, Any]: ...


SHRINK = 0.1


@dataclass
class Standardizer:
    """Per-dim ``(x - mean) / std`` with train statistics; ``std^2 = var + SHRINK * mean(var)`` (variance
    shrunk toward the average dim), constant dims get std 1 (so they map to 0)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, axis: tuple[int, ...] = (0,)) -> "Standardizer":
        x = np.asarray(x)
        if x.dtype == np.float32 and x.flags.c_contiguous and x.ndim - 1 not in [a % x.ndim for a in axis]:
            # float64 sums straight from the float32 rows: the same values bit for bit as on a float64 copy
            # (the reduced axes are outer ones, summed row by row either way), without the copy (5x faster)
            mean = x.mean(axis=axis, dtype=np.float64)
            var = x.var(axis=axis, dtype=np.float64)
        else:
            x64 = np.asarray(x, dtype=np.float64)
            mean = x64.mean(axis=axis)
            var = x64.var(axis=axis)
        # shrink each dim's variance toward the mean variance: a dim that is nearly constant on train (a
        # pixel the arm covered once) is not blown up into huge test values (docs/footguns.md)
        var = var + SHRINK * var.mean()
        std = np.sqrt(var)
        std = np.where(std > EPS * np.maximum(1.0, np.abs(mean)), std, 1.0)
        return cls(mean.astype(np.float32), std.astype(np.float32))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.asarray(x, np.float32) - self.mean
        out /= self.std                                  # in place: the same division, one pass and no copy
        return out.astype(np.float32, copy=False)

    def inverse(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = (np.asarray(x, np.float32) * self.std + self.mean).astype(np.float32)
        return out


def pair_inputs(data: ProbeData, use_diff: bool = False) -> np.ndarray:
    """Pooled probe input ``(P, F)``: concat(z_t, z_tk) (+ z_tk - z_t); z_t alone for the single control."""
    d = data.pooled()
    if d.z_tk is None:
        return d.z_t
    parts = [d.z_t, d.z_tk] + ([d.z_tk - d.z_t] if use_diff else [])
    return np.concatenate(parts, axis=1)


def require_episodes(data: ProbeData, minimum: int = 2) -> None:
    if data.n_episodes < minimum:
        raise ProbeError(f"{data.name}: {data.n_episodes} episode(s) with pairs; a probe needs >= {minimum} "
                         "(more episodes, or a smaller k)")


def val_split(episode: np.ndarray, frac: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(fit_mask, val_mask)`` over pairs, holding out ~frac of the TRAIN episodes (at least one)."""
    eps = np.unique(episode)
    if len(eps) < 2:
        raise ProbeError(f"a validation split by episode needs >= 2 train episodes, got {len(eps)}")
    n_val = min(len(eps) - 1, max(1, int(round(frac * len(eps)))))
    val_eps = np.random.default_rng(seed).permutation(eps)[:n_val]
    val = np.isin(episode, val_eps)
    return ~val, val


def episode_folds(episode: np.ndarray, n_folds: int = 5, seed: int = 0) -> np.ndarray:
    """``(P,) int``: the CV fold of every pair, whole episodes per fold (``min(n_folds, E)`` folds)."""
    eps, inv = np.unique(episode, return_inverse=True)
    n_folds = max(2, min(n_folds, len(eps)))
    fold_of_ep = np.random.default_rng(seed).permutation(len(eps)) % n_folds
    return fold_of_ep[inv]
