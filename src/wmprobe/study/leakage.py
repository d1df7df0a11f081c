"""The leakage check every study runs: nothing the probe is tested on may reach a probe's or a zoo model's
training data.

``check_leakage(datasets, pool=None, checkpoints=())`` compares, for every dataset of the study,

- its test episodes against its own train episodes (ids and content hashes: a duplicated episode counts),
- its held-out task NAMES and test-episode content hashes against the zoo's pretraining pool (every
  dataset's test tasks against the whole pool: the pool mixes datasets),
- the same against every zoo checkpoint's recipe (``recipe.train_tasks``: the task names it trained on;
  ``train_episode_hashes``: the content hashes of its training episodes, written by ``zoo.train``).

It returns ``{"ok": bool, "checked": {...counts...}, "problems": [...]}`` (stored as ``leakage`` in the
study's config.yaml); ``assert_no_leak`` raises one ConfigError naming every leak. Content hash:
``data.splits.episode_hash`` (sha256 of an episode's actions and first frame).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from wmprobe.data.splits import episode_hashes
from wmprobe.errors import ConfigError


def bare_task_name(name: str, datasets: Iterable[str]) -> str:
    """A pool task name ``DATASET/TASK`` -> ``TASK`` (names without a known dataset prefix are kept)."""
    for d in datasets:
        if name.startswith(f"{d}/"):
            return name[len(d) + 1:]
    return name


def _pool_tasks(pool: Any, datasets: Iterable[str]) -> set[str]:
    names = list(pool.meta.get("task_names") or [])
    used = sorted({int(t) for t in pool.tasks})
    return {bare_task_name(names[t] if t < len(names) else str(t), list(datasets)) for t in used}


def check_leakage(datasets: Mapping[str, tuple[Any, Any]], pool: Any = None,
                  checkpoints: Iterable[str | Path] = ()) -> dict[str, Any]:
    """``datasets``: ``{name: (EpisodeStore, Split)}``; ``pool``: the pretraining pool store (or None);
    ``checkpoints``: zoo checkpoint directories. See the module doc."""
    problems: list[str] = []
    test_names: dict[str, str] = {}          # task name -> a dataset that tests on it
    test_hashes: dict[str, str] = {}         # episode hash -> "dataset episode N"
    n_test = n_train = 0
    for name, (store, split) in datasets.items():
        train, test = [int(e) for e in split.train], [int(e) for e in split.test]
        n_test, n_train = n_test + len(test), n_train + len(train)
        both = sorted(set(train) & set(test))
        if both:
            problems.append(f"{name}: episodes {both[:5]} are in both the train and the test split")
        th = episode_hashes(store, test)
        dup = set(th) & set(episode_hashes(store, train))
        if dup:
            problems.append(f"{name}: {len(dup)} test episode(s) have the same content as a train episode")
        for e, h in zip(test, th):
            test_hashes.setdefault(h, f"{name} episode {e}")
        for t in getattr(split, "test_task_names", ()) or ():
            test_names.setdefault(str(t), name)
    checked: dict[str, Any] = {"datasets": len(datasets), "train_episodes": n_train, "test_episodes": n_test,
                               "test_task_names": sorted(test_names)}
    if pool is not None:
        names = _pool_tasks(pool, datasets)
        hit = sorted(names & set(test_names))
        if hit:
            problems.append(f"the pretraining pool contains held-out task(s) {hit} "
                            f"(tested on in {sorted({test_names[t] for t in hit})})")
        ph = episode_hashes(pool)
        hh = [test_hashes[h] for h in ph if h in test_hashes]
        if hh:
            problems.append(f"the pretraining pool contains {len(hh)} test episode(s): {hh[:5]}")
        checked["pool"] = {"episodes": len(ph), "tasks": len(names), "fingerprint": pool.fingerprint}
    n_ckpt = 0
    for ck in checkpoints:
        n_ckpt += 1
        try:
            meta = json.loads((Path(ck) / "recipe.json").read_text())
        except (OSError, ValueError) as exc:
            problems.append(f"zoo checkpoint {ck}: no readable recipe.json ({exc}): its training data is unknown")
            continue
        recipe = meta.get("recipe", {})
        if "train_tasks" not in recipe or "train_episode_hashes" not in meta:
            problems.append(f"zoo checkpoint {ck}: its recipe does not record its training tasks and episode "
                            "hashes (trained by an older wmprobe): train it again")
            continue
        tasks = {bare_task_name(str(t), datasets) for t in recipe["train_tasks"]}
        hit = sorted(tasks & set(test_names))
        if hit:
            problems.append(f"zoo checkpoint {Path(ck).name} was trained on held-out task(s) {hit}")
        hh = [test_hashes[h] for h in meta["train_episode_hashes"] if h in test_hashes]
        if hh:
            problems.append(f"zoo checkpoint {Path(ck).name} was trained on {len(hh)} test episode(s): {hh[:5]}")
    checked["zoo_checkpoints"] = n_ckpt
    return {"ok": not problems, "checked": checked, "problems": problems}


def assert_no_leak(result: dict[str, Any]) -> dict[str, Any]:
    if not result["ok"]:
        raise ConfigError("leakage check failed (test data reaches training):\n  " + "\n  ".join(result["problems"]))
    return result
