"""Episode generation: one episode per job, parallel worker processes, a parameter-keyed cache.

Episode ``i`` depends only on ``(suite, seed, i)`` and the rendering parameters: its random generator is
seeded from them, its task is ``order[i % n_tasks]`` with ``order`` a seed-shuffled permutation of the
run's tasks (so tasks stay balanced), and every episode runs in a fresh pybullet connection that is closed
when it ends. ``tasks`` (a count, ``"all"``, or names; ``select_tasks``) picks which of the suite's tasks a
run uses; it changes only the task each episode gets, never its scene. So the arrays are identical with any
number of workers, and the first ``n`` episodes of a run equal a run of ``n`` episodes.

``wrist``: ``fixed`` (the default; actions ``x y z gripper``) or ``free`` (the 7-dim ``x y z roll pitch yaw
gripper`` of generator version 3, with a wrist that turns and tilts). Both draw the same scenes; the blocks'
yaws are scaled down with a fixed wrist. Each store carries the proprioceptive state per frame
(``states``: ``STATE_NAMES``) and, in ``meta["camera"]``, the camera's matrices (``camera_meta``), so the
action-space audit (``wmprobe.data.audit``) can measure how far each action axis moves the image.
"""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from wmprobe._fs import mark_used
from wmprobe._hashing import json_hash
from wmprobe._mp import context
from wmprobe.data.sim.runs import TaskSpec, run_episodes, select_tasks
from wmprobe.data.store import EpisodeStore, from_episodes, open_cached
from wmprobe.errors import ConfigError, StoreError

GENERATOR_VERSION = 6
DEFAULT_STEPS = 40
DEFAULT_CAMERA = "oblique"    # of the pybullet suites (metaworld: its own, ``metaworld.DEFAULT_CAMERA``)
DEFAULT_WRIST = "fixed"
ACTION_NAMES = ["x", "y", "z", "gripper"]                                   # wrist fixed (the default)
ACTION_GROUPS = {"translation": [0, 1, 2], "gripper": [3]}
FREE_ACTION_NAMES = ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]      # wrist free
FREE_ACTION_GROUPS = {"translation": [0, 1, 2], "rotation": [3, 4, 5], "gripper": [6]}
STATE_NAMES = ["ee_x", "ee_y", "ee_z", "finger_opening"]
FREE_STATE_NAMES = ["ee_x", "ee_y", "ee_z", "ee_roll", "ee_pitch", "ee_yaw", "finger_opening"]
SUITES = {
    "static": "CALVIN-like table: only what the robot touches moves (reach, push, lift, pick-place, stack)",
    "dynamic": "the same table with a ball and a cube gliding across it on their own; adds follow-the-mover tasks",
    "metaworld": "Meta-World on MuJoCo (Sawyer, 16 MT50 tasks, noisy experts, 4-dim xyz+gripper); wmprobe[metaworld]",
}


@dataclass
class Episode:
    """``frames (T, H, W, 3) uint8``, ``actions (T, A) float32`` (A = 4 with a fixed wrist, 7 free;
    ``actions[t]`` moves ``frames[t]`` to ``frames[t+1]``), ``task`` id, ``ee (T+1, 3)`` end-effector positions
    (m), ``ee_quat (T+1, 4)`` orientations (x, y, z, w) and ``fingers (T+1,)`` finger openings (m) at each frame
    and after the last action, ``states (T, S) float32`` (``state_names``), ``noise``: the expert's translation
    noise std (m), ``seg (T, H, W) int32`` body id per pixel when asked for, ``bodies``: name -> body id."""

    frames: np.ndarray
    actions: np.ndarray
    task: int
    ee: np.ndarray
    ee_quat: np.ndarray
    seg: np.ndarray | None
    bodies: dict[str, int]
    fingers: np.ndarray | None = None
    states: np.ndarray | None = None
    noise: float = 0.0


