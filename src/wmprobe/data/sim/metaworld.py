"""The ``metaworld`` suite: Meta-World (MuJoCo, Sawyer arm) episodes of scripted experts, as an EpisodeStore.

The paper's transfer benchmark. Needs ``pip install 'wmprobe[metaworld]'`` (metaworld 3.1.1, which brings
mujoco 3.3.0 and gymnasium 1.4). Rendering is offscreen by MuJoCo's OpenGL renderer on one GL context per
process; ``MUJOCO_GL`` is set to ``egl`` before mujoco is first imported unless the user set it (``osmesa``
also works, slower).

- Tasks: ``DEFAULT_TASKS`` (16 MT50 tasks whose experts succeed within ~100 steps with the noise below), or
  any list of MT50 names (``"pick-place"`` or ``"pick-place-v3"``), or ``"all"`` for the 50 tasks, or a count
  N (the first N of ``DEFAULT_TASKS`` then the other MT50 tasks in ``ALL_TASKS`` order; 50 is ``"all"``).
- Episode ``i``: task ``order[i % n_tasks]`` (``order`` a permutation seeded by ``seed``, so tasks stay
  balanced); its random task variant (object and goal positions, Meta-World's ``rand_vec``) is drawn by the
  env's own generator seeded from ``(seed, i)``; a fresh env and render context are made and freed per episode.
  So the arrays depend only on ``(seed, i)`` and the parameters, with any number of worker processes.
- Actions ``(T, 4) float32`` ``x y z gripper`` (no rotation axis: Meta-World's Sawyer keeps its gripper
  pointing down). The expert's action plus Gaussian noise (``NOISE_SIGMA`` = 0.1 on x, y, z), clipped to
  [-1, 1]; one unit of x/y/z moves the mocap target by 1 cm (``action_scale`` 1/100). The recorded x, y, z is
  the target displacement actually applied (after Meta-World's workspace clipping) in those units, so
  ``a_t`` moves ``o_t`` to ``o_{t+1}``; gripper is the effort sent to the fingers (+1 closes, -1 opens).
- Frames: ``size x size`` RGB rendered at ``2 size`` without MSAA and averaged 2x2 (supersampling: the same
  anti-aliasing as MuJoCo's default 4x MSAA at about twice the speed), shadows, reflections and skybox off
  (black background). Cameras whose image-up axis points down in the world (``corner``..``corner4``) render
  upside down; those frames are rotated 180 degrees.
- ``fps`` is Meta-World's ``render_fps``, 80: one control step is ``frame_skip`` 5 x 2.5 ms of physics.
"""
from __future__ import annotations

import atexit
import importlib.util
import multiprocessing as mp
import os
import sys
import warnings
from typing import Any

import numpy as np

from wmprobe._mp import context
from wmprobe.data.sim.runs import TaskSpec, run_episodes, select_tasks
from wmprobe.data.store import EpisodeStore, from_episodes
from wmprobe.errors import ConfigError

METAWORLD_VERSION = 1
DEFAULT_STEPS = 100
MAX_STEPS = 500          # Meta-World's max_path_length: env.step refuses to go further
NOISE_SIGMA = 0.1        # std of the Gaussian noise on the expert's x, y, z (action units, 1 = 1 cm)
SUPERSAMPLE = 2          # frames are rendered at SUPERSAMPLE * size and averaged down
ACTION_NAMES = ["x", "y", "z", "gripper"]
ACTION_GROUPS = {"translation": [0, 1, 2], "gripper": [3]}
CAMERAS = ("corner", "corner2", "corner3", "corner4", "topview", "behindGripper", "gripperPOV")
# the pybullet suites' camera names (the CLI and study default is "front") map to the nearest view
CAMERA_ALIASES = {"front": "corner", "side": "corner2", "top": "topview"}
DEFAULT_CAMERA = "corner"
INSTALL_HINT = ("the metaworld suite needs `pip install 'wmprobe[metaworld]'` (metaworld==3.1.1, which brings "
                "mujoco and gymnasium; install with -c constraints.txt)")

