"""Closed-loop rollouts in the embedded simulator, scored by the tasks' success predicates.

``rollouts(params, tasks, n, horizon, act)`` runs ``n`` rollouts of each task from FRESH initial states:
rollout ``r`` of task ``i`` builds the scene of episode ``ROLLOUT_OFFSET + i * n + r`` of the data's
generation parameters ``params`` (same suite, camera, size, wrist and seed), an index no generated dataset
reaches, so the initial states are held out from every training episode. All rollouts of a call step in
lockstep: each control step renders every live world, calls ``act(frames (B, H, W, 3) uint8, task names)``
once for the batch, applies the actions and updates each world's ``success.SuccessTracker``. A rollout stops
at ``horizon`` steps or at its first success. With ``observe="state"`` nothing is rendered: ``act`` gets each
world's ``demos.privileged_state`` ``(B, STATE_DIM)`` instead (the state ceiling). An ``act`` with a
``reset(n)`` method is stateful (action chunks, ``policy.Ensembler``): it is reset before each lockstep batch
of ``n`` worlds and called as ``act(obs, task names, slots)``, ``slots`` the batch positions of the live worlds.

``act`` returns ``(B, A)``, one action per live world, or ``(B, N, A)``: the next ``N`` actions of each world,
executed open loop (no observation, no rendering, no query in between; ``ChunkActor`` with ``replan = N``).
The next query comes ``N`` steps later, so every world is rendered at steps ``0, N, 2N, ...`` only: ``1 / N``
frames per step. A world that succeeds inside a block stops there (the block's remaining actions are dropped);
the horizon cuts the last block.

``wilson(k, n)``: the Wilson score interval of a success rate (95 %).
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Sequence

import numpy as np

ROLLOUT_OFFSET = 1_000_000
Act = Callable[..., np.ndarray]   # act(obs, task names) or, with reset(n), act(obs, task names, slots)


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """``(low, high)`` Wilson score interval of ``successes / n``; ``(nan, nan)`` for ``n = 0``."""
    if n <= 0:
        return float("nan"), float("nan")
    p = successes / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def _world_params(params: dict[str, Any], task: str) -> dict[str, Any]:
    """``params`` with the task list narrowed to ``task`` (so every index of the run gets that task)."""
    return {**params, "tasks": [task]}


def rollouts(params: dict[str, Any], tasks: Sequence[str], n: int, horizon: int, act: Act,
             *, batch: int = 16, observe: str = "frames") -> list[dict[str, Any]]:
    """One dict per rollout: ``task``, ``index``, ``success`` (bool), ``steps`` (to success, else ``horizon``);
    tasks in the given order, ``n`` each, run ``batch`` at a time in lockstep."""
    jobs = [(t, ROLLOUT_OFFSET + i * n + r) for i, t in enumerate(tasks) for r in range(n)]
    if observe not in ("frames", "state"):
        raise ValueError(f"observe must be 'frames' or 'state', got {observe!r}")
    out: list[dict[str, Any]] = []
    for b in range(0, len(jobs), batch):
        out += _lockstep(params, jobs[b:b + batch], horizon, act, observe)
    return out


def _lockstep(params: dict[str, Any], jobs: Sequence[tuple[str, int]], horizon: int, act: Act,
              observe: str = "frames") -> list[dict]:
    from wmprobe.control.demos import privileged_state
    from wmprobe.data.sim import scene as S
    from wmprobe.data.sim.generate import episode_world, run_tasks
    from wmprobe.data.sim.success import SuccessTracker
    with contextlib.ExitStack() as stack:
        worlds, trackers, firsts = [], [], []
        for task, index in jobs:
            wp = _world_params(params, task)
            p, w, _, _ = stack.enter_context(episode_world(wp, index))
            worlds.append((p, w))
            firsts.append(S.snapshot(p, w))
            trackers.append(SuccessTracker(run_tasks(wp)[0], firsts[-1]))
        steps = [horizon] * len(jobs)
        live = list(range(len(jobs)))
        stateful = hasattr(act, "reset")
        if stateful:
            act.reset(len(jobs))  # type: ignore[attr-defined]

        def observe_one(i: int) -> np.ndarray:
            p, w = worlds[i]
            if observe == "frames":
                return S.render(p, w)
            return privileged_state(trackers[i].task, firsts[i], S.snapshot(p, w), S.ee_pose(p, w)[0],
                                    w.target_pos, w.grip_open, S.finger_opening(p, w))
        t = 0
        while t < horizon and live:
            obs = np.stack([observe_one(i) for i in live])
            names = [jobs[i][0] for i in live]
            actions = np.asarray(act(obs, names, live) if stateful else act(obs, names),
                                 dtype=np.float64)
            block = actions[:, None] if actions.ndim == 2 else actions        # (B, N, A)
            for k in range(min(block.shape[1], horizon - t)):
                for i, a in zip(live, block[:, k]):
                    if trackers[i].success:          # succeeded earlier in this block
                        continue
                    p, w = worlds[i]
                    S.apply_action(p, w, a)
                    if trackers[i].update(S.snapshot(p, w), S.ee_pose(p, w)[0], w.grip_open):
                        steps[i] = t + 1
                t += 1
            live = [i for i in live if not trackers[i].success]
    return [{"task": task, "index": int(index), "success": bool(tr.success), "steps": int(s)}
            for (task, index), tr, s in zip(jobs, trackers, steps)]


def scripted_rollouts(params: dict[str, Any], tasks: Sequence[str], n: int, horizon: int,
                      policy: str = "expert", seed: int = 0) -> list[dict[str, Any]]:
    """``rollouts`` of the scripted ``expert`` (the data's own policy) or a ``random`` policy (uniform
    translation deltas within the expert's step, a random gripper command), without rendering: the
    reference points of the success predicates (``tests``: expert >= 90 %, random <= 10 % per task)."""
    from wmprobe.data.sim import scene as S
    from wmprobe.data.sim.generate import episode_world, run_tasks
    from wmprobe.data.sim.success import SuccessTracker
    from wmprobe.data.sim.tasks import MAX_STEP, Expert
    if policy not in ("expert", "random"):
        raise ValueError(f"policy must be 'expert' or 'random', got {policy!r}")
    out = []
    for i, task in enumerate(tasks):
        for r in range(n):
            index = ROLLOUT_OFFSET + i * n + r
            wp = _world_params(params, task)
            with episode_world(wp, index) as (p, w, _, rng):
                spec = run_tasks(wp)[0]
                tracker = SuccessTracker(spec, S.snapshot(p, w))
                expert = Expert(spec, S.snapshot(p, w), rng, wrist=wp.get("wrist", "fixed"))
                act_rng = np.random.default_rng([seed, index])
                steps = horizon
                for t in range(horizon):
                    if policy == "expert":
                        a = expert.act(S.snapshot(p, w), w.target_pos, w.target_euler, S.ee_pose(p, w)[0])
                    else:
                        a = np.zeros(7)
                        a[:3] = act_rng.uniform(-MAX_STEP, MAX_STEP, 3)
                        a[6] = act_rng.choice([-1.0, 1.0])
                    S.apply_action(p, w, a)
                    if tracker.update(S.snapshot(p, w), S.ee_pose(p, w)[0], w.grip_open):
                        steps = t + 1
                        break
            out.append({"task": task, "index": int(index), "success": tracker.success, "steps": int(steps)})
    return out


def success_rows(results: Sequence[dict[str, Any]], task_split: dict[str, str]) -> list[dict[str, Any]]:
    """Per task and per task split (``"all"`` rows): ``success`` rate, Wilson ``success_ci_low/high``,
    ``n_rollouts``. ``task_split``: task -> ``"train"`` | ``"test"``."""
    rows = []
    groups: dict[tuple[str, str], list[bool]] = {}
    for r in results:
        sp = task_split[r["task"]]
        groups.setdefault((sp, r["task"]), []).append(r["success"])
        groups.setdefault((sp, "all"), []).append(r["success"])
    for (sp, task), ok in sorted(groups.items()):
        k, n = int(sum(ok)), len(ok)
        lo, hi = wilson(k, n)
        rows.append({"task_split": sp, "task": task, "success": k / n, "success_ci_low": lo,
                     "success_ci_high": hi, "n_rollouts": n})
    return rows
