"""The embedded robot simulator: pybullet Franka Panda, scripted experts, offscreen CPU rendering.

Suites (``SUITES``):
- ``static``: a CALVIN-like table where only what the robot touches moves (12 tasks, ``tasks.TASKS``).
- ``dynamic``: the same table with a ball and a cube gliding across it on their own, independent of the
  robot, so frame changes are not all caused by the action (14 tasks: the 12 plus follow-the-mover).

``generate(suite, episodes, ...)`` returns an EpisodeStore, ``generate_to`` writes one, ``cached_generate``
reuses a store generated with the same parameters (key: parameters + ``GENERATOR_VERSION``). Actions are
7-DoF end-effector deltas (see ``scene``); episode ``i`` depends only on ``(suite, seed, i)`` (see
``generate``). Modules: ``scene`` (world, control, rendering), ``tasks`` (tasks and scripted experts),
``generate`` (episodes, workers, cache).
"""
from wmprobe.data.sim.generate import (ACTION_GROUPS, ACTION_NAMES, DEFAULT_STEPS, GENERATOR_VERSION, SUITES,
                                       Episode, cache_key, cached_generate, check_params, episode_world,
                                       generate, generate_to, run_episode, task_order)

__all__ = ["ACTION_GROUPS", "ACTION_NAMES", "DEFAULT_STEPS", "GENERATOR_VERSION", "SUITES", "Episode",
           "cache_key", "cached_generate", "check_params", "episode_world", "generate", "generate_to",
           "run_episode", "task_order"]
