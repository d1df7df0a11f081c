"""Closed-loop rollout throughput: behaviour-cloning policy steps per second, rendering included, against the
renderer's bare frame rate measured in the same run.

    .venv/bin/python bench/control.py [--encoder pixels:8] [--tasks 4] [--rollouts 4] [--horizon 40]
                                      [--size 64] [--workers 2] [--quick]

What runs: a small store of the embedded ``static`` suite is generated (its generation parameters are the
rollouts' world parameters), a BC policy (``wmprobe.control.policy``) is fitted on the encoder's features of
it, then ``wmprobe.control.rollout.rollouts`` runs ``tasks x rollouts`` closed-loop rollouts of ``horizon``
steps (no early stop counted twice: every ``act`` row is one policy step; rollouts stop at success as in the
study). Three measurements of the same worlds (the same fresh initial states):

- ``render_fps``: a render-only loop (``scene.render`` of every world, no encoder, no policy, no physics),
  frames per second in one process: the renderer's bare rate;
- ``steps_per_s_1_process``: the rollouts in one process (render, encode, policy, physics per step; building
  and settling each world included, as in the study);
- ``steps_per_s``: the same rollouts split over ``--workers`` processes (tasks dealt round-robin), start-up
  of the worker processes included.

The bound: every policy step renders one frame, so ``steps/s <= workers_used x render_fps`` with
``workers_used = min(workers, cores)`` (physics, encoding and the policy only lower it). ``fraction_of_limit``
is ``steps_per_s / (workers_used x render_fps)``. ``bench/roofline.py``'s figures are printed beside it for
the machine; a software renderer has no FLOP or byte count to hold against them.

The last printed line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import roofline  # noqa: E402

TASKS = ("reach-red", "push-red-left", "lift-blue", "reach-blue", "push-green-right", "lift-yellow")


def _fit(encoder_name: str, size: int, episodes: int, steps: int, policy_steps: int) -> tuple[dict, dict, tuple]:
    """``(world params, policy state dict, dims)`` from a fresh store of the ``static`` suite."""
    from wmprobe.control import sim_params
    from wmprobe.control.policy import PolicyConfig, descriptors, fit_policy
    from wmprobe.data.sim import generate
    from wmprobe.encoders.registry import load_encoder
    store = generate("static", episodes, steps=steps, size=size, seed=0, workers=1, progress=False)
    enc = load_encoder(encoder_name)
    layer = enc.spec.layers[0]
    frames = np.asarray(store.frames)
    feats = np.concatenate([enc.encode(frames[i:i + 64, None], layers=[layer]).pooled(layer)[:, 0].float().numpy()
                            for i in range(0, len(frames), 64)])
    frame_task = np.repeat(np.asarray(store.tasks), store.episode_lengths)
    desc = descriptors(list(store.meta["task_names"]), frame_task)
    pol = fit_policy(feats, desc, np.asarray(store.actions, np.float32), seed=0, cfg=PolicyConfig(steps=policy_steps))
    dims = (feats.shape[1], desc.shape[1], store.actions.shape[1], store.action_groups.get("gripper", []))
    return sim_params(store), {k: v.clone() for k, v in pol.state_dict().items()}, dims


def _run(args: tuple) -> tuple[int, float]:
    """Worker: ``(policy steps, seconds)`` of the rollouts of ``tasks`` (runs in this or a spawned process)."""
    import torch

    from wmprobe.control import actor
    from wmprobe.control.policy import BCPolicy
    from wmprobe.control.rollout import rollouts
    from wmprobe.encoders.registry import load_encoder
    params, tasks, n, horizon, encoder_name, state, dims, threads = args
    if threads:
        torch.set_num_threads(threads)
    d_feat, d_desc, d_act, gripper = dims
    pol = BCPolicy(d_feat, d_desc, d_act)
    pol.load_state_dict(state)
    enc = load_encoder(encoder_name)
    act = actor(enc, enc.spec.layers[0], pol.eval(), gripper)
    count = [0]

    def counted(frames: np.ndarray, names: Sequence[str]) -> np.ndarray:
        count[0] += len(frames)
        return act(frames, names)
    t0 = time.perf_counter()
    with torch.no_grad():
        rollouts(params, list(tasks), n, horizon, counted, batch=16)
    return count[0], time.perf_counter() - t0


def render_fps(params: dict, tasks: Sequence[str], n: int, frames_per_world: int) -> float:
    """Frames per second of ``scene.render`` alone over the rollouts' own worlds (built outside the timing)."""
    import contextlib

    from wmprobe.control.rollout import ROLLOUT_OFFSET, _world_params
    from wmprobe.data.sim import scene as S
    from wmprobe.data.sim.generate import episode_world
    jobs = [(t, ROLLOUT_OFFSET + i * n + r) for i, t in enumerate(tasks) for r in range(n)]
    with contextlib.ExitStack() as stack:
        worlds = [stack.enter_context(episode_world(_world_params(params, t), idx))[:2] for t, idx in jobs]
        S.render(*worlds[0])                                         # warm-up
        t0 = time.perf_counter()
        for _ in range(frames_per_world):
            for p, w in worlds:
                S.render(p, w)
        return len(worlds) * frames_per_world / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoder", default="pixels:8", help="a per-frame encoder name (default pixels:8)")
    ap.add_argument("--tasks", type=int, default=4, help=f"how many of {TASKS} (default 4)")
    ap.add_argument("--rollouts", type=int, default=4, help="rollouts per task")
    ap.add_argument("--horizon", type=int, default=40)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="2 tasks x 2 rollouts x 8 steps (CI)")
    a = ap.parse_args()
    if a.quick:
        a.tasks, a.rollouts, a.horizon = 2, 2, 8
    if not 1 <= a.tasks <= len(TASKS):
        ap.error(f"--tasks must be 1..{len(TASKS)}")
    lim = roofline.measure(a.quick)
    print("machine limits:", roofline.describe(lim), file=sys.stderr)
    tasks = TASKS[:a.tasks]
    params, state, dims = _fit(a.encoder, a.size, 2 if a.quick else 6, 10 if a.quick else 30,
                                    50 if a.quick else 400)
    fps = render_fps(params, tasks, a.rollouts, 3 if a.quick else 10)
    steps_1, sec_1 = _run((params, tasks, a.rollouts, a.horizon, a.encoder, state, dims, 0))
    sps_1 = steps_1 / sec_1
    usable = max(1, min(a.workers, os.cpu_count() or 1, len(tasks)))
    t0 = time.perf_counter()
    if usable > 1:
        import multiprocessing as mp
        parts = [tasks[i::usable] for i in range(usable)]
        with ProcessPoolExecutor(usable, mp_context=mp.get_context("spawn")) as ex:
            res = list(ex.map(_run, [(params, p, a.rollouts, a.horizon, a.encoder, state, dims, 1) for p in parts]))
        steps_n = sum(s for s, _ in res)
    else:
        steps_n = steps_1
    sps_n = steps_n / (time.perf_counter() - t0) if usable > 1 else sps_1
    bound = usable * fps
    print(f"render-only {fps:.1f} frames/s per process; rollouts {sps_1:.1f} policy steps/s in 1 process, "
          f"{sps_n:.1f} with {usable} workers; bound {usable} x {fps:.1f} = {bound:.1f} steps/s "
          f"(200 steps/s would need a renderer at {200 / usable:.0f} frames/s per core)", file=sys.stderr)
    print(json.dumps({"bench": "control", "reference": "render-only loop of the same worlds, 1 process",
                      "encoder": a.encoder, "size": a.size, "tasks": list(tasks), "rollouts": a.rollouts,
                      "horizon": a.horizon, "workers": usable, "cpus": os.cpu_count(),
                      "render_fps": round(fps, 1), "steps_per_s_1_process": round(sps_1, 1),
                      "steps_per_s": round(sps_n, 1), "policy_steps": steps_n,
                      "ratio": round(sps_n / fps, 3), "speedup": round(sps_n / sps_1, 2),
                      "limit": f"workers x render_fps = {usable} x {fps:.1f} = {bound:.1f} steps/s",
                      "fraction_of_limit": round(sps_n / bound, 3), "goal_steps_per_s": 200,
                      "limits": lim}))


if __name__ == "__main__":
    main()
