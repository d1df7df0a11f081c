"""Train/test splits over whole episodes: by episode, or by task (task out-of-distribution).

A split never cuts inside an episode; the task-OOD split never shares a task between train and test.
Both are deterministic for a seed.
"""
from __future__ import annotations

from dataclasses import dataclass

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

    def describe(self) -> dict:
        return {"kind": self.kind, "n_train": len(self.train), "n_test": len(self.test),
                "test_tasks": list(self.test_tasks), "test_episodes": [int(e) for e in self.test]}


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
    return Split("task", tuple(train.tolist()), tuple(test.tolist()), tuple(test_tasks.tolist()))
