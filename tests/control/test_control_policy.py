"""The control policy recipe: demonstrations cut at success, action chunks with temporal ensembling, the
privileged-state ceiling, and the options' checks."""
import numpy as np
import pytest

from wmprobe.control.policy import Ensembler, PolicyConfig, chunk_targets
from wmprobe.errors import ConfigError, StoreError


def test_chunk_targets_stack_the_next_actions_and_repeat_the_last():
    a = np.arange(10, dtype=np.float32).reshape(5, 2)         # 5 steps, 2 action dims
    y = chunk_targets(a, 3, 3)
    assert y.shape == (3, 6)
    assert y[0].tolist() == [0, 1, 2, 3, 4, 5]
    assert y[2].tolist() == [4, 5, 6, 7, 8, 9]
    assert chunk_targets(a, 5, 3)[4].tolist() == [8, 9, 8, 9, 8, 9]   # past the end: the last action


def test_temporal_ensembling_averages_every_prediction_for_the_current_step():
    ens = Ensembler(2, chunk=3, d_act=2, gripper=[1])
    c0 = np.array([[1.0, 1, 2, 1, 3, -1]])                  # world 0, step 0: predictions for steps 0, 1, 2
    assert ens.step([0], c0).tolist() == [[1.0, 1.0]]
    c1 = np.array([[5.0, -1, 7, -1, 9, -1]])                # step 1: its own 5 and the step-0 query's 2
    assert ens.step([0], c1).tolist() == [[3.5, -1.0]]      # gripper: sign of (1 + -1) / 2 = 0 -> closed
    c2 = np.array([[0.0, 1, 0, 1, 0, 1]])
    assert ens.step([0], c2)[0, 0] == pytest.approx((3 + 7 + 0) / 3)
    ens.step([1], c0)                                        # worlds keep their own history
    assert ens.step([1], c1)[0, 0] == 3.5


def test_bad_policy_and_control_options_get_one_clear_error():
    from wmprobe.control import ControlConfig
    from wmprobe.study.config import validate
    with pytest.raises(ConfigError, match="chunk"):
        PolicyConfig(chunk=0)
    with pytest.raises(ConfigError, match="demos"):
        ControlConfig(demos=-1)
    base = {"name": "x", "datasets": [{"name": "d", "sim": "dynamic", "episodes": 8}], "encoders": ["pixels:4"]}
    errs = validate({**base, "control": {"chunk": 0, "demos": -2, "state": "yes"}})
    text = "\n".join(map(str, errs))
    for where in ("control.chunk", "control.demos", "control.state"):
        assert text.count(where) == 1, text
    assert validate({**base, "control": {"chunk": 1, "demos": 0, "state": False}}) == []


@pytest.fixture(scope="module")
def tiny():
    """A 4-episode dynamic store (reach-red, follow-ball), all episodes train, and its demonstrations."""
    from wmprobe.control import ControlConfig, collect_demos
    from wmprobe.data.sim.generate import generate
    from wmprobe.data.splits import Split
    store = generate("dynamic", 4, steps=16, size=32, workers=1, progress=False, tasks=["reach-red", "follow-ball"])
    split = Split("task", (0, 1, 2, 3), ())
    cfg = ControlConfig(rollouts=3, horizon=30, demos=3, policy=PolicyConfig(steps=300))
    return store, split, cfg, collect_demos(store, split, cfg, render=False)


def test_demonstrations_replay_the_store_and_are_cut_at_success(tiny):
    from wmprobe.control.demos import DEMO_OFFSET, STATE_DIM, check_replay
    store, split, cfg, demos = tiny
    replayed = [d for d in demos if d.index < DEMO_OFFSET]
    assert [d.index for d in replayed] == [0, 1, 2, 3]
    names = store.meta["task_names"]
    for d in replayed:
        assert d.task == names[int(store.tasks[d.index])]
        assert d.states.shape == (16, STATE_DIM) and d.frames is None
    fresh = [d for d in demos if d.index >= DEMO_OFFSET]
    assert len(fresh) == 2 * cfg.demos and all(d.success_step is not None for d in fresh)
    assert all(d.used == d.success_step + 1 for d in fresh)
    s = store.episode_starts[0]
    tampered = np.array(store.actions[s:s + 16])
    tampered[3, 0] += 0.01
    with pytest.raises(StoreError, match="does not replay"):
        check_replay(replayed[0], tampered, "episode 0")


def test_the_state_policy_solves_an_easy_task_and_is_deterministic(tiny):
    """The recipe on privileged state reaches the red block from held-out initial states; the same seed gives
    identical success counts."""
    from wmprobe.control import evaluate_state_control
    store, split, cfg, demos = tiny
    rows = evaluate_state_control(store, split, cfg, seeds=(0,), demos=demos)
    by = {r["task"]: r for r in rows}
    assert by["reach-red"]["n_rollouts"] == 3 and by["reach-red"]["success"] >= 2 / 3, rows
    assert {r["layer"] for r in rows} == {"state"}
    again = evaluate_state_control(store, split, cfg, seeds=(0,), demos=demos)
    assert [(r["task"], r["success"]) for r in rows] == [(r["task"], r["success"]) for r in again]
