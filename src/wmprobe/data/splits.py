"""Train/test splits over whole episodes: by episode, or by task (task out-of-distribution).

A split never cuts inside an episode; the task-OOD split never shares a task between train and test.
Both are deterministic for a seed.

- ``make_split(store, ...)``: one dataset on its own.
- ``study_splits({name: store}, ...)``: every dataset of a study. For task-OOD the held-out task NAMES are
  chosen once, from the names common to the datasets (seeded), and held out in every dataset, so no
  dataset trains on a task another one tests on (the pretraining pool pools their train episodes).
- ``episode_hash(store, e)`` / ``episode_hashes``: content hashes of episodes (sha256 of the actions and the
  first frame), what the leakage check compares across datasets and pretraining pools.
"""
from __future__ import annotations

from dataclasses import dataclass

import hashlib
from typing import Mapping, Sequence

import numpy as np

from wmprobe.data.store import EpisodeStore
from wmprobe.errors import ConfigError

SPLITS = ("episode", "task")


@dataclass(frozen=True)
class Split:
    """Episode indices of each part. ``kind`` is 'episode' or 'task'; ``test_tasks`` for task-OOD."""

    kind: str
    train: tuple[int, ...]
    test: tuple[int, ...]
    test_tasks: tuple[int, ...] = ()
    test_task_names: tuple[str, ...] = ()

    def describe(self) -> dict:
        out = {"kind": self.kind, "n_train": len(self.train), "n_test": len(self.test),
               "test_tasks": list(self.test_tasks), "test_episodes": [int(e) for e in self.test]}
        if self.test_task_names:
            out["test_task_names"] = list(self.test_task_names)
        return out


def make_split(store: EpisodeStore, kind: str = "task", test_frac: float = 0.25, seed: int = 0) -> Split:
    """Split ``store``'s episodes. ``kind='task'`` holds out ~test_frac of the tasks (at least one)."""
    if kind not in SPLITS:
        raise ConfigError(f"unknown split '{kind}': choose one of {SPLITS}")
    if not 0.0 < test_frac < 1.0:
        raise ConfigError(f"split test_frac must be in (0, 1), got {test_frac}")
    rng = np.random.default_rng(seed)
    episodes = np.arange(store.n_episodes)
    if kind == "episode":
        if store.n_episodes < 4:
            raise ConfigError(f"{store.name}: an episode split needs >= 4 episodes, the store has {store.n_episodes}")
        perm = rng.permutation(episodes)
        n_test = max(2, int(round(test_frac * len(perm))))
        return Split("episode", tuple(sorted(perm[n_test:].tolist())), tuple(sorted(perm[:n_test].tolist())))
    tasks = np.unique(store.tasks)
    if len(tasks) < 2:
        raise ConfigError(f"{store.name}: a task-OOD split needs >= 2 tasks, the store has {len(tasks)}")
    n_test_tasks = min(len(tasks) - 1, max(1, int(round(test_frac * len(tasks)))))
    test_tasks = np.sort(rng.permutation(tasks)[:n_test_tasks])
    is_test = np.isin(store.tasks, test_tasks)
    train, test = episodes[~is_test], episodes[is_test]
    if len(train) < 2 or len(test) < 2:
        raise ConfigError(f"{store.name}: task-OOD split left {len(train)} train / {len(test)} test episodes; "
                          "need >= 2 each (generate more episodes per task)")
    return Split("task", tuple(train.tolist()), tuple(test.tolist()), tuple(test_tasks.tolist()),
                 _names(store, test_tasks))


def _names(store: EpisodeStore, ids: Sequence[int] | np.ndarray) -> tuple[str, ...]:
    names = list(store.meta.get("task_names") or [])
    return tuple(names[int(i)] if 0 <= int(i) < len(names) else str(int(i)) for i in ids)


def task_names_of(store: EpisodeStore) -> list[str]:
    """The store's task names by task id (``str(id)`` where the store names none)."""
    names = list(store.meta.get("task_names") or [])
    n = int(np.max(store.tasks)) + 1 if store.n_episodes else 0
    return [names[i] if i < len(names) else str(i) for i in range(max(n, len(names)))]


