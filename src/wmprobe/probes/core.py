"""The probe evaluation core: ``evaluate`` / ``evaluate_many`` (fit on train, score on test, one record per
seed), the controls' data transforms and the per-group scores. ``wmprobe.probes`` re-exports all of it.

Modules below the user-facing API (``probes.api``, ``probes.headline``, ``data.audit``, ``pipeline``) import
from here, never from the ``wmprobe.probes`` package, so the package can re-export the API without a cycle.
"""
from __future__ import annotations

import json
import time
from typing import Any, Mapping, Sequence

import numpy as np

from wmprobe.errors import ProbeError
from wmprobe.probes.base import Probe, ProbeData
from wmprobe.probes.spec import PROBES, probe_spec

GROUPS = ("translation", "rotation", "gripper")
SHUFFLE_SEED = 12345


def make_probe(name: str, **cfg: Any) -> Probe:
    """Instantiate a registered probe (lazy import), e.g. ``make_probe("mlp", steps=300, seeds=(0,))``."""
    spec = probe_spec(name)
    probe: Probe = PROBES.get(spec.base)(**cfg)
    return probe


def shuffle_partners(data: ProbeData, seed: int = SHUFFLE_SEED) -> ProbeData:
    """Control: every pair keeps z_t and its target, its z_tk comes from a pair of another episode."""
    from wmprobe.probes.pairs import other_episode_perm
    if data.z_tk is None:
        raise ProbeError(f"{data.name}: cannot shuffle partners of single-frame data")
    q = other_episode_perm(data.episode, np.random.default_rng(seed), what=data.name)
    return ProbeData(data.z_t, data.z_tk[q], data.y, data.episode, data.name)


def single_frame_data(data: ProbeData) -> ProbeData:
    """Control: only z_t (f(o_t)) of each pair."""
    return ProbeData(data.z_t, None, data.y, data.episode, data.name)


def evaluate(probe_name: str, train: ProbeData, test: ProbeData, target_groups: Mapping[str, Sequence[int]], *,
             seeds: Sequence[int] = (0, 1, 2), n_boot: int = 1000, boot_seed: int = 0,
             headline: Sequence[str] | None = None, **probe_cfg: Any) -> list[dict[str, Any]]:
    """Fit ``probe_name`` on ``train``, score ``test``: one dict per seed (ridge: one) with r2 (the mean of the
    ``headline`` groups' R2; default: every group with dims), its CI over test episodes, headline_groups, per-group
    R2 (NaN when the group is absent), acc_/bacc_ of two-level groups, pearson, mse, counts, train_seconds,
    probe_config."""
    return evaluate_many(probe_name, train, {"": test}, target_groups, seeds=seeds, n_boot=n_boot,
                         boot_seed=boot_seed, headline=headline, **probe_cfg)[""]


def ordered_groups(groups: Sequence[str]) -> list[str]:
    """``groups`` without repeats in canonical order: ``GROUPS`` first, then any other in the order given."""
    groups = list(dict.fromkeys(groups))
    return [g for g in GROUPS if g in groups] + [g for g in groups if g not in GROUPS]


def headline_of(target_groups: Mapping[str, Sequence[int]], headline: Sequence[str] | None,
                what: str = "targets") -> list[str]:
    """The groups the headline R2 averages, in canonical order: ``headline`` (each must be a group with dims of
    ``target_groups``; ProbeError naming the groups there are), or every group with dims when None. Empty when
    ``target_groups`` declares no group with dims (then R2 is the uniform average over every target dim)."""
    present = ordered_groups([g for g, idx in target_groups.items() if len(idx)])
    if headline is None:
        return present
    return checked_headline(headline, present, what)


def checked_headline(headline: Sequence[str], present: Sequence[str], what: str, of: str = "the data") -> list[str]:
    """A user's headline groups in canonical order; ProbeError naming ``what`` and the groups ``present`` when
    the list is empty, a bare string, or names a group that is not one of ``present`` (the action groups of
    ``of``)."""
    if isinstance(headline, str) or not list(headline):
        raise ProbeError(f"{what}: headline groups must be a non-empty list of group names, got {headline!r}")
    missing = [g for g in headline if g not in present]
    if missing:
        raise ProbeError(f"{what}: headline group(s) {missing} are not action groups of {of}; it has "
                         f"{', '.join(present) or 'no groups'}")
    return ordered_groups(headline)


ALL_DIMS = "all-dims"   # ``headline_groups`` of a row whose r2 averages every target dim (data without groups)


