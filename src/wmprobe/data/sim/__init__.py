"""The embedded robot simulator: pybullet Franka Panda, scripted experts, offscreen CPU rendering.

Suites (``SUITES``):
- ``static``: a CALVIN-like table where only what the robot touches moves (12 tasks, ``tasks.TASKS``).
- ``dynamic``: the same table with a ball and a cube gliding across it on their own, independent of the
  robot, so frame changes are not all caused by the action (14 tasks: the 12 plus follow-the-mover).

``generate(suite, episodes, ...)`` returns an EpisodeStore, ``generate_to`` writes one, ``cached_generate``
reuses a store generated with the same parameters (key: parameters + ``GENERATOR_VERSION``). Actions are
end-effector deltas (see ``scene``): ``x y z gripper`` with the wrist held fixed (the default), 7-DoF with
``wrist="free"``; stores carry the proprioceptive state per frame and the camera's projection (for the
action-space audit). Episode ``i`` depends only on ``(suite, seed, i)`` (see ``generate``). Modules:
``scene`` (world, control, rendering), ``tasks`` (tasks and scripted experts), ``generate`` (episodes, cache),
``runs`` (the ``tasks`` argument and the episode runner every suite shares), ``metaworld`` (the Meta-World
suite).
"""
from wmprobe.data.sim.generate import (ACTION_GROUPS, ACTION_NAMES, DEFAULT_CAMERA, DEFAULT_STEPS, DEFAULT_WRIST,
                                       FREE_ACTION_GROUPS, FREE_ACTION_NAMES, GENERATOR_VERSION, STATE_NAMES,
                                       SUITES, Episode, action_space, cache_key, cached_generate, camera_meta,
                                       check_params, episode_world, generate, generate_to, run_episode,
                                       task_order)

__all__ = ["ACTION_GROUPS", "ACTION_NAMES", "DEFAULT_CAMERA", "DEFAULT_STEPS", "DEFAULT_WRIST",
           "FREE_ACTION_GROUPS", "FREE_ACTION_NAMES", "GENERATOR_VERSION", "STATE_NAMES", "SUITES", "Episode",
           "action_space", "cache_key", "cached_generate", "camera_meta", "check_params", "episode_world",
           "generate", "generate_to", "run_episode", "task_order"]
