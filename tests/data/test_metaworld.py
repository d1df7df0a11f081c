"""The metaworld suite: well-formed, deterministic with any number of workers, wired into the sim front end.

The tests that simulate are skipped when metaworld is not installed or offscreen rendering fails; rendering is
probed once, in a subprocess (a failing EGL context can abort the interpreter).
"""
import importlib.util
import os
import subprocess
import sys
from functools import lru_cache

import numpy as np
import pytest

from wmprobe.data.sim import SUITES, cache_key, check_params, generate
from wmprobe.data.sim.metaworld import ALL_TASKS, DEFAULT_TASKS, generate_metaworld, resolve_tasks, task_order
from wmprobe.data.splits import make_split
from wmprobe.data.store import EpisodeStore, from_episodes
from wmprobe.errors import ConfigError

PROBE = ("from wmprobe.data.sim.metaworld import generate_metaworld; "
         "s = generate_metaworld(1, size=16, steps=2, workers=1, progress=False); assert s.frames.std() > 0")


@lru_cache(maxsize=1)
def _unavailable() -> str | None:
    if importlib.util.find_spec("metaworld") is None or importlib.util.find_spec("mujoco") is None:
        return "metaworld is not installed (pip install 'wmprobe[metaworld]')"
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        lines = (r.stderr or r.stdout).strip().splitlines() or [f"exit code {r.returncode}"]
        return f"Meta-World offscreen rendering is unavailable here: {lines[-1][:300]}"
    return None


@pytest.fixture(scope="module")
def needs_metaworld():
    reason = _unavailable()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def store(needs_metaworld):
    return generate_metaworld(2, size=32, steps=10, seed=0, workers=1, progress=False)


# ---- no metaworld needed ------------------------------------------------------------------------
def test_check_params_accepts_metaworld():
    assert "metaworld" in SUITES
    p = check_params("metaworld", 4)
    assert p["suite"] == "metaworld" and p["camera"] == "corner" and p["steps"] == 100
    assert p["tasks"] == list(DEFAULT_TASKS) and 10 <= len(p["tasks"]) <= 20 and len(ALL_TASKS) == 50
    # 'front' (the CLI and study default) is an alias of the suite's default camera: same cache key
    assert check_params("metaworld", 4, camera="front") == check_params("metaworld", 4, camera="corner")
    assert cache_key("metaworld", 4) == cache_key("metaworld", 4, camera="corner")
    assert cache_key("metaworld", 4) != cache_key("metaworld", 4, camera="topview")
    assert check_params("metaworld", 4, steps=30)["steps"] == 30
    with pytest.raises(ConfigError, match="camera"):
        check_params("metaworld", 4, camera="nowhere")
    with pytest.raises(ConfigError, match="steps"):
        check_params("metaworld", 4, steps=501)
    # the pybullet suites keep their cameras
    assert check_params("static", 4, camera="front")["camera"] == "front"
    with pytest.raises(ConfigError, match="camera"):
        check_params("static", 4, camera="corner")


def test_unknown_task_name_is_a_config_error():
    with pytest.raises(ConfigError, match="no-such-task"):
        generate_metaworld(1, size=16, steps=2, tasks=["pick-place", "no-such-task"], progress=False)
    with pytest.raises(ConfigError, match="repeats"):
        generate_metaworld(1, size=16, steps=2, tasks=["push", "push-v3"], progress=False)
    with pytest.raises(ConfigError, match="'pik-place' .did you mean pick-place-v3"):  # close matches listed
        generate("metaworld", 1, size=16, steps=2, tasks="reach,pik-place", progress=False)
    with pytest.raises(ConfigError, match="1..50, got 51"):
        check_params("metaworld", 4, tasks=51)


def test_tasks_key_the_cache():
    """A count, 'all' or names; equal task lists share a cache key, different ones never do."""
    keys = {t: cache_key("metaworld", 4, tasks=t) for t in (None, "all", 3, "reach,push", ("push", "reach"))}
    assert len(set(keys.values())) == len(keys)
    assert cache_key("metaworld", 4, tasks=16) == keys[None]          # the first 16 are DEFAULT_TASKS
    assert cache_key("metaworld", 4, tasks="50") == keys["all"]       # a count of all 50 is 'all'
    assert cache_key("metaworld", 4, tasks=["reach-v3", "push"]) == keys["reach,push"]
    assert check_params("metaworld", 4, tasks="all")["tasks"] == list(ALL_TASKS)
    twenty = resolve_tasks(20)
    assert twenty[:16] == list(DEFAULT_TASKS) and len(set(twenty)) == 20 and set(twenty) <= set(ALL_TASKS)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_task_split_over_all_50_tasks_never_shares_tasks(seed):
    """A store laid out as generate_metaworld(100, tasks='all') lays it out (no simulation): 2 episodes per
    task, task ids in the generator's order; the task-OOD split holds out whole tasks."""
    names = resolve_tasks("all")
    order = task_order(len(names), seed)
    ids = [int(order[i % len(names)]) for i in range(2 * len(names))]
    eps = [(np.full((2, 4, 4, 3), i % 256, np.uint8), np.full((2, 4), i, np.float32)) for i in range(len(ids))]
    store = from_episodes(eps, ids, fps=80, action_names=["x", "y", "z", "gripper"],
                          action_groups={"translation": [0, 1, 2], "gripper": [3]}, task_names=names,
                          source={"kind": "test"})
    split = make_split(store, kind="task", seed=seed)
    train_t, test_t = set(store.tasks[list(split.train)].tolist()), set(store.tasks[list(split.test)].tolist())
    assert not train_t & test_t and train_t | test_t == set(range(50)) and test_t == set(split.test_tasks)
    assert len(test_t) == 12 and len(split.test) == 24  # a quarter of the tasks, with both their episodes
    assert {names[t] for t in test_t} <= set(ALL_TASKS) - {names[t] for t in train_t}


