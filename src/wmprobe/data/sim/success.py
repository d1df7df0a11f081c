"""Success predicates of the embedded pybullet tasks: did the episode do what its task names?

A predicate reads what the scripted expert reads (``scene.snapshot``: name -> (position (3,) m, yaw)), the
end-effector position ``ee (3,)`` and the gripper command, at every control step of a rollout; the first
snapshot (before the first action) fixes the goal of tasks defined relative to the initial scene. An episode
succeeds when its task's predicate holds at some step (``reach`` and ``follow`` tasks: for ``REACH_STEPS`` /
``FOLLOW_STEPS`` consecutive steps), as Meta-World's ``success`` flag is read: the scripted expert finishes its task,
then keeps playing,
and what it does after the goal was reached does not undo the success.

Tolerances (metres; blocks are ``2 * tasks.BLOCK`` = 4.4 cm cubes):
- reach: the end effector within ``REACH_TOL`` of the point 3 cm above the block's centre for ``REACH_STEPS``
  consecutive steps (the expert holds there; a random walk passing by does not count);
- push: the block's centre within ``PLACE_TOL`` (xy) of its initial position plus the task's offset;
- lift: the block raised ``LIFT_HEIGHT`` above its initial height;
- pick-place: the block put down (centre below ``4 * BLOCK``: on the table, or on a block that lies at the
  goal) within ``PLACE_TOL`` (xy) of its initial position plus the offset (clipped to the workspace, as the
  expert's goal is);
- stack: the block within ``STACK_TOL`` (xy) of the base block and on it (its centre 1.6 to 2.6 block
  half-sizes above the base's centre: 2 when resting on it);
- follow: the end effector within ``FOLLOW_TOL`` (xy) of the mover for ``FOLLOW_STEPS`` consecutive steps
  (``follow-cube-closed``: with the gripper closed).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from wmprobe.data.sim import scene as S
from wmprobe.data.sim.tasks import BLOCK, Task

REACH_TOL = 0.04
PLACE_TOL = 0.06
LIFT_HEIGHT = 0.08
STACK_TOL = 0.03
FOLLOW_TOL = 0.05
FOLLOW_STEPS = 10
REACH_STEPS = 3

Snapshot = Mapping[str, tuple[np.ndarray, float]]


def goal_xy(task: Task, initial: Snapshot) -> np.ndarray | None:
    """``(2,)`` the xy goal of a push / pick-place task from the initial scene, else None."""
    if task.skill not in ("push", "pick-place"):
        return None
    start = np.asarray(initial[task.obj][0], float)
    goal = start + np.array([*task.offset, 0.0])
    if task.skill == "pick-place":
        goal = np.clip(goal, S.WORKSPACE_LO, S.WORKSPACE_HI)
    return goal[:2]


def holds(task: Task, initial: Snapshot, now: Snapshot, ee: np.ndarray, grip_open: bool) -> bool:
    """Whether ``task``'s goal condition holds in the scene ``now`` (see the module doc)."""
    pos = np.asarray(now[task.obj][0], float)
    if task.skill == "reach":
        return bool(np.linalg.norm(np.asarray(ee) - (pos + [0, 0, 0.03])) < REACH_TOL)
    if task.skill == "push":
        return bool(np.linalg.norm(pos[:2] - goal_xy(task, initial)) < PLACE_TOL)
    if task.skill == "lift":
        return bool(pos[2] - np.asarray(initial[task.obj][0])[2] > LIFT_HEIGHT)
    if task.skill == "pick-place":
        return bool(np.linalg.norm(pos[:2] - goal_xy(task, initial)) < PLACE_TOL and pos[2] < 4 * BLOCK)
    if task.skill == "stack":
        base = np.asarray(now[task.partner][0], np.float64)
        dz = pos[2] - base[2]
        return bool(np.linalg.norm(pos[:2] - base[:2]) < STACK_TOL and 1.6 * BLOCK < dz < 2.6 * BLOCK)
    if task.skill == "follow":
        near = np.linalg.norm(np.asarray(ee)[:2] - pos[:2]) < FOLLOW_TOL
        return bool(near and (task.goal != "closed" or not grip_open))
    raise ValueError(f"unknown skill {task.skill}")


class SuccessTracker:
    """Feed ``update(now, ee, grip_open)`` once per control step; ``success`` says whether the episode has
    succeeded so far, ``first_step`` when (None: not yet)."""

    def __init__(self, task: Task, initial: Snapshot):
        self.task = task
        self.initial = {n: (np.asarray(p, float).copy(), float(y)) for n, (p, y) in initial.items()}
        self.run = 0
        self.step = 0
        self.first_step: int | None = None

    @property
    def success(self) -> bool:
        return self.first_step is not None

    def update(self, now: Snapshot, ee: np.ndarray, grip_open: bool) -> bool:
        ok = holds(self.task, self.initial, now, ee, grip_open)
        self.run = self.run + 1 if ok else 0
        need = {"follow": FOLLOW_STEPS, "reach": REACH_STEPS}.get(self.task.skill, 1)
        if self.first_step is None and self.run >= need:
            self.first_step = self.step
        self.step += 1
        return self.success