def _pybullet_tasks(suite: str, tasks: TaskSpec) -> list[str] | None:
    """The task names of a pybullet run, or None when it uses all the suite's tasks in their order (then
    ``params`` carry no ``tasks`` key, so the default run keeps its cache key)."""
    from wmprobe.data.sim.tasks import suite_tasks
    names = [t.name for t in suite_tasks(suite)]
    chosen = select_tasks(tasks, names, names, f"the {suite} suite")
    return None if chosen == names else chosen


def check_params(suite: str, episodes: int, size: int = 64, seed: int = 0, steps: int | None = None,
                 camera: str | None = None, tasks: TaskSpec = None, wrist: str | None = None) -> dict[str, Any]:
    """The resolved, validated parameters of a generation run (recorded as ``meta["source"]``; they key the
    cache). ``camera``: None is the suite's default (``oblique``; metaworld ``corner``). ``tasks``: see
    ``select_tasks`` (pybullet suites: over ``tasks.suite_tasks``, default all; metaworld:
    ``metaworld.resolve_tasks``, default its 16). ``wrist``: ``fixed`` (None) or ``free`` (pybullet suites;
    Meta-World's wrist is always fixed)."""
    from wmprobe.data.sim.scene import CAMERAS
    from wmprobe.data.sim.tasks import WRIST_MODES
    if suite not in SUITES:
        raise ConfigError(f"unknown simulator suite '{suite}': choose one of {sorted(SUITES)}")
    wrist = wrist or DEFAULT_WRIST
    if wrist not in WRIST_MODES:
        raise ConfigError(f"unknown wrist mode '{wrist}': choose one of {list(WRIST_MODES)}")
    if suite == "metaworld":  # its own cameras (default 'corner'; 'front' is an alias), steps and tasks
        if wrist != "fixed":
            raise ConfigError("the metaworld suite has no free wrist (its Sawyer keeps the gripper pointing down)")
        from wmprobe.data.sim.metaworld import check_params as metaworld_params
        return metaworld_params(episodes, size, seed, steps, camera, tasks)
    camera = camera or DEFAULT_CAMERA
    if camera not in CAMERAS:
        raise ConfigError(f"unknown camera '{camera}': choose one of {sorted(CAMERAS)}")
    if int(episodes) < 1 or int(size) < 16 or (steps is not None and int(steps) < 2):
        raise ConfigError(f"simulator: need episodes >= 1, size >= 16, steps >= 2 (got {episodes}, {size}, {steps})")
    params = {"suite": suite, "episodes": int(episodes), "size": int(size), "seed": int(seed),
              "steps": int(steps or DEFAULT_STEPS), "camera": camera, "wrist": wrist, "version": GENERATOR_VERSION}
    chosen = _pybullet_tasks(suite, tasks)
    return params if chosen is None else {**params, "tasks": chosen}


def run_tasks(params: dict[str, Any]) -> tuple[Any, ...]:
    """The ``tasks.Task`` objects of a pybullet run, in task-id order (``params["tasks"]`` or the suite's)."""
    from wmprobe.data.sim.tasks import suite_tasks
    every = suite_tasks(params["suite"])
    if "tasks" not in params:
        return every
    by_name = {t.name: t for t in every}
    return tuple(by_name[n] for n in params["tasks"])


def task_order(suite: str, seed: int, n_tasks: int | None = None) -> np.ndarray:
    """``(n_tasks,) int64``: the seed-shuffled task order; episode ``i`` gets ``order[i % n_tasks]``
    (``n_tasks`` defaults to the number of the suite's tasks)."""
    from wmprobe.data.sim.tasks import suite_tasks
    n = len(suite_tasks(suite)) if n_tasks is None else int(n_tasks)
    return np.random.default_rng([seed, 7]).permutation(n)


