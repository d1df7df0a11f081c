"""Tasks and their scripted experts: waypoint followers with per-episode speed and action noise.

A task names a skill (reach, push, lift, pick-place, stack; in the dynamic suite also follow), the object(s)
it involves and a goal. The expert turns the scene (``scene.snapshot``: name -> (position, yaw)) into waypoints
``Waypoint(pos, yaw, open, hold, tilt)`` and emits the end-effector delta that moves the commanded pose toward
the current one, capped per step, plus Gaussian noise, so actions vary within a task and are not a function of
the task alone. Waypoints are clipped to the workspace (an outside target would never be reached). With the
wrist held fixed (``wrist="fixed"``, the default) the gripper keeps pointing down at yaw 0, the blocks lie
within +-``FIXED_BLOCK_YAW`` of it, and the action is ``(dx, dy, dz, grip)``. With a free wrist the yaw
aligns with the block (modulo 90 degrees) and approaches from a random yaw, so rotation carries signal.
Once the task's waypoints are done, the expert keeps playing (as in CALVIN's play data): it wanders to random
poses (with a free wrist also tilted in roll and pitch), so every axis moves visibly.
``follow`` tasks re-plan every step: the end effector hovers over a mover (the gliding ball or cube).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from wmprobe.data.sim import scene as S

MAX_STEP = 0.06      # metres per control step
MAX_YAW = 0.15       # radians per control step (yaw)
MAX_TILT = 0.08      # radians per control step (roll, pitch)
BLOCK = 0.022        # block half-size (m)
PUSH_PACE = 0.35     # the push stroke at a third of the pace: a block hit at full speed is flung off the table
CARRY_PACE = 0.6     # a grasped block is carried slower, or it slips out of the fingers
WRIST_MODES = ("fixed", "free")
FIXED_BLOCK_YAW = 0.25   # blocks' yaw range (rad) with a fixed wrist: its straight grasp still closes on them


@dataclass(frozen=True)
class Task:
    name: str
    skill: str                     # reach | push | lift | pick-place | stack | follow
    obj: str                       # colour of the manipulated block, or the mover's name (ball, cube)
    goal: tuple[float, float] | str | None = None   # (dx, dy) offset for push/pick-place, colour for stack

    @property
    def offset(self) -> tuple[float, float]:
        """The ``(dx, dy)`` goal offset (m) of a push or pick-place task."""
        if not isinstance(self.goal, tuple):
            raise ValueError(f"task {self.name} ({self.skill}) has no goal offset")
        return self.goal

    @property
    def partner(self) -> str:
        """The colour of the block a stack task puts its block on."""
        if not isinstance(self.goal, str):
            raise ValueError(f"task {self.name} ({self.skill}) names no block to stack on")
        return self.goal


TASKS: tuple[Task, ...] = (
    Task("reach-red", "reach", "red"),
    Task("reach-blue", "reach", "blue"),
    Task("push-red-left", "push", "red", (0.0, 0.12)),
    Task("push-green-right", "push", "green", (0.0, -0.12)),
    Task("push-blue-forward", "push", "blue", (0.12, 0.0)),
    Task("lift-blue", "lift", "blue"),
    Task("lift-yellow", "lift", "yellow"),
    Task("pick-place-red-left", "pick-place", "red", (0.0, 0.15)),
    Task("pick-place-green-back", "pick-place", "green", (-0.12, 0.05)),
    Task("stack-red-on-blue", "stack", "red", "blue"),
    Task("stack-yellow-on-green", "stack", "yellow", "green"),
    Task("pick-place-blue-right", "pick-place", "blue", (0.0, -0.15)),
)
DYNAMIC_TASKS: tuple[Task, ...] = TASKS + (
    Task("follow-ball", "follow", "ball"),
    Task("follow-cube-closed", "follow", "cube", "closed"),
)
BLOCK_COLOURS = ("red", "green", "blue", "yellow")


def suite_tasks(suite: str) -> tuple[Task, ...]:
    """The task variants of a pybullet suite (``static``: 12; ``dynamic``: the same 12 plus 2 follow-the-mover).
    The ``metaworld`` suite's tasks are Meta-World's (``wmprobe.data.sim.metaworld.resolve_tasks``)."""
    if suite == "dynamic":
        return DYNAMIC_TASKS
    if suite == "static":
        return TASKS
    from wmprobe.errors import ConfigError
    raise ConfigError(f"suite {suite!r} has no pybullet task list (the metaworld suite's tasks come from "
                      "wmprobe.data.sim.metaworld.resolve_tasks)")


def _wrap(a: float) -> float:
    """Angle modulo 90 degrees into [-45, 45): a square block and the two-finger grasp repeat every 90."""
    return float((a + np.pi / 4) % (np.pi / 2) - np.pi / 4)


@dataclass(frozen=True)
class Waypoint:
    pos: np.ndarray                      # (3,) m, end-effector target
    yaw: float                           # rad, wrist yaw (wrapped to the block's symmetry)
    open: bool                           # gripper command while going there
    hold: int = 0                        # control steps to stay once reached
    tilt: tuple[float, float] = (0.0, 0.0)   # (roll, pitch) offsets from gripper-down, rad
    pace: float = 1.0                    # fraction of the expert's speed on the way there (contact moves slower)


def waypoints(task: Task, pos: dict[str, np.ndarray], yaw: dict[str, float],
              approach_yaw: float = 0.0) -> list[Waypoint]:
    """The task's waypoints for the scene's object positions ``(3,)`` and yaws; the first, above the object,
    is approached at ``approach_yaw`` and the wrist aligns on the way down."""
    W = Waypoint
    o, y = pos[task.obj], _wrap(yaw[task.obj])
    top = BLOCK * 2
    above = lambda p, h: np.array([p[0], p[1], p[2] + h])  # noqa: E731
    grasp = [W(above(o, 0.12), approach_yaw, True), W(above(o, 0.005), y, True, 1), W(above(o, 0.005), y, False, 3),
             W(above(o, 0.16), y, False, pace=CARRY_PACE)]
    if task.skill == "follow":
        return [W(above(o, 0.09), 0.0, task.goal != "closed", 10**6)]
    if task.skill == "reach":
        return [W(above(o, 0.12), approach_yaw, True), W(above(o, 0.03), y, True, 3)]
    if task.skill == "lift":
        return grasp + [W(above(o, 0.22), y, False, 2, pace=CARRY_PACE)]
    if task.skill == "push":
        d = np.array([*task.offset, 0.0]) / np.linalg.norm(task.offset)
        start = o - d * 0.07
        return [W(np.array([start[0], start[1], 0.1]), approach_yaw, False),
                W(np.array([start[0], start[1], 0.025]), 0.0, False),
                W(np.array([o[0], o[1], 0.025]) + d * 0.12, 0.0, False, 2, pace=PUSH_PACE)]
    if task.skill == "pick-place":
        g = np.clip(o + np.array([*task.offset, 0.0]), S.WORKSPACE_LO, S.WORKSPACE_HI)
        return grasp + [W(above(g, 0.16), y, False, pace=CARRY_PACE), W(above(g, 0.03), y, False, 1, pace=CARRY_PACE),
                        W(above(g, 0.03), y, True, 2),
                        W(above(g, 0.15), y, True)]
    if task.skill == "stack":
        b = pos[task.partner]
        yb = _wrap(yaw[task.partner])
        return grasp + [W(above(b, 0.16), yb, False, pace=CARRY_PACE),
                        W(above(b, top + 0.01), yb, False, 1, pace=CARRY_PACE),
                        W(above(b, top + 0.01), yb, True, 2), W(above(b, 0.16), yb, True)]
    raise ValueError(f"unknown skill {task.skill}")


def _split(scene: dict[str, tuple[np.ndarray, float]]) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    return {n: v[0] for n, v in scene.items()}, {n: v[1] for n, v in scene.items()}


def _clip(wps: list[Waypoint]) -> list[Waypoint]:
    """The waypoints with positions inside the workspace (the arm cannot leave it: an outside target is never
    reached and the expert would stall there)."""
    return [replace(w, pos=np.clip(w.pos, S.WORKSPACE_LO, S.WORKSPACE_HI)) for w in wps]


class Expert:
    """Follows the waypoints, then wanders; ``act(scene, cmd_pos, cmd_euler, ee_pos)`` returns a 7-dim action
    (before clipping; with ``wrist="fixed"`` its rotation deltas are 0 and waypoint yaws and tilts ignored).
    ``scene``: ``scene.snapshot`` (read only by ``follow`` tasks, which re-plan every step); ``cmd_pos (3,)``,
    ``cmd_euler (3,)``: the commanded end-effector pose; ``ee_pos (3,)``: the real one.

    Deltas are computed on the commanded pose; a waypoint counts as reached when the commanded pose is within
    ``0.006 + 2 noise`` m of it and the real end effector is there too (so a lagging arm is waited for)."""

    def __init__(self, task: Task, scene: dict[str, tuple[np.ndarray, float]], rng: np.random.Generator,
                 wrist: str = "fixed"):
        self.task, self.rng, self.fixed = task, rng, wrist == "fixed"
        self.approach_yaw = float(rng.uniform(-0.7, 0.7))
        self.wps = _clip(waypoints(task, *_split(scene), approach_yaw=self.approach_yaw))
        self.i, self.held = 0, 0
        self.speed = rng.uniform(0.7, 1.0)          # per-episode pace
        self.noise = rng.uniform(0.002, 0.006)      # per-episode translation noise (m)

    def _wander(self, last: Waypoint) -> Waypoint:
        """A random pose to play toward once the task is done (same gripper state: a held block stays held)."""
        r = self.rng
        pos = r.uniform([0.42, -0.18, 0.08], [0.68, 0.18, 0.25])  # over the blocks, in view of every camera
        return Waypoint(pos, float(r.uniform(-0.7, 0.7)), last.open, 0, (float(r.uniform(-0.35, 0.35)),
                                                                         float(r.uniform(-0.35, 0.35))))

    def act(self, scene: dict[str, tuple[np.ndarray, float]], cmd_pos: np.ndarray, cmd_euler: np.ndarray,
            ee_pos: np.ndarray) -> np.ndarray:
        if self.task.skill == "follow":
            self.wps = _clip(waypoints(self.task, *_split(scene), approach_yaw=self.approach_yaw))
        wp = self.wps[self.i]
        d = wp.pos - cmd_pos
        dist = float(np.linalg.norm(d))
        cap = MAX_STEP * self.speed * wp.pace
        step = d if dist <= cap else d / dist * cap
        dyaw = float(np.clip(_wrap(wp.yaw - cmd_euler[2]), -MAX_YAW, MAX_YAW))
        dtilt = np.clip(S.HOME_EULER[:2] + np.array(wp.tilt) - cmd_euler[:2], -MAX_TILT, MAX_TILT)
        if self.fixed:
            dyaw, dtilt = 0.0, np.zeros(2)
        tol = 0.006 + 2 * self.noise  # the noise keeps the commanded pose that far off: tighter would stall
        if dist < tol and np.linalg.norm(wp.pos - ee_pos) < 0.02 + tol and abs(dyaw) < 0.05 and \
                np.abs(dtilt).max() < 0.05:
            self.held += 1
            if self.held > wp.hold:
                if self.i == len(self.wps) - 1:
                    self.wps.append(self._wander(wp))
                self.i, self.held = self.i + 1, 0
        a = np.zeros(7, np.float64)
        a[:3] = step + self.rng.normal(0, self.noise, 3)
        rot_noise = np.r_[self.rng.normal(0, 0.01, 2), self.rng.normal(0, 0.02)]  # drawn either way (same stream)
        if not self.fixed:
            a[3:5], a[5] = dtilt + rot_noise[:2], dyaw + rot_noise[2]
        a[6] = 1.0 if wp.open else -1.0
        return a