# The 50 MT50 tasks (ML45 = 45 train + 5 test of the same names), in metaworld.env_dict order.
ALL_TASKS = (
    "assembly-v3", "basketball-v3", "bin-picking-v3", "box-close-v3", "button-press-topdown-v3",
    "button-press-topdown-wall-v3", "button-press-v3", "button-press-wall-v3", "coffee-button-v3",
    "coffee-pull-v3", "coffee-push-v3", "dial-turn-v3", "disassemble-v3", "door-close-v3", "door-lock-v3",
    "door-open-v3", "door-unlock-v3", "hand-insert-v3", "drawer-close-v3", "drawer-open-v3", "faucet-open-v3",
    "faucet-close-v3", "hammer-v3", "handle-press-side-v3", "handle-press-v3", "handle-pull-side-v3",
    "handle-pull-v3", "lever-pull-v3", "pick-place-wall-v3", "pick-out-of-hole-v3", "pick-place-v3",
    "plate-slide-v3", "plate-slide-side-v3", "plate-slide-back-v3", "plate-slide-back-side-v3",
    "peg-insert-side-v3", "peg-unplug-side-v3", "soccer-v3", "stick-push-v3", "stick-pull-v3", "push-v3",
    "push-wall-v3", "push-back-v3", "reach-v3", "reach-wall-v3", "shelf-place-v3", "sweep-into-v3", "sweep-v3",
    "window-open-v3", "window-close-v3",
)
# MT10 minus peg-insert-side (its noisy expert failed once in 3) plus 7 more MT50 tasks with other objects;
# with NOISE_SIGMA the experts succeeded in 79 of 80 episodes (5 per task) within 100 steps (docs/data.md).
DEFAULT_TASKS = (
    "reach-v3", "push-v3", "pick-place-v3", "door-open-v3", "drawer-open-v3", "drawer-close-v3",
    "button-press-topdown-v3", "window-open-v3", "window-close-v3", "coffee-push-v3", "dial-turn-v3",
    "faucet-open-v3", "handle-press-v3", "lever-pull-v3", "plate-slide-v3", "sweep-into-v3",
)


def _render_hint() -> str:
    if os.environ.get("MUJOCO_GL", "").lower() == "osmesa":
        return "install OSMesa (apt-get install libosmesa6) or set MUJOCO_GL=egl (with libegl1 libgl1-mesa-dri)"
    return ("set MUJOCO_GL=osmesa (CPU rendering, slower; needs libosmesa6) or install EGL and Mesa "
            "(apt-get install libegl1 libgl1-mesa-dri)")


def resolve_tasks(tasks: TaskSpec) -> list[str]:
    """The task names of a run: ``None`` -> ``DEFAULT_TASKS``, ``"all"`` -> the 50 ``ALL_TASKS``, a count N
    (int or digits) -> the first N of ``DEFAULT_TASKS`` then the other MT50 tasks in ``ALL_TASKS`` order (50:
    ``ALL_TASKS``), else the given names (a list or ``"a,b"``; ``-v3`` may be left off). An unknown name is a
    ConfigError listing close matches."""
    return select_tasks(tasks, ALL_TASKS, DEFAULT_TASKS, "the metaworld suite", _canon)


def _canon(name: str) -> str:
    return name if name.endswith("-v3") else f"{name}-v3"


def check_params(episodes: int, size: int = 64, seed: int = 0, steps: int | None = None,
                 camera: str | None = DEFAULT_CAMERA, tasks: TaskSpec = None) -> dict[str, Any]:
    """The resolved, validated parameters of a metaworld run (recorded in ``meta["source"]``; they key the
    cache). Needs no metaworld install."""
    cam = CAMERA_ALIASES.get(camera or DEFAULT_CAMERA, camera or DEFAULT_CAMERA)
    if cam not in CAMERAS:
        raise ConfigError(f"unknown Meta-World camera '{camera}': choose one of {list(CAMERAS)} "
                          f"(or {sorted(CAMERA_ALIASES)} for {[CAMERA_ALIASES[k] for k in sorted(CAMERA_ALIASES)]})")
    n_steps = int(steps or DEFAULT_STEPS)
    if int(episodes) < 1 or int(size) < 16 or not 2 <= n_steps <= MAX_STEPS:
        raise ConfigError(f"metaworld: need episodes >= 1, size >= 16, 2 <= steps <= {MAX_STEPS} "
                          f"(got {episodes}, {size}, {steps})")
    return {"suite": "metaworld", "episodes": int(episodes), "size": int(size), "seed": int(seed),
            "steps": n_steps, "camera": cam, "tasks": resolve_tasks(tasks), "noise": NOISE_SIGMA,
            "version": METAWORLD_VERSION}


