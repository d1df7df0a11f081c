"""The embedded robot simulator: pybullet Franka Panda, scripted experts, offscreen CPU rendering.

Suites (each 12 tasks, see tasks.TASKS):
- ``static``: a CALVIN-like table where only what the robot touches moves.
- ``dynamic``: the same tasks plus distractors (a ball and a block) that glide across the table on their
  own, independent of the robot, so frame changes are not all caused by the action.

``generate(suite, episodes, ...)`` returns an EpisodeStore; ``generate_to`` writes one; ``cached_generate``
reuses a store generated with the same parameters (key: parameters + GENERATOR_VERSION). Episode ``i`` is
seeded from ``(seed, i)`` only, so results are identical with any number of worker processes. Task of
episode ``i``: ``order[i % 12]`` with ``order`` a seed-shuffled permutation (tasks stay balanced).
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
from pathlib import Path
from typing import Any

import numpy as np

from wmprobe.data.store import EpisodeStore, from_episodes
from wmprobe.errors import ConfigError

GENERATOR_VERSION = 1
SUITES = {
    "static": "CALVIN-like table: only what the robot touches moves (12 tasks: reach, push, lift, pick-place, stack)",
    "dynamic": "the same 12 tasks with distractors gliding across the table independently of the robot",
}
ACTION_NAMES = ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]
ACTION_GROUPS = {"translation": [0, 1, 2], "rotation": [3, 4, 5], "gripper": [6]}
DEFAULT_STEPS = 40
_WORKER: dict[str, Any] = {}


def _params(suite: str, episodes: int, size: int, seed: int, steps: int | None, camera: str) -> dict[str, Any]:
    from wmprobe.data.sim.scene import CAMERAS
    if suite not in SUITES:
        raise ConfigError(f"unknown simulator suite '{suite}': choose one of {sorted(SUITES)}")
    if camera not in CAMERAS:
        raise ConfigError(f"unknown camera '{camera}': choose one of {sorted(CAMERAS)}")
    if episodes < 1 or size < 16 or (steps is not None and steps < 2):
        raise ConfigError(f"need episodes >= 1, size >= 16, steps >= 2 (got {episodes}, {size}, {steps})")
    return {"suite": suite, "episodes": int(episodes), "size": int(size), "seed": int(seed),
            "steps": int(steps or DEFAULT_STEPS), "camera": camera, "version": GENERATOR_VERSION}


def task_order(seed: int) -> np.ndarray:
    from wmprobe.data.sim.tasks import TASKS
    return np.random.default_rng([seed, 7]).permutation(len(TASKS))


def make_world(params: dict[str, Any], index: int):
    """``(pybullet, world, task id, rng)``: the scene of episode ``index``, settled, before the first frame."""
    from wmprobe.data.sim import scene as S
    from wmprobe.data.sim.tasks import BLOCK, BLOCK_COLOURS, TASKS
    if "p" not in _WORKER:
        _WORKER["p"], _WORKER["cid"] = S.connect()
    p, cid = _WORKER["p"], _WORKER["cid"]
    rng = np.random.default_rng([params["seed"], index, 1 if params["suite"] == "dynamic" else 0])
    task_id = int(task_order(params["seed"])[index % len(TASKS)])
    w = S.build(p, cid, params["size"], params["camera"])
    # blocks at non-overlapping random positions with random yaw
    placed: list[np.ndarray] = []
    for colour in BLOCK_COLOURS:
        for _ in range(100):
            xy = rng.uniform([0.42, -0.18], [0.68, 0.18])
            if all(np.linalg.norm(xy - q) > 0.09 for q in placed):
                break
        placed.append(xy)
        w.blocks[colour] = S.add_box(p, cid, (BLOCK,) * 3, (xy[0], xy[1], BLOCK + 0.001), S.COLOURS[colour],
                                     yaw=rng.uniform(-0.7, 0.7))
    if params["suite"] == "dynamic":
        for shape, colour in (("sphere", "purple"), ("box", "orange")):
            pos = np.array([rng.uniform(0.35, 0.8), rng.uniform(-0.3, 0.3), 0.03])
            vis = (p.createVisualShape(p.GEOM_SPHERE, radius=0.03, rgbaColor=S.COLOURS[colour], physicsClientId=cid)
                   if shape == "sphere" else
                   p.createVisualShape(p.GEOM_BOX, halfExtents=(0.03, 0.03, 0.03), rgbaColor=S.COLOURS[colour],
                                       physicsClientId=cid))
            body = p.createMultiBody(0, -1, vis, basePosition=pos, physicsClientId=cid)
            speed, ang = rng.uniform(0.1, 0.25), rng.uniform(0, 2 * np.pi)
            w.movers.append((body, np.array([np.cos(ang), np.sin(ang), 0.0]) * speed))
    for _ in range(20):
        p.stepSimulation(physicsClientId=cid)
    return p, w, task_id, rng


def run_episode(params: dict[str, Any], index: int) -> tuple[np.ndarray, np.ndarray, int]:
    """``(frames (T, H, W, 3) uint8, actions (T, 7) float32, task id)`` of episode ``index``."""
    from wmprobe.data.sim import scene as S
    from wmprobe.data.sim.tasks import TASKS, Expert
    p, w, task_id, rng = make_world(params, index)
    task = TASKS[task_id]
    pos = {c: S.body_pos(p, w, b) for c, b in w.blocks.items()}
    yaw = {c: S.body_yaw(p, w, b) for c, b in w.blocks.items()}
    expert = Expert(task, pos, yaw, rng)
    T = params["steps"]
    frames = np.empty((T, params["size"], params["size"], 3), np.uint8)
    actions = np.empty((T, 7), np.float32)
    for t in range(T):
        frames[t] = S.render(p, w)
        ee, _ = S.ee_pose(p, w)
        a = expert.act(w.target_pos, float(w.target_euler[2]), ee)
        before_pos, before_eul = w.target_pos.copy(), w.target_euler.copy()
        S.apply_action(p, w, a)
        # record what was applied (after workspace clipping), so a_t really moves o_t -> o_t+1
        actions[t, :3] = w.target_pos - before_pos
        actions[t, 3:6] = w.target_euler - before_eul
        actions[t, 6] = a[6]
    return frames, actions, task_id


def _work(args):
    return run_episode(*args)


def generate(suite: str, episodes: int, *, size: int = 64, seed: int = 0, steps: int | None = None,
             camera: str = "front", workers: int | None = None, progress: bool = True) -> EpisodeStore:
    from wmprobe.data.sim.tasks import TASKS
    params = _params(suite, episodes, size, seed, steps, camera)
    workers = max(1, min(workers or min(os.cpu_count() or 1, 4), episodes))
    jobs = [(params, i) for i in range(episodes)]
    bar = None
    if progress and os.environ.get("WMPROBE_QUIET") != "1":
        from tqdm.auto import tqdm
        bar = tqdm(total=episodes, desc=f"simulate {suite}", unit="ep", leave=False)
    results = []
    if workers == 1:
        for j in jobs:
            results.append(_work(j))
            bar and bar.update(1)
    else:
        # fork: workers need only numpy + pybullet and must not re-import the caller's __main__
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        with ctx.Pool(workers) as pool:
            for r in pool.imap(_work, jobs, chunksize=1):
                results.append(r)
                bar and bar.update(1)
    bar and bar.close()
    return from_episodes([(f, a) for f, a, _ in results], [t for _, _, t in results], fps=30.0,
                         action_names=ACTION_NAMES, action_groups=ACTION_GROUPS,
                         task_names=[t.name for t in TASKS], source={"kind": "wmprobe-sim", **params},
                         name=f"sim-{suite}")


def generate_to(suite: str, dest: str | os.PathLike, **kw: Any) -> Path:
    return generate(suite, **kw).save(dest)


def cache_key(suite: str, episodes: int, *, size: int = 64, seed: int = 0, steps: int | None = None,
              camera: str = "front") -> str:
    params = _params(suite, episodes, size, seed, steps, camera)
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]


def cached_generate(suite: str, cache_dir: str | os.PathLike, episodes: int, *, size: int = 64, seed: int = 0,
                    steps: int | None = None, camera: str = "front", workers: int | None = None,
                    progress: bool = True) -> EpisodeStore:
    """Generate once per parameter set; later calls memory-map the stored copy."""
    key = cache_key(suite, episodes, size=size, seed=seed, steps=steps, camera=camera)
    path = Path(cache_dir) / f"sim-{suite}-{key}"
    if (path / "meta.json").exists():
        return EpisodeStore.load(path)
    generate_to(suite, path, episodes=episodes, size=size, seed=seed, steps=steps, camera=camera,
                workers=workers, progress=progress)
    return EpisodeStore.load(path)
