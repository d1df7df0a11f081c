"""The action-space audit: which action groups a probe can be scored on, for any EpisodeStore.

``audit(store, split, k=4, headline=None)`` looks at the k-step targets a probe would predict (the actions of
``frames[t] -> frames[t+k]``, aggregated as the probes aggregate them: ``pairs.make_pairs``, ``agg="sum"``)
under the study's split and reports, per action axis and per group:

- ``var_share``: the variance of the target on the test episodes over that on the train episodes. Below
  ``LOW_SHARE`` (0.25) the test set barely varies on that axis, and R2 (which divides by the test variance)
  explodes there.
- ``constant_episodes``: episodes in which the axis never changes (a gripper that stays open).
- ``binary``: the axis takes two levels (a gripper command); probes score it with accuracy beside R2.
- ``state ceiling``: a ridge probe (``wmprobe.probes``, the same pairing and split) on the dataset's
  proprioceptive state of the pair of frames ``(s_t, s_{t+k})`` (``store.states``): what a perfect reader of
  the robot's pose can recover. R2 overall, per group and per axis; accuracy and balanced accuracy for binary
  axes.
- ``image_px_per_step`` / ``image_px_per_k`` (simulated data, whose meta carries the camera): the median image
  motion in pixels of the end effector due to each axis alone (translation: the axis' world direction projected
  at the end effector; gripper: the change of the projected distance between the finger tips from open to
  closed; rotation: a point ``ROT_RADIUS`` m from the end effector turned by the angle), and ``angles``, the
  angle between the translation axes' image directions (at the end effector's median position). A group's
  motion is that of its axes together (translation: the end effector displaced by the k-step target).
- ``expert_noise_share`` (simulated data): the share of the translation targets' variance that is the scripted
  expert's own per-step noise.

The rule (``RULE``): a group is in the headline iff it is not a binary command (a gripper open/close label:
R2 of a two-level label on held-out tasks measures the shift of its class balance more than what is read;
it is scored by accuracy and balanced accuracy beside its R2, and the embedded study measured the gripper
state at chance from the frames, balanced accuracy 0.48-0.61 for every encoder), ``var_share >= 0.25``, it is not
constant on the test
episodes, its state ceiling R2 >= 0.5 (when the store has states) and, for simulated data, its median image
motion over k steps is >= 2 px and (translation) no two of its axes' image directions are within 15 degrees
(the ``front`` camera maps x and z onto one direction). ``headline=`` overrides the rule (the evidence is still
reported and the
override marked); if no group qualifies, the headline is every group, with a reason saying so.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from wmprobe.data.splits import Split, make_split
from wmprobe.data.store import EpisodeStore
from wmprobe.errors import ConfigError

LOW_SHARE = 0.25          # var_test / var_train below this: R2 on the test set is unstable
MIN_STATE_R2 = 0.5        # a group the true state cannot recover cannot be read from frames either
MIN_PX = 2.0              # median image motion over k steps (simulated data)
MIN_ANGLE = 15.0          # degrees between two translation axes' image directions (simulated data)
ROT_RADIUS = 0.1          # m: the hand's size, for the image motion of a rotation
RULE = (f"a group is in the headline iff it is not a binary command, its test/train target variance share is "
        f">= {LOW_SHARE}, it is not constant on the test episodes, its state-ceiling R2 is >= {MIN_STATE_R2} (when "
        f"the data have states) "
        f"and, for simulated data, its median image motion over k steps is >= {MIN_PX:g} px (translation: its "
        f"axes' image directions also >= {MIN_ANGLE:g} degrees apart)")


def state_features(store: EpisodeStore) -> np.ndarray | None:
    """``(N, S) float32``: the proprioceptive state of every frame (``store.states``), or None without."""
    return None if store.states is None else np.asarray(store.states, dtype=np.float32)


def headline_groups(audit_result: dict[str, Any]) -> list[str]:
    """The groups an audit put in the headline (the rule's choice, its fallback, or the override)."""
    return list(audit_result["headline_groups"])


def _targets(store: EpisodeStore, k: int):
    """The k-step pairs of frames (one step per frame), their targets ``(P, A)`` and target groups."""
    from wmprobe.probes.pairs import make_pairs
    frame = np.arange(store.n_frames, dtype=np.int64)
    return make_pairs(frame, store.episode_of_frame(), np.asarray(store.actions), store.episode_ends, k,
                      store.action_groups, "sum", dataset=store.name)


def _constant_episodes(store: EpisodeStore, axis: int, episodes: Sequence[int]) -> int:
    acts = np.asarray(store.actions[:, axis])
    return int(sum(np.all(acts[store.episode_slice(e)] == acts[store.episode_slice(e)][0]) for e in episodes))


def _finite(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def audit(store: EpisodeStore, split: Split | str = "task", k: int = 4, *,
          headline: Sequence[str] | None = None, test_frac: float = 0.25, seed: int = 0) -> dict[str, Any]:
    """The audit of ``store`` under ``split`` (a ``Split``, or its kind with ``test_frac`` and ``seed``) at
    ``k`` steps, as a JSON-able dict (see the module doc): ``axes``, ``angles``, ``groups``,
    ``headline_groups``, ``rule``, ``state_ceiling``, ``expert_noise_share`` and what it was run on."""
    if not isinstance(split, Split):
        split = make_split(store, kind=split, test_frac=test_frac, seed=seed)
    k = int(k)
    longest = int(store.episode_lengths.max())
    if k < 1 or k >= longest:
        raise ConfigError(f"{store.name}: k={k} leaves no frame pair (k must be 1..{longest - 1}: the longest "
                          f"episode has {longest} frames)")
    pairs = _targets(store, k)
    is_test = np.isin(pairs.episode, np.asarray(split.test, np.int64))
    is_train = np.isin(pairs.episode, np.asarray(split.train, np.int64))
    names = list(store.meta["action_names"])
    from wmprobe.probes.core import ordered_groups
    declared = store.action_groups
    groups = {g: list(declared[g]) for g in ordered_groups(list(declared)) if len(declared[g])}
    group_of = {i: g for g, idx in groups.items() for i in idx}
    motion = _image_motion(store, pairs, k)
    axes: dict[str, Any] = {}
    for i, name in enumerate(names):
        y_tr, y_te = pairs.y[is_train, i], pairs.y[is_test, i]
        v_tr, v_te = float(np.var(y_tr)) if len(y_tr) else 0.0, float(np.var(y_te)) if len(y_te) else 0.0
        share = v_te / v_tr if v_tr > 0 else (1.0 if v_te == 0 else float("inf"))
        levels = np.unique(np.asarray(store.actions[:, i]))
        axes[name] = {
            "group": group_of.get(i), "var_train": v_tr, "var_test": v_te, "var_share": _finite(share),
            "low_share": bool(share < LOW_SHARE), "binary": bool(len(levels) == 2),
            "constant_episodes": _constant_episodes(store, i, range(store.n_episodes)),
            "constant_test_episodes": _constant_episodes(store, i, split.test),
            "n_episodes": store.n_episodes, "n_test_episodes": len(split.test),
            "image_px_per_step": motion.get(name, (None, None))[0], "image_px_per_k": motion.get(name, (None, None))[1],
        }
    ceiling = _state_ceiling(store, split, k, names)
    for name, r2 in (ceiling or {}).get("by_axis", {}).items():
        axes[name]["state_ceiling_r2"] = r2
    for name, acc in (ceiling or {}).get("binary", {}).items():
        axes[name].update(state_ceiling_acc=acc["acc"], state_ceiling_bacc=acc["bacc"])
    out_groups = {g: _judge(g, [names[i] for i in idx], axes, ceiling, motion.get("groups", {}).get(g),
                            motion.get("angles") or {}) for g, idx in groups.items()}
    chosen = [g for g, v in out_groups.items() if v["identifiable"]]
    override, fallback = headline is not None, False
    if headline is not None:
        headline = [str(h) for h in headline]
        unknown = [h for h in headline if h not in groups]
        if not headline or unknown:
            raise ConfigError(f"{store.name}: headline group(s) {unknown or headline} are not action groups of the "
                              f"data; it has {', '.join(groups) or 'no groups'}")
        chosen = [g for g in groups if g in headline]
    elif not chosen:
        chosen, fallback = list(groups), True
    return {
        "store": store.name, "fingerprint": store.fingerprint, "k": k,
        "split": {"kind": split.kind, "n_train_episodes": len(split.train), "n_test_episodes": len(split.test),
                  "test_task_names": list(split.test_task_names)},
        "n_pairs": {"train": int(is_train.sum()), "test": int(is_test.sum())},
        "axes": axes, "angles": motion.get("angles") or {}, "groups": out_groups,
        "headline_groups": chosen, "override": override, "fallback": fallback,
        "fallback_reason": "no group meets the rule: the headline averages every group" if fallback else None,
        "rule": RULE,
        "state_ceiling": None if ceiling is None else {"r2": ceiling["r2"], "by_group": ceiling["by_group"]},
        "expert_noise_share": _noise_share(store, pairs, is_train, is_test, k, names),
    }


def _judge(group: str, axis_names: list[str], axes: dict[str, Any], ceiling: dict | None,
           motion: tuple[float, float] | None, angles: dict[str, float]) -> dict[str, Any]:
    """A group's evidence and verdict under ``RULE`` (the variance share of its least favourable axis)."""
    shares = [axes[a]["var_share"] for a in axis_names]
    share = min((s for s in shares if s is not None), default=None)
    n_test = axes[axis_names[0]]["n_test_episodes"]
    constant = all(axes[a]["constant_test_episodes"] == n_test for a in axis_names)
    px_step, px_k = motion if motion is not None else (None, None)
    r2 = None if ceiling is None else ceiling["by_group"].get(group)
    close = {pair: a for pair, a in angles.items() if set(pair.split("/")) <= set(axis_names) and a < MIN_ANGLE}
    reasons = []
    if share is None or share < LOW_SHARE:
        reasons.append(f"test/train variance share {share if share is None else round(share, 3)} < {LOW_SHARE}")
    if constant:
        reasons.append(f"constant on all {n_test} test episodes")
    if r2 is not None and not r2 >= MIN_STATE_R2:
        reasons.append(f"state ceiling R2 {r2:.3f} < {MIN_STATE_R2}")
    if all(axes[a].get("binary") for a in axis_names):
        reasons.append("a binary command: scored by accuracy and balanced accuracy (acc_/bacc_ columns) beside "
                       "its R2, not averaged into the headline R2")
    if px_k is not None and px_k < MIN_PX:
        reasons.append(f"median image motion over k {px_k:.2f} px < {MIN_PX:g} px"
                       + (" (open vs closed finger tips)" if group == "gripper" else ""))
    for pair, a in close.items():
        reasons.append(f"axes {pair} share an image direction ({a:g} degrees apart < {MIN_ANGLE:g})")
    return {"axes": axis_names, "var_share": share, "constant_on_test": constant, "state_ceiling_r2": r2,
            "image_px_per_step": px_step, "image_px_per_k": px_k, "identifiable": not reasons, "reasons": reasons}


def _state_ceiling(store: EpisodeStore, split: Split, k: int, names: list[str]) -> dict[str, Any] | None:
    """Ridge on the state of the frame pair -> the k-step target: R2 overall, per group and per axis, and
    accuracy / balanced accuracy of the binary axes; None when the store has no states."""
    feats = state_features(store)
    if feats is None:
        return None
    from wmprobe.metrics import binary_accuracy, binary_levels, r2_score
    from wmprobe.probes.core import evaluate, make_probe
    from wmprobe.probes.data import build_probe_data
    frame = np.arange(store.n_frames, dtype=np.int64)
    train, test, groups = build_probe_data(feats, frame, store.episode_of_frame(), store, split, k,
                                           what="states")
    row = evaluate("ridge", train, test, groups, seeds=(0,), n_boot=200)[0]
    by_group = {g: _finite(row.get(f"r2_{g}")) for g, idx in groups.items() if len(idx)}
    pred = make_probe("ridge", seeds=(0,)).fit(train).predict(test)[0]
    by_axis = dict(zip(names, (_finite(v) for v in np.asarray(r2_score(test.y, pred, multioutput="raw_values")))))
    binary = {}
    for i, name in enumerate(names):
        levels = binary_levels(train.y[:, i])
        if levels is not None and np.isin(test.y[:, i], levels).all():
            acc, bacc = binary_accuracy(test.y[:, i], pred[:, i], levels)
            binary[name] = {"acc": acc, "bacc": bacc}
    return {"r2": _finite(row["r2"]), "r2_ci": [_finite(row["r2_ci_low"]), _finite(row["r2_ci_high"])],
            "by_group": by_group, "by_axis": by_axis, "binary": binary, "state_names": store.state_names}


def _image_motion(store: EpisodeStore, pairs: Any, k: int) -> dict[str, Any]:
    """``{axis: (median px per step, median px per k)}``, ``"groups"``: the same per group, and ``"angles"``,
    for simulated data (``meta["camera"]`` and states with the end-effector position); empty otherwise."""
    cam, feats = store.meta.get("camera"), state_features(store)
    if not isinstance(cam, dict) or feats is None or not all(key in cam for key in ("view", "proj", "size")):
        return {}
    from wmprobe.data.sim.scene import project
    snames = store.state_names or []
    pos_cols = [snames.index(c) for c in cam.get("state_position", []) if c in snames]
    if len(pos_cols) != 3:
        return {}
    view, proj, size = cam["view"], cam["proj"], int(cam["size"])
    ee = feats[:, pos_cols].astype(np.float64)                                  # (N, 3) m

    def px_per_m(points: np.ndarray, direction: np.ndarray) -> np.ndarray:       # (n,) image px per m
        d = np.asarray(direction, np.float64) * 1e-3
        return np.linalg.norm(project(points + d, view, proj, size) - project(points - d, view, proj, size),
                              axis=-1) / 2e-3

    names = list(store.meta["action_names"])
    acts = np.asarray(store.actions, np.float64)
    out: dict[str, Any] = {}
    to_world = cam.get("action_to_world", {})
    for name, direction in to_world.items():
        if name in names:
            i = names.index(name)
            step = px_per_m(ee, direction) * np.abs(acts[:, i])
            per_k = px_per_m(ee[pairs.i], direction) * np.abs(pairs.y[:, i])
            out[name] = (float(np.median(step)), float(np.median(per_k)))
    grip = cam.get("gripper") or {}
    if grip.get("axis") in names and "finger_axis_world" in grip:
        half = np.asarray(grip["finger_axis_world"], np.float64) * float(grip.get("travel_m", 0.08)) / 2
        sep = float(np.median(np.linalg.norm(project(ee + half, view, proj, size)
                                             - project(ee - half, view, proj, size), axis=-1)))
        out[grip["axis"]] = (sep, sep)
    rot = [n for n in ("roll", "pitch", "yaw") if n in names]
    for name in rot:   # a point ROT_RADIUS from the end effector, turned by the angle (any direction: the mean)
        i = names.index(name)
        scale = np.mean([px_per_m(ee, d) for d in np.eye(3)], axis=0) * ROT_RADIUS
        out[name] = (float(np.median(scale * np.abs(acts[:, i]))),
                     float(np.median(scale[pairs.i] * np.abs(pairs.y[:, i]))))
    groups: dict[str, tuple[float, float]] = {}
    for g, idx in store.action_groups.items():
        axes_g = [names[i] for i in idx]
        if g == "translation" and axes_g and all(a in to_world for a in axes_g):
            w = np.stack([np.asarray(to_world[a], np.float64) for a in axes_g])          # (n, 3)
            disp_step, disp_k = acts[:, idx] @ w, pairs.y[:, idx].astype(np.float64) @ w
            groups[g] = (float(np.median(np.linalg.norm(project(ee + disp_step, view, proj, size)
                                                        - project(ee, view, proj, size), axis=-1))),
                         float(np.median(np.linalg.norm(project(ee[pairs.i] + disp_k, view, proj, size)
                                                        - project(ee[pairs.i], view, proj, size), axis=-1))))
        elif g == "rotation" and axes_g and all(a in rot for a in axes_g):
            scale = np.mean([px_per_m(ee, d) for d in np.eye(3)], axis=0) * ROT_RADIUS
            groups[g] = (float(np.median(scale * np.linalg.norm(acts[:, idx], axis=1))),
                         float(np.median(scale[pairs.i] * np.linalg.norm(pairs.y[:, idx], axis=1))))
        elif axes_g and all(a in out for a in axes_g):
            groups[g] = (min(out[a][0] for a in axes_g), min(out[a][1] for a in axes_g))
    out["groups"] = groups
    centre = np.median(ee, axis=0)
    dirs = {}
    for n, d in to_world.items():
        step = np.asarray(d, np.float64) * 1e-3
        dirs[n] = (project(centre + step, view, proj, size) - project(centre - step, view, proj, size)).ravel()
    out["angles"] = {f"{a}/{b}": round(float(np.degrees(np.arccos(min(
                         1.0, abs(dirs[a] @ dirs[b])
                         / (np.linalg.norm(dirs[a]) * np.linalg.norm(dirs[b]) + 1e-12))))), 1)
                     for j, a in enumerate(dirs) for b in list(dirs)[j + 1:]}
    return out


def _noise_share(store: EpisodeStore, pairs: Any, is_train: np.ndarray, is_test: np.ndarray, k: int,
                 names: list[str]) -> dict[str, Any] | None:
    """The share of each translation target's variance that is the expert's per-step noise (its std per
    episode in ``meta["expert_noise"]["translation_std_m"]``, independent per step: k sigma^2 over k steps)."""
    std = (store.meta.get("expert_noise") or {}).get("translation_std_m")
    to_world = (store.meta.get("camera") or {}).get("action_to_world") or {}
    if not isinstance(std, list) or len(std) != store.n_episodes or not to_world:
        return None
    var = k * np.asarray(std, np.float64)[pairs.episode] ** 2                     # (P,) noise variance
    out = {}
    for name in (n for n in to_world if n in names):
        i = names.index(name)
        out[name] = {part: _finite(float(var[m].mean() / np.var(pairs.y[m, i])))
                     if m.any() and np.var(pairs.y[m, i]) > 0 else None
                     for part, m in (("train", is_train), ("test", is_test))}
    return out


def _num(v: Any, fmt: str = "{:.2f}") -> str:
    return "-" if v is None else fmt.format(v)


def format_audit(result: dict[str, Any]) -> str:
    """The audit as a readable table: one line per axis, one per group, the angles, the headline and the rule."""
    sp = result["split"]
    held = f", held out: {', '.join(sp['test_task_names'])}" if sp.get("test_task_names") else ""
    lines = [f"action-space audit of {result['store']} (split {sp['kind']}: {sp['n_train_episodes']} train / "
             f"{sp['n_test_episodes']} test episodes{held}; k = {result['k']}; {result['n_pairs']['train']} / "
             f"{result['n_pairs']['test']} pairs)", "",
             f"{'axis':10s} {'group':12s} {'var_share':>9s} {'low':>4s} {'binary':>6s} {'const eps':>10s} "
             f"{'const test':>10s} {'px/step':>7s} {'px/k':>6s} {'state R2':>8s} {'state acc':>9s}"]
    for name, a in result["axes"].items():
        acc = a.get("state_ceiling_acc")
        accs = "" if acc is None else f"{acc:.2f}/{a['state_ceiling_bacc']:.2f}"
        lines.append(f"{name:10s} {a['group'] or '-':12s} {_num(a['var_share']):>9s} "
                     f"{'LOW' if a['low_share'] else '':>4s} "
                     f"{'yes' if a['binary'] else '':>6s} {a['constant_episodes']:>4d}/{a['n_episodes']:<5d} "
                     f"{a['constant_test_episodes']:>4d}/{a['n_test_episodes']:<5d} {_num(a['image_px_per_step']):>7s} "
                     f"{_num(a['image_px_per_k']):>6s} {_num(a.get('state_ceiling_r2'), '{:.3f}'):>8s} "
                     f"{accs:>9s}")
    if result["angles"]:
        lines += ["", "angles between image directions: "
                  + ", ".join(f"{p} {a:g} deg" for p, a in result["angles"].items())]
    lines += ["", f"{'group':12s} {'var_share':>9s} {'const test':>10s} {'state R2':>8s} {'px/k':>6s} "
                  f"{'identifiable':>12s}  reasons"]
    for g, v in result["groups"].items():
        lines.append(f"{g:12s} {_num(v['var_share']):>9s} {'yes' if v['constant_on_test'] else 'no':>10s} "
                     f"{_num(v['state_ceiling_r2'], '{:.3f}'):>8s} {_num(v['image_px_per_k']):>6s} "
                     f"{'yes' if v['identifiable'] else 'no':>12s}  {'; '.join(v['reasons'])}")
    sc = result["state_ceiling"]
    lines.append("")
    lines.append("state ceiling: " + ("none (the store has no states)" if sc is None else
                                      f"R2 {_num(sc['r2'], '{:.3f}')} (ridge on the states of the frame pair)"))
    how = ("given by the user (override)" if result["override"] else
           result["fallback_reason"] if result["fallback"] else "by the rule")
    lines += [f"headline groups: {', '.join(result['headline_groups'])} ({how})", f"rule: {result['rule']}"]
    return "\n".join(lines)