def task_order(n_tasks: int, seed: int) -> np.ndarray:
    """``(n_tasks,) int64``: the seed-shuffled task order; episode ``i`` gets ``order[i % n_tasks]``."""
    return np.random.default_rng([seed, 7]).permutation(n_tasks)


def _import() -> tuple[Any, Any, Any]:
    """``(mujoco, ALL_V3_ENVIRONMENTS, ENV_POLICY_MAP)``, or a ConfigError saying what to install or set."""
    if "mujoco" not in sys.modules:
        os.environ.setdefault("MUJOCO_GL", "egl")  # read once, when mujoco is imported
    missing = [m for m in ("metaworld", "mujoco", "gymnasium", "packaging") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"{INSTALL_HINT}: {', '.join(missing)} not installed")
    try:
        import mujoco
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS
        from metaworld.policies import ENV_POLICY_MAP
    except ModuleNotFoundError as exc:
        raise ConfigError(f"{INSTALL_HINT}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - mujoco loads its OpenGL backend (MUJOCO_GL) on import
        raise ConfigError(f"the metaworld suite could not import mujoco with MUJOCO_GL="
                          f"{os.environ.get('MUJOCO_GL')!r} ({type(exc).__name__}: {exc}); {_render_hint()}") from None
    return mujoco, ALL_V3_ENVIRONMENTS, ENV_POLICY_MAP


_GL: list = []  # this process's OpenGL context: made once (Mesa compiles its shaders per context, ~0.4 s)


def _free_gl() -> None:
    """Free the process's GL context (at exit, or when a single-process run ends): EGL contexts left to the
    interpreter's teardown print errors."""
    while _GL:
        _GL.pop().free()


def _render_error(exc: BaseException) -> ConfigError:
    return ConfigError(f"the metaworld suite could not render offscreen with MUJOCO_GL="
                       f"{os.environ.get('MUJOCO_GL')!r} ({type(exc).__name__}: {exc}); {_render_hint()}")


class _Renderer:
    """Offscreen frames of one episode's model from one camera, as ``mujoco.Renderer`` but on the process's one
    GL context: rendered at ``SUPERSAMPLE * size`` without MSAA and averaged down, shadows, reflections and
    skybox off, rotated 180 degrees when the camera's image-up axis points down in the world (the ``corner``
    cameras)."""

    def __init__(self, mujoco: Any, model: Any, data: Any, camera: str, size: int) -> None:
        self.mj, self.model, self.con = mujoco, model, None
        px = SUPERSAMPLE * size
        model.vis.quality.offsamples = 0       # anti-aliasing comes from supersampling instead
        model.vis.quality.shadowsize = 0       # no shadow map to allocate (shadows are off)
        model.vis.global_.offwidth, model.vis.global_.offheight = px, px
        try:
            if not _GL:
                from mujoco import gl_context
                if gl_context.GLContext is None:
                    raise RuntimeError("MUJOCO_GL disables rendering")
                _GL.append(gl_context.GLContext(max(px, 256), max(px, 256)))
                atexit.register(_free_gl)
            _GL[0].make_current()
            self.con = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_50.value)
        except Exception as exc:  # noqa: BLE001 - EGL / OSMesa failures come with many exception types
            raise _render_error(exc) from None
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN.value, self.con)
        self.scene = mujoco.MjvScene(model, maxgeom=10000)
        F = mujoco.mjtRndFlag
        for flag in (F.mjRND_SHADOW, F.mjRND_REFLECTION, F.mjRND_SKYBOX):
            self.scene.flags[flag] = 0
        self.opt, self.pert, self.cam = mujoco.MjvOption(), mujoco.MjvPerturb(), mujoco.MjvCamera()
        self.cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self.cam.fixedcamid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        self.rotate = bool(data.cam_xmat[self.cam.fixedcamid].reshape(3, 3)[2, 1] < 0)  # image-up points down
        self.rect = mujoco.MjrRect(0, 0, px, px)
        self.rgb = np.empty((px, px, 3), np.uint8)

    def render(self, data: Any) -> np.ndarray:
        """``(size, size, 3) uint8`` of the current state."""
        mj = self.mj
        _GL[0].make_current()
        mj.mjv_updateScene(self.model, data, self.opt, self.pert, self.cam, mj.mjtCatBit.mjCAT_ALL.value,
                           self.scene)
        mj.mjr_render(self.rect, self.scene, self.con)
        mj.mjr_readPixels(self.rgb, None, self.rect, self.con)  # rows bottom-up, as OpenGL reads them
        f = self.rgb.astype(np.uint16)
        out = ((f[0::2, 0::2] + f[1::2, 0::2] + f[0::2, 1::2] + f[1::2, 1::2] + 2) // 4).astype(np.uint8)
        return out[:, ::-1] if self.rotate else out[::-1]  # upright: rows flipped; rotated 180: columns flipped

    def close(self) -> None:
        if self.con is not None:
            self.con.free()
        self.con = None


def run_episode(params: dict[str, Any], index: int) -> tuple[np.ndarray, np.ndarray, int]:
    """``(frames (T, size, size, 3) uint8, actions (T, 4) float32, task id)`` of episode ``index``."""
    mujoco, envs, policies = _import()
    names, T, size = params["tasks"], params["steps"], params["size"]
    task_id = int(task_order(len(names), params["seed"])[index % len(names)])
    name = names[task_id]
    env_seed = int(np.random.SeedSequence([params["seed"], index, 11]).generate_state(1)[0])
    rng = np.random.default_rng([params["seed"], index, 12])
    frames = np.empty((T, size, size, 3), np.uint8)
    actions = np.empty((T, 4), np.float32)
    env, renderer = envs[name](), None
    try:
        # as Meta-World's goal-observable envs: the expert reads the goal from the observation; the task
        # variant is drawn by env.np_random (seeded here), never from the global numpy generator
        env._partially_observable = False
        env.__dict__.pop("sawyer_observation_space", None)  # cached with the goal hidden; recomputed
        env._freeze_rand_vec, env.seeded_rand_vec, env._set_task_called = False, True, True
        env.seed(env_seed)
        obs, _ = env.reset()
        policy = policies[name]()
        renderer = _Renderer(mujoco, env.model, env.data, params["camera"], size)
        scale = float(env.action_scale)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Constant\\(s\\) may be too high")
            for t in range(T):
                frames[t] = renderer.render(env.data)
                a = np.clip(np.asarray(policy.get_action(obs), dtype=np.float64), -1.0, 1.0)
                a[:3] = np.clip(a[:3] + rng.normal(0.0, params["noise"], 3), -1.0, 1.0)
                before = env.data.mocap_pos[0].copy()
                obs, *_ = env.step(a.astype(np.float32))
                actions[t, :3] = (env.data.mocap_pos[0] - before) / scale  # what was applied, after clipping
                actions[t, 3] = a[3]
    finally:
        if renderer is not None:
            renderer.close()
        env.close()
    return frames, actions, task_id


def _job(args: tuple[dict[str, Any], int]) -> tuple[np.ndarray, np.ndarray, int]:
    return run_episode(*args)


def _context() -> mp.context.BaseContext:
    return context(["wmprobe.data.sim.metaworld"])


def generate_metaworld(episodes: int, *, size: int = 64, seed: int = 0, steps: int | None = None,
                       camera: str | None = DEFAULT_CAMERA, workers: int | None = None, progress: bool = True,
                       tasks: TaskSpec = None) -> EpisodeStore:
    """Simulate ``episodes`` Meta-World episodes into an in-memory EpisodeStore.

    frames ``(episodes * steps, size, size, 3) uint8``; actions ``(episodes * steps, 4) float32``; ``steps``
    defaults to 100 (most default experts succeed in 50-90). ``workers`` processes (default
    ``min(cpu count, 4)``) never change the result. ``tasks``: None (``DEFAULT_TASKS``), ``"all"``, a count or
    names (``resolve_tasks``)."""
    params = check_params(episodes, size, seed, steps, camera, tasks)
    _import()  # fail here, with the install hint, rather than in every worker
    from metaworld.sawyer_xyz_env import SawyerXYZEnv
    fps = float(SawyerXYZEnv.metadata["render_fps"])  # 80 = 1 / (frame_skip 5 x timestep 2.5 ms)
    results = run_episodes(_job, params, workers, _context, "simulate metaworld", progress, on_serial_exit=_free_gl)
    from importlib.metadata import version
    return from_episodes([(f, a) for f, a, _ in results], [t for _, _, t in results], fps=fps,
                         action_names=ACTION_NAMES, action_groups=ACTION_GROUPS, task_names=params["tasks"],
                         source={"kind": "wmprobe-sim", **params,
                                 "packages": {p: version(p) for p in ("metaworld", "mujoco")}},
                         name="sim-metaworld")