def group_scores(y: np.ndarray, pred: np.ndarray, target_groups: Mapping[str, Sequence[int]],
                 binary: Mapping[str, list[tuple[float, float]]]) -> dict[str, float]:
    """``r2_<group>`` for the three standard groups (NaN when absent) and every other declared group, and
    ``acc_<group>`` / ``bacc_<group>`` (mean over the group's dims) for the groups in ``binary``
    (``{group: [levels of each dim]}``); the gripper's accuracy columns are always present (NaN if not binary)."""
    from wmprobe.metrics import binary_accuracy, r2_by_group
    names = ordered_groups([*GROUPS, *target_groups])
    by_group = r2_by_group(y, pred, {g: target_groups.get(g, []) for g in names})
    out = {f"r2_{g}": by_group[g] for g in names}
    out.update({"acc_gripper": float("nan"), "bacc_gripper": float("nan")})
    for g, levels in binary.items():
        scores = np.array([binary_accuracy(y[:, d], pred[:, d], lv) for d, lv in zip(target_groups[g], levels)])
        out[f"acc_{g}"], out[f"bacc_{g}"] = (float(v) for v in scores.mean(0))
    return out


def binary_groups(train: ProbeData, tests: Mapping[str, ProbeData],
                  target_groups: Mapping[str, Sequence[int]]) -> dict[str, list[tuple[float, float]]]:
    """The groups whose every dim takes exactly two levels on train (e.g. a gripper command), and no other
    value on any test set: ``{group: [(low, high) per dim]}``."""
    from wmprobe.metrics import binary_levels
    out: dict[str, list[tuple[float, float]]] = {}
    for g, idx in target_groups.items():
        found = [binary_levels(train.y[:, d]) for d in idx]
        levels = [lv for lv in found if lv is not None]
        if idx and len(levels) == len(found) and all(
                np.isin(t.y[:, d], lv).all() for t in tests.values() for d, lv in zip(idx, levels)):
            out[g] = levels
    return out


def evaluate_many(probe_name: str, train: ProbeData, tests: Mapping[str, ProbeData],
                  target_groups: Mapping[str, Sequence[int]], *, seeds: Sequence[int] = (0, 1, 2),
                  n_boot: int = 1000, boot_seed: int = 0, headline: Sequence[str] | None = None,
                  **probe_cfg: Any) -> dict[str, list[dict[str, Any]]]:
    """``evaluate`` with ONE fit scored on several test sets (e.g. clean and each corruption of the same test
    episodes): ``{name: rows}`` in the order of ``tests``. Identical to separate ``evaluate`` calls, since a
    fit depends only on ``train``, seeds and config; ``train_seconds`` is that one fit's time in every row."""
    from wmprobe.metrics import bootstrap_ci, mse, pearson_r, r2_over_groups, r2_score
    from wmprobe.probes.base import require_episodes
    spec = probe_spec(probe_name)
    base, control = spec.base, spec.control
    require_episodes(train, 2)
    for test in tests.values():
        require_episodes(test, 2)
        if test.y.shape[1] != train.y.shape[1]:
            raise ProbeError(f"train targets have {train.y.shape[1]} dims but test targets {test.y.shape[1]}")
    heads = headline_of(target_groups, headline, train.name)
    head_groups = {g: list(target_groups[g]) for g in heads} or None
    binary = binary_groups(train, tests, target_groups)
    if control == "shuffled":
        train = shuffle_partners(train, SHUFFLE_SEED)
        tests = {n: shuffle_partners(t, SHUFFLE_SEED + 1) for n, t in tests.items()}
    elif control == "single":
        train, tests = single_frame_data(train), {n: single_frame_data(t) for n, t in tests.items()}
    probe = make_probe(base, seeds=spec.fit_seeds(seeds), **probe_cfg)   # one fit per seed, or one fit
    t0 = time.perf_counter()
    probe.fit(train)
    train_seconds = time.perf_counter() - t0
    cfg = json.dumps(probe.config(), sort_keys=True, default=float)
    out: dict[str, list[dict[str, Any]]] = {}
    for name, test in tests.items():
        preds = probe.predict(test)                                              # (S, P, A)
        rows = out[name] = []
        for seed, pred in zip(probe.seeds, preds):
            lo, hi = bootstrap_ci(test.y, pred, test.episode, stat="r2", n_boot=n_boot, seed=boot_seed,
                                  groups=head_groups)
            r2 = r2_over_groups(test.y, pred, head_groups) if head_groups else r2_score(test.y, pred)
            rows.append({"probe": probe_name, "seed": int(seed), "r2": r2, "r2_ci_low": lo, "r2_ci_high": hi,
                         "headline_groups": "+".join(heads) or ALL_DIMS,
                         **group_scores(test.y, pred, target_groups, binary),
                         "pearson": pearson_r(test.y, pred), "mse": mse(test.y, pred),
                         "n_train": len(train), "n_test": len(test), "n_test_episodes": test.n_episodes,
                         "train_seconds": train_seconds, "probe_config": cfg})
    return out


__all__ = ["ALL_DIMS", "GROUPS", "SHUFFLE_SEED", "binary_groups", "evaluate", "evaluate_many", "group_scores",
           "headline_of", "make_probe", "ordered_groups", "shuffle_partners", "single_frame_data"]
