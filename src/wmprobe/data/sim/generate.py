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
import difflib
import hashlib
import json
import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, Union

import numpy as np

from wmprobe._fs import mark_used
from wmprobe._mp import context, hidden_main
from wmprobe.data.store import EpisodeStore, from_episodes, open_cached
from wmprobe.errors import ConfigError, StoreError

TaskSpec = Union[None, int, str, Sequence[str]]  # None (the suite's default), a count, "all", "a,b", or names
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


def select_tasks(tasks: TaskSpec, names: Sequence[str], default: Sequence[str], label: str,
                 canon: Callable[[str], str] = str) -> list[str]:
    """The task names a run asks for, from ``names`` (all the suite's tasks, in their canonical order).

    ``None`` -> ``default``; ``"all"`` -> ``names``; a count ``N`` (an int or a string of digits) -> the first
    N of ``default`` followed by the other ``names`` in order (``N = len(names)`` is ``names``); a list, or a
    comma-separated string, of names -> those names in that order, each mapped by ``canon``. Unknown names,
    repeats, an empty list and a count outside ``1..len(names)`` are ConfigErrors; an unknown name's error
    lists the close matches."""
    if tasks is None:
        return list(default)
    if isinstance(tasks, str):
        text = tasks.strip()
        if text == "all":
            return list(names)
        tasks = int(text) if text.isdigit() else [t.strip() for t in text.split(",") if t.strip()]
    if isinstance(tasks, (int, np.integer)) and not isinstance(tasks, bool):
        return _first_tasks(int(tasks), names, default, label)
    given = [str(t) for t in tasks]
    chosen = [canon(t) for t in given]
    unknown = [(t, c) for t, c in zip(given, chosen) if c not in names]
    if unknown:
        raise ConfigError(f"{label} has no task " + "; no task ".join(_unknown(t, c, names) for t, c in unknown)
                          + f"; choose among its {len(names)} tasks ({', '.join(names[:6])}, ...), 'all' or a count")
    if not chosen or len(set(chosen)) != len(chosen):
        raise ConfigError(f"{label}: tasks must be a non-empty list without repeats, got {given}")
    return chosen


def _first_tasks(n: int, names: Sequence[str], default: Sequence[str], label: str) -> list[str]:
    """The first ``n`` of ``default`` then the rest of ``names``; all of ``names`` (in order) for ``n = len``."""
    if not 1 <= n <= len(names):
        raise ConfigError(f"{label} has {len(names)} tasks: a task count must be 1..{len(names)}, got {n}")
    if n == len(names):
        return list(names)
    return (list(default) + [t for t in names if t not in default])[:n]


def _unknown(given: str, name: str, names: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    return f"'{given}'" + (f" (did you mean {' or '.join(close)}?)" if close else "")


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
            if seg:
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


def run_episodes(job: Callable[[tuple[dict[str, Any], int]], Any], params: dict[str, Any], workers: int | None,
                 ctx: Callable[[], mp.context.BaseContext], desc: str, progress: bool,
                 on_serial_exit: Callable[[], None] | None = None) -> list[Any]:
    """``[job((params, i)) for i in range(params["episodes"])]``, in order, on ``workers`` processes of the
    context ``ctx()`` (default ``min(cpu count, 4)``; 1 runs in this process, then ``on_serial_exit``), with
    a tqdm bar on stderr when ``progress`` and ``WMPROBE_QUIET`` is not ``1``."""
    n_workers = max(1, min(int(workers or min(os.cpu_count() or 1, 4)), params["episodes"]))
    jobs = [(params, i) for i in range(params["episodes"])]
    bar = None
    if progress and os.environ.get("WMPROBE_QUIET") != "1":
        from tqdm.auto import tqdm
        bar = tqdm(total=len(jobs), desc=desc, unit="ep", leave=False)
    results = []
    try:
        if n_workers == 1:
            try:
                for j in jobs:
                    results.append(job(j))
                    bar is not None and bar.update(1)
            finally:
                if on_serial_exit is not None:
                    on_serial_exit()
        else:
            with hidden_main():
                pool = ctx().Pool(n_workers)
            with pool:
                for r in pool.imap(job, jobs, chunksize=1):
                    results.append(r)
                    bar is not None and bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return results


def generate(suite: str, episodes: int, *, size: int = 64, seed: int = 0, steps: int | None = None,
             camera: str | None = None, workers: int | None = None, progress: bool = True,
             tasks: TaskSpec = None, wrist: str | None = None) -> EpisodeStore:
    """Simulate ``episodes`` episodes of ``suite`` into an in-memory EpisodeStore.

    frames ``(episodes * steps, size, size, 3) uint8``; actions ``(episodes * steps, A) float32`` (A = 4,
    ``x y z gripper``, with ``wrist="fixed"``, the default; 7 with ``"free"``); states ``(episodes * steps, S)
    float32`` (``meta["state_names"]``: EE position, with a free wrist its orientation, finger opening).
    ``camera``: one of ``scene.CAMERAS`` (default ``oblique``). ``workers`` processes (default
    ``min(cpu count, 4)``) never change the result. A tqdm bar goes to stderr when ``progress`` (and
    ``WMPROBE_QUIET`` is not ``1``). ``tasks``: a count, ``"all"`` or task names (``select_tasks``; default:
    all of a pybullet suite's, the 16 ``DEFAULT_TASKS`` of ``metaworld``); ``meta["task_names"]`` are the
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
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]


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
