"""The executor registry: ``EXECUTORS`` maps a study's ``executor.kind`` to its factory (study/executors.py).

Its entries are lazy ``"module:attr"`` targets, so the names (``wmprobe run --executor``'s choices, the
config's check) are known without importing the executors; ``EXECUTORS.get(kind)`` imports the factory,
``factory(cfg, cache_root, study_name, progress, threads, device)`` makes the executor.
"""
from __future__ import annotations

from typing import Any, Callable

from wmprobe.errors import ConfigError
from wmprobe.registry import Registry

EXECUTORS: Registry[Callable[..., Any]] = Registry("executor", error=ConfigError)
EXECUTORS.add("local", "wmprobe.study.executors:_local",
              description="this machine: in process or a pool of clean worker processes")
EXECUTORS.add("submitit", "wmprobe.study.executors:_submitit",
              description="SLURM job arrays through submitit (or its local/debug executors)")
EXECUTORS.add("ray", "wmprobe.study.executors:_ray",
              description="Ray tasks on a cluster, or on a local Ray started here")

__all__ = ["EXECUTORS"]