@contextlib.contextmanager
def episode_world(params: dict[str, Any], index: int) -> Iterator[tuple[Any, Any, int, np.random.Generator]]:
    """``(pybullet, world, task id, rng)`` of episode ``index``, settled before its first frame, in a fresh
    connection that is closed on exit."""
    from wmprobe.data.sim import scene as S
    from wmprobe.data.sim.tasks import BLOCK, BLOCK_COLOURS, FIXED_BLOCK_YAW
    suite, n_tasks = params["suite"], len(run_tasks(params))
    rng = np.random.default_rng([params["seed"], index, 1 if suite == "dynamic" else 0])
    task_id = int(task_order(suite, params["seed"], n_tasks)[index % n_tasks])
    p, cid = S.connect()
    try:
        w = S.build(p, cid, params["size"], params["camera"])
        S.populate(p, w, rng, BLOCK_COLOURS, BLOCK, distractors=suite == "dynamic",
                   max_yaw=FIXED_BLOCK_YAW if params.get("wrist", DEFAULT_WRIST) == "fixed" else 0.7)
        yield p, w, task_id, rng
    finally:
        p.disconnect(physicsClientId=cid)


def action_space(wrist: str) -> tuple[list[str], dict[str, list[int]], list[str]]:
    """``(action names, action groups, state names)`` of a wrist mode (``fixed`` or ``free``)."""
    if wrist == "free":
        return list(FREE_ACTION_NAMES), {g: list(v) for g, v in FREE_ACTION_GROUPS.items()}, list(FREE_STATE_NAMES)
    return list(ACTION_NAMES), {g: list(v) for g, v in ACTION_GROUPS.items()}, list(STATE_NAMES)


def _state(ee: np.ndarray, quat: np.ndarray, fingers: float, free: bool) -> np.ndarray:
    """One frame's proprioceptive state: EE position (m), with a free wrist its XYZ Euler angles relative to
    gripper-down (roll wrapped about pi, so it is continuous there; rad), and the finger opening (m)."""
    if not free:
        return np.r_[ee, fingers]
    import pybullet as p
    eul = np.array(p.getEulerFromQuaternion(quat))
    eul[0] = (eul[0] % (2 * np.pi)) - np.pi   # roll about pi (gripper down) -> about 0
    return np.r_[ee, eul, fingers]


def run_episode(params: dict[str, Any], index: int, seg: bool = False) -> Episode:
    """Simulate episode ``index``: the suite's scripted expert acts for ``params["steps"]`` control steps."""
    from wmprobe.data.sim import scene as S
    from wmprobe.data.sim.tasks import Expert
    T, size = params["steps"], params["size"]
    wrist = params.get("wrist", DEFAULT_WRIST)
    free = wrist == "free"
    names, _, state_names = action_space(wrist)
    frames = np.empty((T, size, size, 3), np.uint8)
    masks = np.empty((T, size, size), np.int32) if seg else None
    actions = np.empty((T, len(names)), np.float32)
    ee, ee_quat, fingers = np.empty((T + 1, 3)), np.empty((T + 1, 4)), np.empty(T + 1)
    with episode_world(params, index) as (p, w, task_id, rng):
        expert = Expert(run_tasks(params)[task_id], S.snapshot(p, w), rng, wrist=wrist)
        for t in range(T):
            if masks is not None:   # seg
                frames[t], masks[t] = S.render(p, w, seg=True)
            else:
                frames[t] = S.render(p, w)
            ee[t], ee_quat[t] = S.ee_pose(p, w, quat=True)
            fingers[t] = S.finger_opening(p, w)
            a = expert.act(S.snapshot(p, w), w.target_pos, w.target_euler, ee[t])
            before_pos, before_eul = w.target_pos.copy(), w.target_euler.copy()
            S.apply_action(p, w, a if free else np.r_[a[:3], a[6]])
            # record what was applied (after workspace clipping), so a_t really moves o_t -> o_t+1
            actions[t, :3] = w.target_pos - before_pos
            if free:
                actions[t, 3:6] = w.target_euler - before_eul
            actions[t, -1] = 1.0 if a[6] > 0 else -1.0
        ee[T], ee_quat[T] = S.ee_pose(p, w, quat=True)
        fingers[T] = S.finger_opening(p, w)
        bodies = {"robot": w.robot, **w.blocks, **{n: b for n, (b, _) in w.movers.items()}}
    states = np.stack([_state(ee[t], ee_quat[t], fingers[t], free) for t in range(T)]).astype(np.float32)
    return Episode(frames, actions, task_id, ee, ee_quat, masks, bodies, fingers, states, float(expert.noise))


