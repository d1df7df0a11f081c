"""Closed-loop rollout throughput: behaviour-cloning policy steps per second, rendering included, against the
renderer's bare frame rate measured in the same run, for the study's default execution (a policy query and a
frame every step) and for receding-horizon execution (``--replan N``: a query and a frame every N steps).

    .venv/bin/python bench/control.py [--encoder pixels:8] [--tasks 4] [--rollouts 4] [--horizon 40]
                                      [--size 64] [--workers 2] [--replan 4] [--quick]

What runs: a small store of the embedded ``static`` suite is generated (its generation parameters are the
rollouts' world parameters), a BC policy with action chunks of ``H = 4`` (``wmprobe.control.policy``, the
study's recipe: chunk targets, ``PolicyConfig`` defaults but fewer training steps) is fitted on the encoder's
features of it, then ``wmprobe.control.rollout.rollouts`` runs ``tasks x rollouts`` closed-loop rollouts of at
most ``horizon`` steps through ``wmprobe.control.ChunkActor`` (encode, policy, then temporal ensembling with
``replan = 1`` or the chunk's first ``N`` actions open loop with ``replan = N``), stopping at success as in the
study. A policy step is one action applied to one world (the rollouts' own ``steps``); the frames counted are
the observations the policy was given. Measurements, all on the same worlds (the same fresh initial states):

- ``render_fps``: ``scene.render`` alone, frames per second in one process, timed over ``horizon`` poses of
  every world along its scripted expert's episode (the poses the policy imitates; the expert and physics run
  between frames, outside the timing): the renderer's bare rate, frustum culling included (``scene.render``'s
  default, bit-identical frames); ``render_fps_no_cull``: the same poses with ``cull=False`` (the renderer as it
  was), each pose rendered both ways back to back, and ``cull_speedup`` their ratio;
- ``physics_steps_per_s``: ``scene.apply_action`` (IK + 12 physics substeps) and the success tracker alone;
- ``steps_per_s_1_process`` / ``steps_per_s``: the default execution (``replan = 1``) in one process and split
  over ``--workers`` spawned processes (tasks dealt round-robin; from the first worker's start of rollouts to
  the last one's end: spawning, imports, loading the encoder and the
  process's one-off costs (its first world, the cull hulls: `_run`) left out, as in a study's long-lived workers);
  building and settling each world is included, as in the study;
- ``steps_per_s_open_loop_1_process`` / ``steps_per_s_open_loop``: the same with ``replan = N`` (``--replan``).

The bound, frames per step: with ``replan = N`` every world renders one frame per ``N`` steps
(``frames_per_step = 1 / N``, measured: ``frames / steps``; the first query of a rollout and one after a cut at
the horizon make it a little more than 1 / N), so ``steps/s <= workers_used x render_fps / frames_per_step``
with ``workers_used = min(workers, cores)``: ``limit`` = ``workers_used x render_fps`` for the default
(``N = 1``), ``limit_open_loop`` = ``workers_used x N x render_fps``. Physics, encoding, the policy and world
building only lower it; ``limit_open_loop_with_physics`` =
``workers_used / (1 / (N x render_fps) + 1 / physics_steps_per_s)`` adds the physics each step pays whatever N
is. ``fraction_of_limit`` / ``fraction_of_limit_open_loop`` are ``steps_per_s`` over its limit. ``goal_met``:
whether a mode's better configuration on this machine (one process or the workers; both use at most 2 cores)
reached the issue's 200 policy steps/s.

CPU seconds (``time.process_time``, robust to other processes on a loaded machine, unlike the wall clock):
``cpu_ms_per_step_1_process`` / ``cpu_ms_per_step_workers`` (summed over the workers) per policy step, and
``steps_per_s_2_cores_cpu`` = ``2 / CPU seconds per step`` of the 1-process run: the rate of two such processes
on two cores of their own (``goal_met["default_cpu_2_cores"]``; ``..._open_loop_...`` for ``--replan N``).
It is implied, not measured: on a shared machine two free cores are not available to time it.
``cpu_ms_per_step_parts``: where the 1-process run's CPU time went, per step (``_Parts``: render, physics,
tracking, world_build, world_close, policy, other). ``load_average``: ``os.getloadavg()`` before the rollout
runs and after them.
``bench/roofline.py``'s figures are printed beside it for the machine; a software renderer has no FLOP or byte
count to hold against them. Open-loop execution changes what the policy does (it sees a frame every N steps):
its success against the default's is measured by the control study, not here (docs/protocol.md).

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
    """``(world params, policy state dict, dims)`` from a fresh store of the ``static`` suite: a chunk policy
    (``PolicyConfig().chunk`` actions per query) on the encoder's pooled features."""
    from wmprobe.control import sim_params
    from wmprobe.control.policy import PolicyConfig, chunk_targets, descriptors, fit_policy
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
    cfg = PolicyConfig(steps=policy_steps)
    acts = np.asarray(store.actions, np.float32)
    targets = np.concatenate([chunk_targets(acts[s:s + n], n, cfg.chunk)
                              for s, n in zip(store.episode_starts, store.episode_lengths)])
    pol = fit_policy(feats, desc, targets, seed=0, cfg=cfg)
    dims = (feats.shape[1], desc.shape[1], acts.shape[1], cfg.chunk, store.action_groups.get("gripper", []))
    return sim_params(store), {k: v.clone() for k, v in pol.state_dict().items()}, dims


