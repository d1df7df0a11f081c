"""One pybullet world: a Franka Panda over a table with coloured blocks, rendered offscreen on the CPU.

Control: end-effector deltas applied to the end-effector target pose, which is clipped to the workspace and
reached by inverse kinematics with ``SUBSTEPS`` physics steps of 1/240 s per control step. With the wrist
held fixed (the default) ``a = (dx, dy, dz, grip)``; with a free wrist (7-DoF, as LIBERO and CALVIN)
``a = (dx, dy, dz, droll, dpitch, dyaw, grip)``; translation in metres and rotation in radians per control
step; ``grip`` > 0 opens the fingers, <= 0 closes them. ``a_t`` moves ``o_t`` to ``o_{t+1}``.

Rendering: pybullet's TinyRenderer (``ER_TINY_RENDERER``), no GL needed, ``size x size`` RGB uint8, from one
of ``CAMERAS`` (``oblique``, the default, sees each translation axis along its own image direction; ``front``
projects x and z onto one image direction); robot links wholly outside the view are skipped, bit-identically
(``wmprobe.data.sim.cull``). ``camera_matrices`` and ``project`` give the pinhole
projection (world points -> pixels) that the renderer uses.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

SUBSTEPS = 12
FPS = 240 / SUBSTEPS
FOV = 45.0                # vertical field of view of the cameras, degrees (CAMERA_FOV: the exceptions)
CAMERA_FOV = {"oblique": 40.0}
TABLE_Z = 0.0
WORKSPACE_LO = np.array([0.35, -0.25, 0.03])
WORKSPACE_HI = np.array([0.75, 0.25, 0.35])
MOVER_AREA = ((0.38, 0.72), (-0.22, 0.22))   # x, y range (m) the dynamic suite's distractors glide over
MOVER_SPEED = (0.16, 0.4)                     # their speed range, m/s
HOME_POS = np.array([0.55, 0.0, 0.25])
HOME_EULER = np.array([np.pi, 0.0, 0.0])  # gripper pointing down
ARM_JOINTS = list(range(7))
FINGERS = (9, 10)
EE_LINK = 11
REST = [0.0, -0.2, 0.0, -2.2, 0.0, 2.0, 0.785]
COLOURS = {"red": (0.9, 0.15, 0.1, 1), "green": (0.1, 0.75, 0.2, 1), "blue": (0.15, 0.3, 0.95, 1),
           "yellow": (0.95, 0.85, 0.1, 1), "purple": (0.6, 0.2, 0.8, 1), "orange": (1.0, 0.5, 0.05, 1)}
CAMERAS = {  # name -> (eye, target); measured image directions and motion of `oblique`: docs/data.md
    "oblique": ((0.9, -0.45, 0.5), (0.55, 0.0, 0.10)),
    "front": ((1.05, 0.0, 0.6), (0.5, 0.0, 0.1)),
    "side": ((0.55, -0.8, 0.6), (0.55, 0.0, 0.08)),
    "top": ((0.56, 0.0, 1.1), (0.55, 0.0, 0.0)),
}


@dataclass
class World:
    client: int
    robot: int
    blocks: dict[str, int] = field(default_factory=dict)
    movers: dict[str, tuple[int, np.ndarray]] = field(default_factory=dict)  # name -> (body, velocity)
    target_pos: np.ndarray = field(default_factory=lambda: HOME_POS.copy())
    target_euler: np.ndarray = field(default_factory=lambda: HOME_EULER.copy())
    grip_open: bool = True
    view: list | None = None
    proj: list | None = None
    size: int = 64
    cull: Any = None   # cull.Hulls of the robot, filled at its first render


def quiet_pybullet():
    """The pybullet module, imported with its C-level "pybullet build time: ..." banner (written straight to
    file descriptors 1/2 by the extension, so ``contextlib.redirect_*`` cannot catch it) sent to /dev/null."""
    import os
    import sys
    if "pybullet" in sys.modules:
        return sys.modules["pybullet"]
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        import pybullet
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)
    return pybullet


def connect():
    """``(pybullet module, client id)`` of a new headless (DIRECT) physics server; disconnect when done."""
    p = quiet_pybullet()
    import pybullet_data
    cid = p.connect(p.DIRECT)
    p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=cid)
    return p, cid


def add_box(p, cid: int, half: tuple[float, float, float], pos, colour, mass: float = 0.1, yaw: float = 0.0,
            friction: float = 0.8) -> int:
    col = p.createCollisionShape(p.GEOM_BOX, halfExtents=half, physicsClientId=cid)
    vis = p.createVisualShape(p.GEOM_BOX, halfExtents=half, rgbaColor=colour, physicsClientId=cid)
    body = p.createMultiBody(mass, col, vis, basePosition=pos,
                             baseOrientation=p.getQuaternionFromEuler([0, 0, yaw]), physicsClientId=cid)
    p.changeDynamics(body, -1, lateralFriction=friction, physicsClientId=cid)
    return body


def add_sphere(p, cid: int, radius: float, pos, colour, mass: float = 0.05) -> int:
    col = p.createCollisionShape(p.GEOM_SPHERE, radius=radius, physicsClientId=cid)
    vis = p.createVisualShape(p.GEOM_SPHERE, radius=radius, rgbaColor=colour, physicsClientId=cid)
    return p.createMultiBody(mass, col, vis, basePosition=pos, physicsClientId=cid)


def build(p, cid: int, size: int, camera: str) -> World:
    """Reset the simulation and build the fixed part of the scene (table, robot at home)."""
    p.resetSimulation(physicsClientId=cid)
    p.setGravity(0, 0, -9.81, physicsClientId=cid)
    p.setTimeStep(1 / 240, physicsClientId=cid)
    floor = add_box(p, cid, (1.0, 1.0, 0.01), (0.5, 0.0, -0.01), (0.55, 0.45, 0.35, 1), mass=0)
    p.changeDynamics(floor, -1, lateralFriction=0.6, physicsClientId=cid)
    robot = p.loadURDF("franka_panda/panda.urdf", [0, 0, 0], useFixedBase=True, physicsClientId=cid)
    for j, q in zip(ARM_JOINTS, REST):
        p.resetJointState(robot, j, q, physicsClientId=cid)
    for j in FINGERS:
        p.resetJointState(robot, j, 0.04, physicsClientId=cid)
    w = World(cid, robot, size=size)
    w.view, w.proj = camera_matrices(camera)
    settle_to(p, w, HOME_POS, HOME_EULER, steps=60)
    return w


def camera_matrices(camera: str) -> tuple[list[float], list[float]]:
    """``(view, projection)`` of a camera: pybullet's 4x4 matrices as 16 floats each, column-major."""
    import pybullet as p
    eye, tgt = CAMERAS[camera]
    fov = CAMERA_FOV.get(camera, FOV)
    return list(p.computeViewMatrix(eye, tgt, (0, 0, 1))), list(p.computeProjectionMatrixFOV(fov, 1.0, 0.05, 3.0))