def _job(args: tuple[dict[str, Any], int]) -> tuple[np.ndarray, np.ndarray, int, np.ndarray, float]:
    ep = run_episode(*args)
    assert ep.states is not None, "run_episode records the state of every frame"
    return ep.frames, ep.actions, ep.task, ep.states, ep.noise


def camera_meta(camera: str, size: int, wrist: str = DEFAULT_WRIST) -> dict[str, Any]:
    """What the audit needs to measure image motion (``meta["camera"]`` of a generated store): the camera's
    ``view`` and ``proj`` matrices (16 floats each, column-major, pybullet's convention: pixel
    ``u = (ndc_x + 1) / 2 * size``, ``v = (1 - ndc_y) / 2 * size``), the image ``size``, ``action_to_world``
    (the world displacement in m of one unit of each translation axis), ``state_position`` (the state columns
    holding the EE position, m) and ``gripper``: the world direction along which the fingers open (at the
    home pose), their full travel (m) and the state column of the opening."""
    from wmprobe.data.sim import scene as S
    view, proj = S.camera_matrices(camera)
    _, _, state_names = action_space(wrist)
    p, cid = S.connect()
    try:
        w = S.build(p, cid, 16, camera)
        axis = S.finger_axis(p, w)
    finally:
        p.disconnect(physicsClientId=cid)
    return {"name": camera, "size": int(size), "view": [float(v) for v in view], "proj": [float(v) for v in proj],
            "action_to_world": {"x": [1.0, 0.0, 0.0], "y": [0.0, 1.0, 0.0], "z": [0.0, 0.0, 1.0]},
            "state_position": ["ee_x", "ee_y", "ee_z"],
            "gripper": {"axis": "gripper", "finger_axis_world": [round(float(v), 6) for v in axis],
                        "travel_m": 0.08, "state": "finger_opening"}}


def _context() -> mp.context.BaseContext:
    return context(["wmprobe.data.sim.generate", "wmprobe.data.sim.scene", "pybullet"])


def generate(suite: str, episodes: int, *, size: int = 64, seed: int = 0, steps: int | None = None,
             camera: str | None = None, workers: int | None = None, progress: bool = True,
             tasks: TaskSpec = None, wrist: str | None = None) -> EpisodeStore:
    """Simulate ``episodes`` episodes of ``suite`` into an in-memory EpisodeStore.

    frames ``(episodes * steps, size, size, 3) uint8``; actions ``(episodes * steps, A) float32`` (A = 4,
    ``x y z gripper``, with ``wrist="fixed"``, the default; 7 with ``"free"``); states ``(episodes * steps, S)
    float32`` (``meta["state_names"]``: EE position, with a free wrist its orientation, finger opening).
    ``camera``: one of ``scene.CAMERAS`` (default ``oblique``). ``workers`` processes (default
    ``min(cpu count, 4)``) never change the result. A progress bar goes to stderr when ``progress`` (and
    the session is not quiet, ``wmprobe._progress``). ``tasks``: a count, ``"all"`` or task names
    (``select_tasks``; default: all of a pybullet suite's, the 16 ``DEFAULT_TASKS`` of ``metaworld``);
    ``meta["task_names"]`` are the
    run's tasks. ``meta["camera"]``: ``camera_meta``; ``meta["expert_noise"]``: the per-episode std (m) of the
    expert's translation noise. ``metaworld``: see ``wmprobe.data.sim.metaworld``."""
    params = check_params(suite, episodes, size, seed, steps, camera, tasks, wrist)
    if suite == "metaworld":
        from wmprobe.data.sim.metaworld import generate_metaworld
        return generate_metaworld(episodes, size=size, seed=seed, steps=steps, camera=camera, workers=workers,
                                  progress=progress, tasks=tasks)
    results = run_episodes(_job, params, workers, _context, f"simulate {suite}", progress)
    names, groups, state_names = action_space(params["wrist"])
    store = from_episodes([(f, a) for f, a, *_ in results], [r[2] for r in results], fps=_fps(),
                          action_names=names, action_groups=groups, task_names=[t.name for t in run_tasks(params)],
                          source={"kind": "wmprobe-sim", **params}, name=f"sim-{suite}",
                          states=[r[3] for r in results], state_names=state_names,
                          extra_meta={"camera": camera_meta(params["camera"], params["size"], params["wrist"]),
                                      "expert_noise": {"translation_std_m": [round(r[4], 6) for r in results]}})
    return store