class _Parts:
    """CPU seconds (``time.process_time``) of each part of the rollout loop, summed over its calls: the module
    functions ``rollout._lockstep`` calls are wrapped for the duration of one run (``with _Parts() as parts``).
    Parts: ``render`` (``scene.render``: the cull test, TinyRenderer, the copy), ``physics``
    (``scene.apply_action``: IK, 12 substeps, the movers), ``tracking`` (``scene.snapshot``, ``scene.ee_pose``,
    ``SuccessTracker.update``), ``world_build`` (entering ``episode_world``: connect, ``loadURDF``, settling, the
    blocks), ``world_close`` (leaving it: disconnect), ``policy`` (the actor's call: encoder, policy, ensembling;
    timed by ``_run``); ``other`` = the run's CPU time less these (the loop's own Python)."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {k: 0.0 for k in ("render", "physics", "tracking", "world_build",
                                                       "world_close", "policy")}
        self.saved: list = []

    def _wrap(self, owner, name: str, part: str) -> None:
        fn = getattr(owner, name)
        cpu = self.cpu

        def timed(*a, **kw):
            t0 = time.process_time()
            try:
                return fn(*a, **kw)
            finally:
                cpu[part] += time.process_time() - t0
        self.saved.append((owner, name, fn))
        setattr(owner, name, timed)

    def __enter__(self) -> "_Parts":
        import contextlib
        import importlib

        from wmprobe.data.sim import scene as S
        from wmprobe.data.sim.success import SuccessTracker
        for name, part in (("render", "render"), ("apply_action", "physics"), ("snapshot", "tracking"),
                           ("ee_pose", "tracking")):
            self._wrap(S, name, part)
        self._wrap(SuccessTracker, "update", "tracking")
        generate = importlib.import_module("wmprobe.data.sim.generate")   # the package's name is a function
        world, cpu = generate.episode_world, self.cpu

        @contextlib.contextmanager
        def timed_world(*a, **kw):
            t0 = time.process_time()
            cm = world(*a, **kw)
            value = cm.__enter__()
            cpu["world_build"] += time.process_time() - t0
            try:
                yield value
            except BaseException as e:
                t0 = time.process_time()
                if not cm.__exit__(type(e), e, e.__traceback__):
                    raise
            else:
                t0 = time.process_time()
                cm.__exit__(None, None, None)
            finally:
                cpu["world_close"] += time.process_time() - t0
        self.saved.append((generate, "episode_world", world))
        generate.episode_world = timed_world
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, fn in reversed(self.saved):
            setattr(owner, name, fn)


def _run(args: tuple) -> tuple[int, int, float, float, float, dict]:
    """Worker: ``(policy steps, frames seen by the policy, start, end, CPU seconds, CPU seconds per part)`` of the
    rollouts of ``tasks`` with ``replan`` (runs in this or a spawned process; ``time.monotonic`` instants,
    comparable across processes, and this process's ``time.process_time`` taken around the rollouts: imports,
    loading the encoder and a process's one-off costs are outside: one world built and rendered, the encoder and
    the policy called once, before the clocks start, as in a study's long-lived workers; ~0.5 s of CPU in a
    fresh process, mostly the robot's cull hulls and its first world). ``parts``: the per-part breakdown
    (``_Parts``), else ``{}``."""
    import torch

    from wmprobe.control import ChunkActor, encode_pooled
    from wmprobe.control.policy import BCPolicy
    from wmprobe.control.rollout import rollouts
    from wmprobe.encoders.registry import load_encoder
    params, tasks, n, horizon, encoder_name, state, dims, threads, replan, *rest = args
    parts = bool(rest and rest[0])
    if threads:
        torch.set_num_threads(threads)
    d_feat, d_desc, d_act, chunk, gripper = dims
    pol = BCPolicy(d_feat, d_desc, chunk * d_act)
    pol.load_state_dict(state)
    enc = load_encoder(encoder_name)
    layer = enc.spec.layers[0]
    act = ChunkActor(pol.eval(), lambda frames: encode_pooled(enc, layer, frames), chunk, d_act, gripper, replan)
    frames = [0]
    call = act.__call__
    policy_cpu = [0.0]

    class Counted:                          # ChunkActor, counting the frames it is given
        replan = act.replan

        def reset(self, n_worlds: int) -> None:
            act.reset(n_worlds)

        def __call__(self, obs: np.ndarray, names: Sequence[str], slots: Sequence[int]) -> np.ndarray:
            frames[0] += len(obs)
            c0 = time.process_time()
            try:
                return call(obs, names, slots)
            finally:
                policy_cpu[0] += time.process_time() - c0
    import contextlib

    from wmprobe.data.sim import scene as S
    from wmprobe.data.sim.generate import episode_world
    with episode_world({**params, "tasks": [tasks[0]]}, 0) as (p, w, _, _):    # a process's one-off costs
        obs = S.render(p, w)[None]                  # (the first world, the cull hulls, torch's first call)
    with torch.no_grad():
        pol(torch.as_tensor(encode_pooled(enc, layer, obs)), torch.zeros(1, d_desc))
    timer = _Parts() if parts else contextlib.nullcontext()
    with timer:
        t0, c0 = time.monotonic(), time.process_time()
        with torch.no_grad():
            res = rollouts(params, list(tasks), n, horizon, Counted(), batch=16)
        t1, c1 = time.monotonic(), time.process_time()
    split: dict = {}
    if isinstance(timer, _Parts):
        split = {**timer.cpu, "policy": policy_cpu[0]}
        split["other"] = (c1 - c0) - sum(split.values())
    return sum(r["steps"] for r in res), frames[0], t0, t1, c1 - c0, split


def _worlds(params: dict, tasks: Sequence[str], n: int, stack):
    from wmprobe.control.rollout import ROLLOUT_OFFSET, _world_params
    from wmprobe.data.sim.generate import episode_world
    jobs = [(t, ROLLOUT_OFFSET + i * n + r) for i, t in enumerate(tasks) for r in range(n)]
    return [stack.enter_context(episode_world(_world_params(params, t), idx))[:2] for t, idx in jobs]


def render_fps(params: dict, tasks: Sequence[str], n: int, frames_per_world: int) -> tuple[float, float]:
    """``(frames/s with culling, frames/s without)`` of ``scene.render`` alone over the rollouts' own worlds,
    each driven by the scripted expert along its task between frames (building, the expert and physics outside
    the timing; both renders of each pose timed back to back): what culling saves depends on where the arm is,
    and the expert's poses are those the policy imitates. A world that has succeeded keeps its expert going."""
    import contextlib

    from wmprobe.data.sim import scene as S
    from wmprobe.data.sim.generate import run_tasks
    from wmprobe.data.sim.tasks import Expert
    rng = np.random.default_rng(0)
    timed = [0.0, 0.0]
    with contextlib.ExitStack() as stack:
        worlds = _worlds(params, tasks, n, stack)
        experts = [Expert(run_tasks({**params, "tasks": [t]})[0], S.snapshot(p, w), rng, wrist=params["wrist"])
                   for (p, w), t in zip(worlds, [t for t in tasks for _ in range(n)])]
        S.render(*worlds[0])                                        # warm-up
        for _ in range(frames_per_world):
            for (p, w), ex in zip(worlds, experts):
                for k, cull in ((0, True), (1, False)):
                    t0 = time.perf_counter()
                    S.render(p, w, cull=cull)
                    timed[k] += time.perf_counter() - t0
                a = ex.act(S.snapshot(p, w), w.target_pos, w.target_euler, S.ee_pose(p, w)[0])
                S.apply_action(p, w, a if params["wrist"] == "free" else np.r_[a[:3], a[6]])
    frames = len(worlds) * frames_per_world
    return frames / timed[0], frames / timed[1]


def physics_rate(params: dict, tasks: Sequence[str], n: int, steps_per_world: int) -> float:
    """Control steps per second of ``scene.apply_action`` plus the success tracker's update, no rendering (a
    small constant push: the arm moves, IK and contacts work as in a rollout)."""
    import contextlib

    from wmprobe.data.sim import scene as S
    from wmprobe.data.sim.generate import run_tasks
    from wmprobe.data.sim.success import SuccessTracker
    a = np.array([0.004, -0.003, -0.004, 1.0])
    with contextlib.ExitStack() as stack:
        worlds = _worlds(params, tasks, n, stack)
        trackers = [SuccessTracker(run_tasks({**params, "tasks": [t]})[0], S.snapshot(p, w))
                    for (p, w), t in zip(worlds, [t for t in tasks for _ in range(n)])]
        t0 = time.perf_counter()
        for _ in range(steps_per_world):
            for (p, w), tr in zip(worlds, trackers):
                S.apply_action(p, w, a)
                tr.update(S.snapshot(p, w), S.ee_pose(p, w)[0], w.grip_open)
        return len(worlds) * steps_per_world / (time.perf_counter() - t0)


def _rollout_rates(params, tasks, a, state, dims, replan: int, usable: int) -> dict:
    """One mode's figures: ``sps_1`` / ``sps_n`` steps/s in 1 process / with ``usable`` workers (their steps over
    the span from the first worker's start of rollouts to the last one's end: spawning and imports left out, as
    in a study's long-lived workers), ``fpstep`` frames per step, ``steps`` the workers' policy steps,
    ``cpu_1`` / ``cpu_n`` CPU seconds per step in the 1-process run / summed over the workers, and ``parts``
    the 1-process run's CPU milliseconds per step by part (``_Parts``)."""
    steps_1, frames_1, t0, t1, cpu_1, split = _run((params, tasks, a.rollouts, a.horizon, a.encoder, state, dims, 0,
                                                    replan, True))
    parts = {k: round(1e3 * v / steps_1, 3) for k, v in split.items()}
    out = {"sps_1": steps_1 / (t1 - t0), "cpu_1": cpu_1 / steps_1, "parts": parts}
    if usable == 1:
        return {**out, "sps_n": out["sps_1"], "fpstep": frames_1 / steps_1, "steps": steps_1, "cpu_n": out["cpu_1"]}
    import multiprocessing as mp
    jobs = [tasks[i::usable] for i in range(usable)]
    with ProcessPoolExecutor(usable, mp_context=mp.get_context("spawn")) as ex:
        res = list(ex.map(_run, [(params, p, a.rollouts, a.horizon, a.encoder, state, dims, 1, replan)
                                 for p in jobs]))
    steps_n = sum(r[0] for r in res)
    span = max(r[3] for r in res) - min(r[2] for r in res)
    return {**out, "sps_n": steps_n / span, "fpstep": sum(r[1] for r in res) / steps_n, "steps": steps_n,
            "cpu_n": sum(r[4] for r in res) / steps_n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoder", default="pixels:8", help="a per-frame encoder name (default pixels:8)")
    ap.add_argument("--tasks", type=int, default=4, help=f"how many of {TASKS} (default 4)")
    ap.add_argument("--rollouts", type=int, default=4, help="rollouts per task")
    ap.add_argument("--horizon", type=int, default=40)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--replan", type=int, default=4, help="the open-loop mode's steps per query (1..4, default 4)")
    ap.add_argument("--quick", action="store_true", help="2 tasks x 2 rollouts x 8 steps (CI)")
    a = ap.parse_args()
    if a.quick:
        a.tasks, a.rollouts, a.horizon = 2, 2, 8
    if not 1 <= a.tasks <= len(TASKS):
        ap.error(f"--tasks must be 1..{len(TASKS)}")
    from wmprobe.control.policy import PolicyConfig
    if not 1 <= a.replan <= PolicyConfig().chunk:
        ap.error(f"--replan must be 1..{PolicyConfig().chunk} (the policy's chunk)")
    lim = roofline.measure(a.quick)
    print("machine limits:", roofline.describe(lim), file=sys.stderr)
    tasks = TASKS[:a.tasks]
    params, state, dims = _fit(a.encoder, a.size, 2 if a.quick else 6, 10 if a.quick else 30,
                               50 if a.quick else 400)
    fps, fps_full = render_fps(params, tasks, a.rollouts, a.horizon)
    phys = physics_rate(params, tasks, a.rollouts, 3 if a.quick else 10)
    usable = max(1, min(a.workers, os.cpu_count() or 1, len(tasks)))
    load = [round(x, 2) for x in os.getloadavg()]
    d = _rollout_rates(params, tasks, a, state, dims, 1, usable)
    o = _rollout_rates(params, tasks, a, state, dims, a.replan, usable)
    load_end = [round(x, 2) for x in os.getloadavg()]
    sps_1, sps_n, fpstep, steps_n = d["sps_1"], d["sps_n"], d["fpstep"], d["steps"]
    ol_1, ol_n, ol_fpstep, ol_steps = o["sps_1"], o["sps_n"], o["fpstep"], o["steps"]
    cores = 2                                   # the goal's cores
    cpu_rate, ol_cpu_rate = cores / d["cpu_1"], cores / o["cpu_1"]
    bound, ol_bound = usable * fps, usable * a.replan * fps
    ol_phys = usable / (1 / (a.replan * fps) + 1 / phys)
    print(f"render-only {fps:.1f} frames/s per process ({fps_full:.1f} without culling, {fps / fps_full:.2f}x); "
          f"physics alone {phys:.1f} steps/s\n"
          f"default (a query and a frame every step): {sps_1:.1f} policy steps/s in 1 process, {sps_n:.1f} with "
          f"{usable} workers; bound {usable} x {fps:.1f} = {bound:.1f}\n"
          f"open loop (replan {a.replan}: {ol_fpstep:.3f} frames per step): {ol_1:.1f} in 1 process, {ol_n:.1f} with "
          f"{usable} workers; bound {usable} x {a.replan} x {fps:.1f} = {ol_bound:.1f} ({ol_phys:.1f} with physics)\n"
          f"CPU time per step in 1 process: default {1e3 * d['cpu_1']:.2f} ms ({cores} cores busy with such processes: "
          f"{cpu_rate:.1f} steps/s), open loop {1e3 * o['cpu_1']:.2f} ms ({ol_cpu_rate:.1f}); default by part "
          f"(ms/step): {d['parts']}; load average {load} -> {load_end}",
          file=sys.stderr)
    print(json.dumps({"bench": "control", "reference": "render-only loop of the same worlds, 1 process",
                      "encoder": a.encoder, "size": a.size, "tasks": list(tasks), "rollouts": a.rollouts,
                      "horizon": a.horizon, "workers": usable, "cpus": os.cpu_count(),
                      "render_fps": round(fps, 1), "steps_per_s_1_process": round(sps_1, 1),
                      "steps_per_s": round(sps_n, 1), "policy_steps": steps_n,
                      "ratio": round(sps_n / fps, 3), "speedup": round(sps_n / sps_1, 2),
                      "limit": f"workers x render_fps = {usable} x {fps:.1f} = {bound:.1f} steps/s",
                      "fraction_of_limit": round(sps_n / bound, 3), "goal_steps_per_s": 200,
                      "limits": lim,
                      "render_fps_no_cull": round(fps_full, 1), "cull_speedup": round(fps / fps_full, 2),
                      "physics_steps_per_s": round(phys, 1), "frames_per_step": round(fpstep, 3),
                      "replan": a.replan, "frames_per_step_open_loop": round(ol_fpstep, 3),
                      "steps_per_s_open_loop_1_process": round(ol_1, 1), "steps_per_s_open_loop": round(ol_n, 1),
                      "policy_steps_open_loop": ol_steps,
                      "limit_open_loop": f"workers x replan x render_fps = {usable} x {a.replan} x {fps:.1f} = "
                                         f"{ol_bound:.1f} steps/s",
                      "limit_open_loop_with_physics": round(ol_phys, 1),
                      "fraction_of_limit_open_loop": round(ol_n / ol_bound, 3),
                      "goal_met": {"default": max(sps_1, sps_n) >= 200, "open_loop": max(ol_1, ol_n) >= 200,
                                   "default_cpu_2_cores": cpu_rate >= 200, "open_loop_cpu_2_cores": ol_cpu_rate >= 200},
                      "cpu_ms_per_step_1_process": round(1e3 * d["cpu_1"], 3),
                      "cpu_ms_per_step_workers": round(1e3 * d["cpu_n"], 3),
                      "cpu_ms_per_step_parts": d["parts"],
                      "steps_per_s_2_cores_cpu": round(cpu_rate, 1),
                      "cpu_ms_per_step_open_loop_1_process": round(1e3 * o["cpu_1"], 3),
                      "cpu_ms_per_step_open_loop_workers": round(1e3 * o["cpu_n"], 3),
                      "cpu_ms_per_step_open_loop_parts": o["parts"],
                      "steps_per_s_open_loop_2_cores_cpu": round(ol_cpu_rate, 1),
                      "load_average": {"start": load, "end": load_end}}))


if __name__ == "__main__":
    main()