def project(points, view, proj, size: int) -> np.ndarray:
    """Pixel coordinates ``(..., 2)`` (u right, v down; pixel centres at +0.5) of world points ``(..., 3)`` (m)
    under the column-major 16-float ``view`` and ``proj`` matrices of a ``size x size`` image."""
    pts = np.asarray(points, dtype=np.float64)
    m = np.asarray(proj, np.float64).reshape(4, 4).T @ np.asarray(view, np.float64).reshape(4, 4).T
    clip = pts @ m[:3, :3].T + m[:3, 3]
    w = pts @ m[3, :3] + m[3, 3]
    ndc = clip[..., :2] / w[..., None]
    return np.stack([(ndc[..., 0] + 1) / 2 * size, (1 - ndc[..., 1]) / 2 * size], axis=-1)


def populate(p, w: World, rng: np.random.Generator, colours, half: float, distractors: bool,
             max_yaw: float = 0.7) -> None:
    """Blocks of ``colours`` at random non-overlapping poses, yaw within ``+-max_yaw`` rad (the random draws
    do not depend on it: only the scale does); with ``distractors`` a ball and a cube gliding over the table at
    their own random velocities (0.1-0.25 m/s, visual only: they pass through the rest)."""
    placed: list[np.ndarray] = []
    for colour in colours:
        for _ in range(100):
            xy = rng.uniform([0.42, -0.18], [0.68, 0.18])
            if all(np.linalg.norm(xy - q) > 0.09 for q in placed):
                break
        placed.append(xy)
        w.blocks[colour] = add_box(p, w.client, (half,) * 3, (xy[0], xy[1], half + 0.001), COLOURS[colour],
                                   yaw=rng.uniform(-0.7, 0.7) * max_yaw / 0.7)
    if distractors:
        for name, shape, colour in (("ball", "sphere", "purple"), ("cube", "box", "orange")):
            pos = np.array([rng.uniform(*MOVER_AREA[0]), rng.uniform(*MOVER_AREA[1]), 0.03])
            kw = {"radius": 0.03} if shape == "sphere" else {"halfExtents": (0.03, 0.03, 0.03)}
            vis = p.createVisualShape(p.GEOM_SPHERE if shape == "sphere" else p.GEOM_BOX,
                                      rgbaColor=COLOURS[colour], physicsClientId=w.client, **kw)
            body = p.createMultiBody(0, -1, vis, basePosition=pos, physicsClientId=w.client)
            speed, ang = rng.uniform(*MOVER_SPEED), rng.uniform(0, 2 * np.pi)
            w.movers[name] = (body, np.array([np.cos(ang), np.sin(ang), 0.0]) * speed)
    for _ in range(20):
        p.stepSimulation(physicsClientId=w.client)


