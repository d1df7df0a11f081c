"""Closed-loop control: success predicates, the Wilson interval, the behaviour-cloning head, rollouts."""
import numpy as np
import pytest

from wmprobe.control.policy import DESCRIPTOR_DIM, PolicyConfig, descriptors, fit_policy, task_descriptor
from wmprobe.control.rollout import success_rows, wilson
from wmprobe.errors import ConfigError


@pytest.mark.parametrize("k,n,lo,hi", [(0, 10, 0.0, 0.2775), (5, 10, 0.2366, 0.7634), (10, 10, 0.7225, 1.0),
                                       (1, 20, 0.0089, 0.2361)])
def test_wilson_matches_the_closed_form(k, n, lo, hi):
    got = wilson(k, n)
    assert got == pytest.approx((lo, hi), abs=2e-4)


def test_wilson_of_no_rollouts_is_nan():
    assert all(np.isnan(wilson(0, 0)))


def test_descriptors_are_distinct_and_compositional():
    from wmprobe.data.sim.tasks import DYNAMIC_TASKS
    table = np.stack([task_descriptor(t.name) for t in DYNAMIC_TASKS])
    assert table.shape == (len(DYNAMIC_TASKS), DESCRIPTOR_DIM)
    assert len({tuple(r) for r in table}) == len(DYNAMIC_TASKS)       # every task described differently
    # lift-blue = lift (from lift-yellow) + blue (from reach-blue): its parts appear in other tasks
    lift_blue, lift_yellow, reach_blue = (task_descriptor(n) for n in ("lift-blue", "lift-yellow", "reach-blue"))
    assert np.array_equal(lift_yellow[:6], lift_blue[:6])                     # same skill
    assert np.array_equal(reach_blue[6:12], lift_blue[6:12])                   # same object
    with pytest.raises(ConfigError, match="no embedded task"):
        task_descriptor("open-drawer")
    assert descriptors(["reach-red", "lift-blue"], np.array([1, 0, 1])).shape == (3, DESCRIPTOR_DIM)


def test_policy_learns_a_recoverable_action_and_is_seeded():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(2000, 12)).astype(np.float32)
    desc = descriptors(["reach-red", "push-red-left"], rng.integers(0, 2, 2000))
    w = rng.normal(size=(12, 3))
    actions = np.c_[feats @ w * 0.01, np.where(desc[:, 1] > 0, 1.0, -1.0)].astype(np.float32)  # grip by skill
    cfg = PolicyConfig(steps=400)
    pol = fit_policy(feats[:1600], desc[:1600], actions[:1600], seed=0, cfg=cfg)
    import torch
    with torch.no_grad():
        pred = pol(torch.from_numpy(feats[1600:]), torch.from_numpy(desc[1600:])).numpy()
    y = actions[1600:]
    r2 = 1 - ((pred[:, :3] - y[:, :3]) ** 2).sum(0) / ((y[:, :3] - y[:, :3].mean(0)) ** 2).sum(0)
    assert (r2 > 0.9).all()
    assert (np.sign(pred[:, 3]) == y[:, 3]).mean() > 0.99
    again = fit_policy(feats[:1600], desc[:1600], actions[:1600], seed=0, cfg=cfg)
    other = fit_policy(feats[:1600], desc[:1600], actions[:1600], seed=1, cfg=cfg)
    same = [torch.equal(a, b) for a, b in zip(pol.state_dict().values(), again.state_dict().values())]
    assert all(same)
    assert not all(torch.equal(a, b) for a, b in zip(pol.state_dict().values(), other.state_dict().values()))


def test_policy_refuses_nan_and_misaligned_rows():
    f = np.zeros((10, 4), np.float32)
    d = descriptors(["reach-red"], np.zeros(10, int))
    with pytest.raises(ConfigError, match="aligned"):
        fit_policy(f, d[:5], np.zeros((10, 4), np.float32))
    bad = np.zeros((10, 4), np.float32)
    bad[3, 1] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        fit_policy(f, d, bad)


def test_success_rows_per_task_and_split():
    res = [{"task": "reach-red", "success": True}, {"task": "reach-red", "success": False},
           {"task": "lift-blue", "success": True}, {"task": "lift-blue", "success": True}]
    rows = {(r["task_split"], r["task"]): r for r in
            success_rows(res, {"reach-red": "train", "lift-blue": "test"})}
    assert rows[("train", "reach-red")]["success"] == 0.5 and rows[("train", "reach-red")]["n_rollouts"] == 2
    assert rows[("test", "all")]["success"] == 1.0
    assert rows[("test", "all")]["success_ci_low"] == pytest.approx(wilson(2, 2)[0])


@pytest.mark.parametrize("suite", ["dynamic", "static"])
def test_expert_succeeds_on_fresh_initial_states_of_every_task(suite):
    """The predicates' upper reference point: the scripted expert succeeds on >= 90 % of every task."""
    from wmprobe.control.rollout import scripted_rollouts
    from wmprobe.data.sim.generate import check_params
    from wmprobe.data.sim.tasks import suite_tasks
    params = check_params(suite, 1, 64, 0, 80)
    names = [t.name for t in suite_tasks(suite)]
    res = scripted_rollouts(params, names, 10, 80, "expert")
    per_task = {n: sum(r["success"] for r in res if r["task"] == n) for n in names}
    assert all(k >= 9 for k in per_task.values()), per_task