def _fps() -> float:
    from wmprobe.data.sim.scene import FPS
    return float(FPS)


def generate_to(suite: str, dest: str | os.PathLike, **kw: Any) -> Path:
    """``generate(suite, **kw)`` written atomically to ``dest`` (an EpisodeStore directory)."""
    return generate(suite, **kw).save(dest)


def up_to_date(suite: str, dest: str | os.PathLike, *, episodes: int, size: int = 64, seed: int = 0,
               steps: int | None = None, camera: str | None = None, tasks: TaskSpec = None,
               wrist: str | None = None) -> bool:
    """Whether ``dest`` holds a valid store generated with these parameters (``meta["source"]`` equal to
    ``check_params``, generator version included), so generating again would write the same arrays."""
    params = check_params(suite, episodes, size, seed, steps, camera, tasks, wrist)
    if not (Path(dest) / "meta.json").is_file():
        return False
    try:
        src = EpisodeStore.load(dest).meta.get("source") or {}
    except StoreError:
        return False
    return src.get("kind") == "wmprobe-sim" and {k: src.get(k) for k in params} == params and \
        set(src) - {"kind", "packages"} == set(params)


def cache_key(suite: str, episodes: int, *, size: int = 64, seed: int = 0, steps: int | None = None,
              camera: str | None = None, tasks: TaskSpec = None, wrist: str | None = None) -> str:
    """12 hex digits of sha256 over the resolved parameters (task names, wrist mode and generator version
    included)."""
    params = check_params(suite, episodes, size, seed, steps, camera, tasks, wrist)
    return json_hash(params, 12)


def cached_generate(suite: str, cache_dir: str | os.PathLike, episodes: int, *, size: int = 64, seed: int = 0,
                    steps: int | None = None, camera: str | None = None, workers: int | None = None,
                    progress: bool = True, tasks: TaskSpec = None, wrist: str | None = None) -> EpisodeStore:
    """Generate once per parameter set into ``cache_dir/sim-SUITE-KEY``; later calls memory-map that copy."""
    key = cache_key(suite, episodes, size=size, seed=seed, steps=steps, camera=camera, tasks=tasks, wrist=wrist)
    path = Path(cache_dir) / f"sim-{suite}-{key}"
    store = open_cached(path)  # None when absent, or corrupt (then moved aside with a warning): regenerate
    if store is None:
        from filelock import FileLock
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock"):  # two processes asking at once generate it once
            store = open_cached(path)
            if store is None:
                generate_to(suite, path, episodes=episodes, size=size, seed=seed, steps=steps, camera=camera,
                            workers=workers, progress=progress, tasks=tasks, wrist=wrist)
                store = EpisodeStore.load(path)
    mark_used(path)  # `wmprobe cache gc` keeps what studies use
    return store
