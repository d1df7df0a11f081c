"""Demonstrations for the control policies: scripted-expert episodes in the embedded simulator, cut at success.

A ``Demo`` is one episode of the scripted expert: the actions it applied ``(T, A)`` (the dataset's layout: the
translation actually applied after workspace clipping, the gripper command as +-1), the privileged state of
every frame ``(T, STATE_DIM)`` (``privileged_state``), optionally the rendered frames ``(T, H, W, 3) uint8``,
and ``success_step``: the first step at which the task's success predicate holds after the action (None: the
expert did not succeed within the episode). Behaviour cloning trains on frames ``0 .. success_step`` only: once
its task is done the expert keeps playing (it wanders to random poses), and those frames would teach the
policy to leave the goal.

- ``replay(params, index)``: episode ``index`` of a generated dataset (the generator's own world, task and
  expert random stream), without rendering; its actions must equal the stored ones (``check_replay``).
- ``expert_demo(params, task, index, render=...)``: a fresh demonstration of ``task`` from the scene of
  episode ``index`` (``DEMO_OFFSET + ...``: indices no dataset and no rollout reaches).

``privileged_state`` (``STATE_DIM = 16``) is the information the scripted expert acts on, in the end effector's
frame: end-effector position (3), commanded target minus end effector (3: the arm lags its target), gripper
command (+-1), finger opening (m), the task's object minus the end effector (3), the task's goal block minus
the end effector (3; zeros when the goal is not a block), the task's xy goal minus the end effector's xy (2;
zeros for tasks without one). The goal of push / pick-place is fixed by the initial scene, as the predicate's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

DEMO_OFFSET = 2_000_000      # demonstration episode indices (rollouts use ROLLOUT_OFFSET = 1_000_000)
STATE_DIM = 16
Snapshot = Mapping[str, tuple[np.ndarray, float]]


@dataclass
class Demo:
    task: str
    index: int
    actions: np.ndarray               # (T, A) float32
    states: np.ndarray                # (T, STATE_DIM) float32
    frames: np.ndarray | None         # (T, H, W, 3) uint8 when rendered
    success_step: int | None          # first step whose action made the task succeed; None: never

    @property
    def used(self) -> int:
        """Frames behaviour cloning trains on: up to and including the success step (0 without success)."""
        return 0 if self.success_step is None else self.success_step + 1


def privileged_state(task: Any, initial: Snapshot, now: Snapshot, ee: np.ndarray, target: np.ndarray,
                     grip_open: bool, fingers: float) -> np.ndarray:
    """``(STATE_DIM,) float32`` (module doc) for a ``tasks.Task`` in scene ``now`` (``initial``: its first
    snapshot), end-effector position ``ee (3,)``, commanded target ``target (3,)``."""
    from wmprobe.data.sim.success import goal_xy
    ee = np.asarray(ee, np.float64)
    obj = np.asarray(now[task.obj][0], np.float64) - ee
    gob = (np.asarray(now[task.goal][0], np.float64) - ee) if isinstance(task.goal, str) and task.goal in now \
        else np.zeros(3)
    g = goal_xy(task, initial)
    gxy = g - ee[:2] if g is not None else np.zeros(2)
    return np.concatenate([ee, np.asarray(target, np.float64) - ee, [1.0 if grip_open else -1.0, fingers],
                           obj, gob, gxy]).astype(np.float32)


def _episode(params: dict[str, Any], index: int, task_name: str | None, render: bool,
             max_steps: int, stop_after: int | None) -> Demo:
    """Run the expert in episode ``index`` of ``params`` (``task_name``: narrow the world to that task).
    Stops ``stop_after`` steps after the first success (None: runs ``max_steps``)."""
    from wmprobe.data.sim import scene as S
    from wmprobe.data.sim.generate import episode_world, run_tasks
    from wmprobe.data.sim.success import SuccessTracker
    from wmprobe.data.sim.tasks import Expert
    wp = {**params, "tasks": [task_name]} if task_name else params
    free = wp.get("wrist", "fixed") == "free"
    acts, states, frames = [], [], []
    with episode_world(wp, index) as (p, w, task_id, rng):
        task = run_tasks(wp)[task_id]
        first = S.snapshot(p, w)
        tracker = SuccessTracker(task, first)
        expert = Expert(task, first, rng, wrist=wp.get("wrist", "fixed"))
        for t in range(max_steps):
            if render:
                frames.append(S.render(p, w))
            snap, ee = S.snapshot(p, w), S.ee_pose(p, w)[0]
            states.append(privileged_state(task, first, snap, ee, w.target_pos, w.grip_open, S.finger_opening(p, w)))
            a = expert.act(snap, w.target_pos, w.target_euler, ee)
            before_pos, before_eul = w.target_pos.copy(), w.target_euler.copy()
            S.apply_action(p, w, a if free else np.r_[a[:3], a[6]])
            rec = np.r_[w.target_pos - before_pos, (w.target_euler - before_eul) if free else [],
                        1.0 if a[6] > 0 else -1.0]
            acts.append(rec.astype(np.float32))
            tracker.update(S.snapshot(p, w), S.ee_pose(p, w)[0], w.grip_open)
            if stop_after is not None and tracker.first_step is not None and t >= tracker.first_step + stop_after:
                break
        name = task.name
    return Demo(name, int(index), np.stack(acts), np.stack(states), np.stack(frames) if render else None,
                tracker.first_step)


def replay(params: dict[str, Any], index: int) -> Demo:
    """Episode ``index`` of the dataset generated with ``params`` (``params["steps"]`` steps), not rendered."""
    return _episode(params, index, None, False, int(params["steps"]), None)


def check_replay(demo: Demo, stored: np.ndarray, where: str) -> None:
    """StoreError when a replayed episode's actions differ from the stored ones (the dataset was not generated
    by this simulator version, or was edited): its success step would be wrong."""
    from wmprobe.errors import StoreError
    stored = np.asarray(stored, np.float32)
    if stored.shape != demo.actions.shape or not np.allclose(stored, demo.actions, atol=1e-5):
        raise StoreError(f"control: {where} does not replay in the embedded simulator (its stored actions differ "
                         "from the scripted expert's); regenerate the dataset with this wmprobe version")


def expert_demo(params: dict[str, Any], task: str, index: int, *, render: bool, max_steps: int = 80,
                stop_after: int = 8) -> Demo:
    """A fresh demonstration of ``task`` from the scene of episode ``index`` (use ``DEMO_OFFSET + ...``), run
    until ``stop_after`` steps past its first success or ``max_steps``; frames rendered when ``render``."""
    return _episode(params, index, task, render, max_steps, stop_after)