# ---- simulating -----------------------------------------------------------------------------------
def test_store_layout_and_meta(store, tmp_path):
    assert store.frames.shape == (20, 32, 32, 3) and store.frames.dtype == np.uint8
    assert store.actions.shape == (20, 4) and store.actions.dtype == np.float32
    np.testing.assert_array_equal(store.episode_ends, [10, 20])
    assert store.meta["action_names"] == ["x", "y", "z", "gripper"]
    assert store.meta["action_groups"] == {"translation": [0, 1, 2], "gripper": [3]}
    assert store.meta["fps"] == 80.0 and store.meta["task_names"] == list(DEFAULT_TASKS)
    src = store.meta["source"]
    assert {k: src[k] for k in ("kind", "suite", "seed", "size", "camera", "episodes", "steps", "noise")} == {
        "kind": "wmprobe-sim", "suite": "metaworld", "seed": 0, "size": 32, "camera": "corner", "episodes": 2,
        "steps": 10, "noise": 0.1}
    a = store.actions
    assert np.isfinite(a).all() and np.abs(a).max() <= 1.0 + 1e-5
    assert len(np.unique(a[:, :3], axis=0)) > 10  # noisy expert: actions vary step to step
    assert all(store.frames[t].std() > 5 for t in range(len(store.frames)))  # not blank
    loaded = EpisodeStore.load(store.save(tmp_path / "mw"))  # validates on load
    np.testing.assert_array_equal(loaded.frames, store.frames)
    assert loaded.fingerprint == store.fingerprint


def test_deterministic_with_one_or_two_workers(store):
    again = generate("metaworld", 2, size=32, steps=10, seed=0, workers=2, progress=False)  # via the front end
    np.testing.assert_array_equal(again.frames, store.frames)
    np.testing.assert_array_equal(again.actions, store.actions)
    np.testing.assert_array_equal(again.tasks, store.tasks)
    assert again.fingerprint == store.fingerprint


def test_different_seeds_differ(store):
    other = generate_metaworld(1, size=32, steps=10, seed=1, workers=1, progress=False)
    assert not np.array_equal(other.frames, store.frames[:10])
    assert not np.array_equal(other.actions, store.actions[:10])


def test_task_split_holds_out_whole_metaworld_tasks(needs_metaworld):
    s = generate_metaworld(4, size=16, steps=3, seed=0, workers=1, progress=False, tasks=["reach", "push-v3"])
    assert s.meta["task_names"] == ["reach-v3", "push-v3"] and sorted(s.tasks.tolist()) == [0, 0, 1, 1]
    split = make_split(s, kind="task", seed=0)
    assert len(split.test_tasks) == 1 and not set(s.tasks[list(split.train)]) & set(split.test_tasks)


def test_cli_gen_tasks_option(needs_metaworld, tmp_path, monkeypatch):
    from wmprobe.cli import main
    monkeypatch.setenv("WMPROBE_QUIET", "1")
    args = ["--quiet", "data", "gen", "metaworld", str(tmp_path / "mw"), "--episodes", "2", "--size", "16",
            "--steps", "2", "--workers", "1", "--tasks", "reach,push"]
    assert main(args) == 0
    s = EpisodeStore.load(tmp_path / "mw")
    assert s.meta["task_names"] == ["reach-v3", "push-v3"] and sorted(s.tasks.tolist()) == [0, 1]
    assert s.meta["source"]["tasks"] == ["reach-v3", "push-v3"]
    assert main([*args[:-1], "pick-plaec"]) == 2  # an unknown name: one-sentence error, exit 2


def test_render_failure_names_the_fix(needs_metaworld, tmp_path):
    env = dict(os.environ, MUJOCO_GL="bogus")
    r = subprocess.run([sys.executable, "-m", "wmprobe.cli", "data", "gen", "metaworld", str(tmp_path / "x"),
                        "--episodes", "1", "--size", "16", "--steps", "2"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and "MUJOCO_GL=osmesa" in r.stderr, r.stderr


def test_task_names_match_the_installed_metaworld(needs_metaworld):
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS
    from metaworld.policies import ENV_POLICY_MAP
    assert list(ALL_TASKS) == list(ALL_V3_ENVIRONMENTS) and set(ALL_TASKS) <= set(ENV_POLICY_MAP)