def ee_pose(p, w: World, quat: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """End-effector ``(position (3,) m, orientation)``: XYZ Euler angles (3,) rad, or with ``quat`` (x, y, z, w)."""
    st = p.getLinkState(w.robot, EE_LINK, computeForwardKinematics=True, physicsClientId=w.client)
    return np.array(st[4]), np.array(st[5] if quat else p.getEulerFromQuaternion(st[5]))


def finger_opening(p, w: World) -> float:
    """The distance between the two fingers (m): 0 closed, 0.08 fully open."""
    return float(sum(p.getJointState(w.robot, j, physicsClientId=w.client)[0] for j in FINGERS))


def finger_axis(p, w: World) -> np.ndarray:
    """``(3,)`` unit world direction along which the fingers open, at the current pose."""
    a, b = (np.array(p.getLinkState(w.robot, j, computeForwardKinematics=True, physicsClientId=w.client)[4])
            for j in FINGERS)
    return (a - b) / max(float(np.linalg.norm(a - b)), 1e-9)


def _drive(p, w: World) -> None:
    quat = p.getQuaternionFromEuler(w.target_euler)
    q = p.calculateInverseKinematics(w.robot, EE_LINK, w.target_pos, quat, maxNumIterations=30,
                                     restPoses=REST + [0, 0, 0.04, 0.04], physicsClientId=w.client)
    p.setJointMotorControlArray(w.robot, ARM_JOINTS, p.POSITION_CONTROL, targetPositions=q[:7],
                                forces=[300] * 7, positionGains=[0.6] * 7, physicsClientId=w.client)
    f = 0.04 if w.grip_open else 0.0
    p.setJointMotorControlArray(w.robot, list(FINGERS), p.POSITION_CONTROL, targetPositions=[f, f],
                                forces=[60, 60], physicsClientId=w.client)


def settle_to(p, w: World, pos, euler, steps: int) -> None:
    w.target_pos, w.target_euler = np.asarray(pos, float).copy(), np.asarray(euler, float).copy()
    for _ in range(steps):
        _drive(p, w)
        p.stepSimulation(physicsClientId=w.client)


def apply_action(p, w: World, a: np.ndarray) -> None:
    """One control step: move the EE target by the action's deltas, set the gripper, advance physics.
    ``a``: ``(4,)`` (dx, dy, dz, grip: the wrist stays as it is) or ``(7,)`` (dx, dy, dz, droll, dpitch,
    dyaw, grip)."""
    a = np.asarray(a, dtype=np.float64)
    if a.shape not in ((4,), (7,)):
        raise ValueError(f"a simulator action has 4 or 7 dims, got shape {a.shape}")
    w.target_pos = np.clip(w.target_pos + a[:3], WORKSPACE_LO, WORKSPACE_HI)
    if len(a) == 7:
        w.target_euler = w.target_euler + a[3:6]
        w.target_euler[:2] = np.clip(w.target_euler[:2], HOME_EULER[:2] - 0.6, HOME_EULER[:2] + 0.6)
    w.grip_open = bool(a[-1] > 0)
    _drive(p, w)  # IK once per control step: the target is constant over its substeps
    for _ in range(SUBSTEPS):
        for body, vel in w.movers.values():  # scripted independent motion (dynamic suite)
            _move(p, w.client, body, vel)
        p.stepSimulation(physicsClientId=w.client)


def _move(p, client: int, body: int, vel: np.ndarray) -> None:
    """One substep (1/240 s) of a mover at velocity ``vel (3,)`` m/s, bouncing off ``MOVER_AREA``'s edges (the
    area the end effector can reach: follow tasks hover above); ``vel`` flips in place at a bounce. Plain float
    arithmetic, the same IEEE operations as ``np.array(pos) + vel / 240.0`` and ``np.clip``: a quarter of their
    Python cost, the same positions bit for bit."""
    pos, orn = p.getBasePositionAndOrientation(body, physicsClientId=client)
    v = vel.tolist()
    new = [pos[0] + v[0] / 240.0, pos[1] + v[1] / 240.0, pos[2] + v[2] / 240.0]
    for ax in (0, 1):
        lo, hi = MOVER_AREA[ax]
        if not lo < new[ax] < hi:
            vel[ax] = -vel[ax]
            new[ax] = min(max(new[ax], lo), hi)
    p.resetBasePositionAndOrientation(body, new, orn, physicsClientId=client)


def render(p, w: World, seg: bool = False, cull: bool = True):
    """``(size, size, 3) uint8`` RGB; with ``seg`` also ``(size, size) int32`` body ids (-1: background).
    ``cull`` (default) skips the robot links wholly outside the view (``cull.hidden_links``): the same pixels,
    RGB and segmentation bit for bit, 1.6-2x faster from the oblique camera at 64 px over expert episodes."""
    from wmprobe.data.sim.cull import hidden_links
    hidden = hidden_links(p, w) if cull else []
    for link, rgba in hidden:
        p.changeVisualShape(w.robot, link, rgbaColor=(*rgba[:3], 0.0), physicsClientId=w.client)
    try:
        _, _, rgba, _, mask = p.getCameraImage(w.size, w.size, w.view, w.proj, renderer=p.ER_TINY_RENDERER,
                                               shadow=0, physicsClientId=w.client)
    finally:
        for link, colour in hidden:
            p.changeVisualShape(w.robot, link, rgbaColor=colour, physicsClientId=w.client)
    rgb = np.asarray(rgba, dtype=np.uint8).reshape(w.size, w.size, 4)[..., :3].copy()
    if not seg:
        return rgb
    return rgb, np.asarray(mask, dtype=np.int32).reshape(w.size, w.size)


def snapshot(p, w: World) -> dict[str, tuple[np.ndarray, float]]:
    """name -> (position (3,) m, yaw rad) of every block and mover, as the scripted expert sees them."""
    bodies = {**w.blocks, **{n: b for n, (b, _) in w.movers.items()}}
    return {n: (body_pos(p, w, b), body_yaw(p, w, b)) for n, b in bodies.items()}


def body_pos(p, w: World, body: int) -> np.ndarray:
    return np.array(p.getBasePositionAndOrientation(body, physicsClientId=w.client)[0])


def body_yaw(p, w: World, body: int) -> float:
    orn = p.getBasePositionAndOrientation(body, physicsClientId=w.client)[1]
    return float(p.getEulerFromQuaternion(orn)[2])