def test_a_random_policy_rarely_succeeds():
    """The lower reference point: a random policy (4 rollouts of each of the dynamic suite's 14 tasks, which
    include the static suite's 12) succeeds on <= 10 % overall and at most once per task."""
    from wmprobe.control.rollout import scripted_rollouts
    from wmprobe.data.sim.generate import check_params
    from wmprobe.data.sim.tasks import suite_tasks
    names = [t.name for t in suite_tasks("dynamic")]
    res = scripted_rollouts(check_params("dynamic", 1, 64, 0, 80), names, 4, 80, "random")
    per_task = {n: sum(r["success"] for r in res if r["task"] == n) for n in names}
    assert sum(per_task.values()) <= 0.1 * len(res) and max(per_task.values()) <= 1, per_task


def test_a_study_with_control_writes_success_rows(tmp_path):
    """`control:` in a study: per-frame encoders on a simulator dataset get bc-policy rows per seed, task split
    and task, with Wilson intervals; the same run again reuses them; the probe analysis ignores them."""
    import pandas as pd

    from wmprobe.analysis import measured_rows
    from wmprobe.study.runner import run
    doc = {"name": "ctl", "datasets": [{"name": "dyn", "sim": "dynamic", "episodes": 16, "steps": 12,
                                         "tasks": ["reach-red", "reach-blue", "lift-blue", "push-red-left"]}],
           "encoders": [{"name": "pixels:4", "label": "pixels"}], "probes": ["ridge"], "ks": [1], "seeds": [0],
           "n_boot": 20, "executor": {"workers": 1},
           "control": {"rollouts": 2, "horizon": 6, "policy_steps": 30, "demos": 1}}
    df = run(doc, out=tmp_path / "out", cache=tmp_path / "cache", progress=False, report=False)
    ctl = df[df["probe"] == "bc-policy"]
    assert set(ctl["encoder"]) == {"pixels", "state"}            # the privileged-state ceiling rides along
    assert set(ctl[ctl["encoder"] == "state"]["layer"]) == {"state"}
    ctl = ctl[ctl["encoder"] == "pixels"]
    assert set(ctl["task_split"]) == {"train", "test"}
    assert (ctl["error"].fillna("") == "").all(), ctl["error"].tolist()
    overall = ctl[ctl["task"] == "all"].set_index("task_split")
    test_tasks = set(ctl[(ctl["task_split"] == "test") & (ctl["task"] != "all")]["task"])
    assert overall.loc["test", "n_rollouts"] == 2 * len(test_tasks)
    assert ((ctl["success_ci_low"] <= ctl["success"]) & (ctl["success"] <= ctl["success_ci_high"])).all()
    assert "bc-policy" not in set(measured_rows(df)["probe"])
    again = run(doc, out=tmp_path / "out2", cache=tmp_path / "cache", progress=False, report=False)
    cols = ["task_split", "task", "success", "n_rollouts"]
    again = again[(again["probe"] == "bc-policy") & (again["encoder"] == "pixels")]
    pd.testing.assert_frame_equal(ctl[cols].reset_index(drop=True), again[cols].reset_index(drop=True))


def test_control_config_is_checked_with_locations():
    from wmprobe.study.config import validate
    base = {"name": "x", "datasets": [{"name": "d", "sim": "dynamic", "episodes": 8}], "encoders": ["pixels:4"]}
    text = "\n".join(map(str, validate({**base, "control": {"rollouts": 0, "horizn": 3, "tasks": ["fly"]}})))
    for where in ("control.rollouts", "control.horizn", "control.tasks[0]"):
        assert where in text, text
    assert validate({**base, "control": {"rollouts": 2}}) == []


def test_control_seeds_and_datasets_narrow_the_control_tasks_only(tmp_path):
    """`control.seeds` / `control.datasets` pick the policies' seeds and the datasets rolled out (the probes keep
    the study's); unset, a task's key is what it was before they existed; bad values are located."""
    import json
    from types import SimpleNamespace

    from wmprobe.study.config import validate
    from wmprobe.study.control import FIELDS, plan_control
    base = {"name": "x", "datasets": [{"name": "d", "sim": "dynamic", "episodes": 8}], "encoders": ["pixels:4"]}
    text = "\n".join(map(str, validate({**base, "control": {"seeds": [0, 0], "datasets": ["nope"]}})))
    assert "control.seeds" in text and "control.datasets" in text and "'nope'" in text, text
    assert validate({**base, "control": {"seeds": [3], "datasets": ["d"]}}) == []
    assert validate({**base, "control": {"seeds": None, "datasets": None}}) == []
    for name in ("dyn", "stat"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "meta.json").write_text(json.dumps({"source": {"kind": "wmprobe-sim", "suite": "dynamic"}}))
    enc = SimpleNamespace(frames_per_step=1, key="k", layers=("out",), label="px", family="pixels", id_weight=0.0)
    ds = {n: SimpleNamespace(name=n, path=str(tmp_path / n), split_kind="task", train=(0,), test=(1,))
          for n in ("dyn", "stat")}
    study = SimpleNamespace(seeds=(0, 1, 2), control=dict(FIELDS))
    default = plan_control(study, enc, ds["dyn"], ("s",))
    assert default.seeds == (0, 1, 2)
    narrowed = SimpleNamespace(seeds=(0, 1, 2), control={**FIELDS, "seeds": [0], "datasets": ["dyn"]})
    assert plan_control(narrowed, enc, ds["stat"], ("s",)) is None
    one = plan_control(narrowed, enc, ds["dyn"], ("s",))
    assert one.seeds == (0,) and one.key != default.key and one.control == default.control
    same = SimpleNamespace(seeds=(0, 1, 2), control={**FIELDS, "seeds": [0, 1, 2], "datasets": ["dyn", "stat"]})
    assert plan_control(same, enc, ds["dyn"], ("s",)).key == default.key    # the list does not enter the key