def split_by_names(store: EpisodeStore, test_names: Sequence[str]) -> Split:
    """Task-OOD split of ``store`` holding out every task whose name is in ``test_names``."""
    names = task_names_of(store)
    test_ids = np.array(sorted(i for i, n in enumerate(names) if n in set(test_names)), np.int64)
    episodes = np.arange(store.n_episodes)
    is_test = np.isin(store.tasks, test_ids)
    train, test = episodes[~is_test], episodes[is_test]
    if len(train) < 2 or len(test) < 2:
        raise ConfigError(f"{store.name}: holding out tasks {sorted(test_names)} left {len(train)} train / "
                          f"{len(test)} test episodes; need >= 2 each (generate more episodes per task)")
    present = sorted(set(store.tasks[test].tolist()))
    return Split("task", tuple(train.tolist()), tuple(test.tolist()), tuple(int(i) for i in present),
                 tuple(names[i] for i in present))


def study_splits(stores: Mapping[str, EpisodeStore], kind: str = "task", test_frac: float = 0.25,
                 seed: int = 0, test_tasks: Sequence[str] | None = None) -> dict[str, Split]:
    """``{name: Split}`` for every dataset of a study.

    ``test_tasks`` (task-OOD only): the task names to hold out, named instead of drawn; each is held out in
    every dataset that has it, and each must exist in at least one dataset (else one ConfigError naming the
    unknown names and the known ones). With it the seed no longer picks the test tasks, so studies on
    different data seeds test the same tasks (docs/protocol.md "Rank stability across data seeds").

    Episode splits and single datasets: ``make_split`` per dataset. Task-OOD over several datasets: the
    held-out task names are drawn once (seeded) from the names COMMON to every dataset (``round(test_frac *
    n_common)``, at least 1, at most ``n_common - 1``) and held out in each; a task only some datasets have
    stays in training. Datasets that share fewer than 2 task names cannot hold out the same names: each
    gets its own ``make_split``, and any name held out anywhere is then held out everywhere it occurs (no
    dataset trains on a task another one tests on)."""
    if kind not in SPLITS:
        raise ConfigError(f"unknown split '{kind}': choose one of {SPLITS}")
    if test_tasks is not None:
        return _named_splits(stores, kind, test_tasks)
    if kind == "episode" or len(stores) <= 1:
        return {n: make_split(s, kind=kind, test_frac=test_frac, seed=seed) for n, s in stores.items()}
    if not 0.0 < test_frac < 1.0:
        raise ConfigError(f"split test_frac must be in (0, 1), got {test_frac}")
    per_store = [set(task_names_of(s)[int(t)] for t in np.unique(s.tasks)) for s in stores.values()]
    common = sorted(set.intersection(*per_store))
    if len(common) >= 2:
        n_test = min(len(common) - 1, max(1, int(round(test_frac * len(common)))))
        held = [common[i] for i in np.random.default_rng([seed, 16]).permutation(len(common))[:n_test]]
    else:
        held = sorted({n for s in stores.values() for n in make_split(s, "task", test_frac, seed).test_task_names})
    return {n: split_by_names(s, held) for n, s in stores.items()}


def _named_splits(stores: Mapping[str, EpisodeStore], kind: str, test_tasks: Sequence[str]) -> dict[str, Split]:
    if kind != "task":
        raise ConfigError(f"test_tasks names held-out tasks, which only a task split has (split: {kind})")
    known = sorted({n for s in stores.values() for n in task_names_of(s)})
    unknown = sorted(set(test_tasks) - set(known))
    if unknown:
        raise ConfigError(f"test_tasks {unknown} are not tasks of any dataset (known: {', '.join(known)})")
    return {n: split_by_names(s, test_tasks) for n, s in stores.items()}


def episode_hash(store: EpisodeStore, e: int) -> str:
    """sha256 (16 hex) of episode ``e``'s actions (float32) and first frame: equal content, equal hash,
    whichever store or pool holds it."""
    sl = store.episode_slice(int(e))
    h = hashlib.sha256(np.ascontiguousarray(np.asarray(store.actions[sl], np.float32)).tobytes())
    h.update(np.ascontiguousarray(np.asarray(store.frames[sl.start])).tobytes())
    return h.hexdigest()[:16]


def episode_hashes(store: EpisodeStore, episodes: Sequence[int] | None = None) -> list[str]:
    eps = range(store.n_episodes) if episodes is None else episodes
    return [episode_hash(store, int(e)) for e in eps]
