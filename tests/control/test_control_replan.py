"""control.replan: receding-horizon execution of the action chunks (query, and render, every N steps)."""
import numpy as np
import pytest

from wmprobe.control import ChunkActor, ControlConfig
from wmprobe.control.policy import PolicyConfig
from wmprobe.control.rollout import rollouts
from wmprobe.data.sim import check_params
from wmprobe.data.sim import scene as S
from wmprobe.errors import ConfigError

PARAMS = check_params("dynamic", 2, size=32, steps=8, tasks=["reach-red", "lift-blue"])


class BlockActor:
    """A stateful act that returns ``(B, n, 4)`` blocks of distinct, recognisable actions and logs its calls."""

    def __init__(self, n: int):
        self.n, self.calls, self.queries = n, [], 0

    def reset(self, n_worlds: int) -> None:
        self.calls.append(("reset", n_worlds))

    def __call__(self, obs, tasks, slots):
        self.calls.append(("act", len(obs), list(slots)))
        block = np.zeros((len(slots), self.n, 4))
        for r, s in enumerate(slots):
            for k in range(self.n):
                block[r, k] = [1e-3 * (self.queries * self.n + k + 1), 1e-4 * s, 0.0, 1.0]
        self.queries += 1
        return block if self.n > 1 else block[:, 0]


def _count(monkeypatch):
    rendered, applied = [], []
    render, apply = S.render, S.apply_action
    monkeypatch.setattr(S, "render", lambda p, w, **kw: rendered.append(w.client) or render(p, w, **kw))
    monkeypatch.setattr(S, "apply_action", lambda p, w, a: applied.append((w.client, np.array(a))) or apply(p, w, a))
    return rendered, applied


@pytest.mark.parametrize("n", [1, 3, 4])
def test_the_policy_is_queried_and_the_worlds_rendered_every_n_steps(monkeypatch, n):
    """Horizon 10: a query (one frame per live world) at steps 0, n, 2n, ...; in between the block's actions run
    open loop, in order, one per step; the last block is cut at the horizon."""
    rendered, applied = _count(monkeypatch)
    act = BlockActor(n)
    res = rollouts(PARAMS, ["reach-red", "lift-blue"], 1, 10, act)
    queries = -(-10 // n)
    assert [c for c in act.calls if c[0] == "act"] == [("act", 2, [0, 1])] * queries
    assert len(rendered) == 2 * queries                                  # 1 / n frames per step and world
    assert len(applied) == 2 * 10 and [r["steps"] for r in res] == [10, 10]
    per_world = {c: [a for cc, a in applied if cc == c] for c in dict.fromkeys(cc for cc, _ in applied)}
    for slot, acts in enumerate(per_world.values()):
        assert [round(a[0] / 1e-3) for a in acts] == list(range(1, 11))    # every action of every block, in order
        assert all(a[1] == pytest.approx(1e-4 * slot) for a in acts)


def test_a_world_that_succeeds_inside_a_block_stops_there(monkeypatch):
    from wmprobe.data.sim import success
    rendered, applied = _count(monkeypatch)
    updates: dict[int, int] = {}

    def update(self, *a, **kw):
        updates[id(self)] = updates.get(id(self), 0) + 1
        if self.task.name == "reach-red" and updates[id(self)] == 5:      # success at step 5, inside block 2
            self.first_step = 4
        return self.success
    monkeypatch.setattr(success.SuccessTracker, "update", update)
    act = BlockActor(4)
    res = rollouts(PARAMS, ["reach-red", "lift-blue"], 1, 12, act)
    assert [(r["success"], r["steps"]) for r in res] == [(True, 5), (False, 12)]
    slots = [c[2] for c in act.calls if c[0] == "act"]
    assert slots == [[0, 1], [0, 1], [1]]                              # world 0 not queried after its success
    assert len(rendered) == 2 + 2 + 1 and len(applied) == 5 + 12


def test_chunk_actor_returns_the_chunks_first_n_actions_with_gripper_signs():
    import torch

    class Fixed(torch.nn.Module):
        def forward(self, feats, desc):
            return torch.tensor([[0.1, 0.2, 0.3, 0.5, 0.4, 0.5, 0.6, -0.2, 0.7, 0.8, 0.9, 0.1]]).repeat(len(feats), 1)
    actor = ChunkActor(Fixed(), lambda obs: np.zeros((len(obs), 3), np.float32), chunk=3, d_act=4, gripper=[3],
                       replan=2)
    actor.reset(2)
    out = actor(np.zeros((2, 5)), ["reach-red", "lift-blue"], [0, 1])
    assert out.shape == (2, 2, 4)
    np.testing.assert_allclose(out[0], [[0.1, 0.2, 0.3, 1.0], [0.4, 0.5, 0.6, -1.0]], rtol=1e-6)
    ens = ChunkActor(Fixed(), lambda obs: np.zeros((len(obs), 3), np.float32), chunk=3, d_act=4, gripper=[3])
    ens.reset(2)
    assert ens(np.zeros((2, 5)), ["reach-red", "lift-blue"], [0, 1]).shape == (2, 4)   # replan 1: ensembling


def test_state_policy_with_replan_is_deterministic_and_queries_less():
    """The whole recipe (privileged state, no rendering) with replan = 4: the same seed gives the same success
    counts; it queries the policy a quarter as often as replan = 1 does over the same horizon."""
    from wmprobe.control import collect_demos, evaluate_state_control
    from wmprobe.data.sim.generate import generate
    from wmprobe.data.splits import Split
    store = generate("dynamic", 4, steps=16, size=32, workers=1, progress=False, tasks=["reach-red", "follow-ball"])
    split = Split("task", (0, 1, 2, 3), ())
    cfg = ControlConfig(rollouts=2, horizon=24, demos=2, policy=PolicyConfig(steps=200), replan=4)
    demos = collect_demos(store, split, cfg, render=False)
    calls = {"n": 0}
    real = ChunkActor.__call__

    def counting(self, *a):
        calls["n"] += 1
        return real(self, *a)
    import wmprobe.control as control
    rows = evaluate_state_control(store, split, cfg, seeds=(0,), demos=demos)
    again = evaluate_state_control(store, split, cfg, seeds=(0,), demos=demos)
    assert [(r["task"], r["success"]) for r in rows] == [(r["task"], r["success"]) for r in again]
    try:
        control.ChunkActor.__call__ = counting
        evaluate_state_control(store, split, cfg, seeds=(0,), demos=demos)
        q4 = calls["n"]
        calls["n"] = 0
        from dataclasses import replace
        evaluate_state_control(store, split, replace(cfg, replan=1), seeds=(0,), demos=demos)
        q1 = calls["n"]
    finally:
        control.ChunkActor.__call__ = real
    assert q4 <= -(-24 // 4) and q1 >= q4 * 2, (q1, q4)


def test_bad_replan_values_get_one_clear_error():
    from wmprobe.study.config import validate
    with pytest.raises(ConfigError, match="replan"):
        ControlConfig(replan=0)
    with pytest.raises(ConfigError, match="replan.*chunk"):
        ControlConfig(replan=5)                                       # chunk 4 by default
    with pytest.raises(ConfigError, match="replan"):
        ChunkActor(None, None, chunk=2, d_act=4, gripper=[], replan=3)
    base = {"name": "x", "datasets": [{"name": "d", "sim": "dynamic", "episodes": 8}], "encoders": ["pixels:4"]}
    for bad in ({"replan": 0}, {"replan": "two"}, {"replan": 1.5}, {"replan": 8}, {"replan": 3, "chunk": 2}):
        errs = [str(e) for e in validate({**base, "control": bad})]
        assert len(errs) == 1 and "control.replan" in errs[0], (bad, errs)
    assert validate({**base, "control": {"replan": 4}}) == []
    assert validate({**base, "control": {"replan": 2, "chunk": 2}}) == []


def test_replan_enters_a_control_tasks_key_only_when_set(tmp_path):
    """replan 1 (the default) leaves every control task's key as it was before the option existed, so cached
    cells stay valid; another value is another task."""
    import json
    from types import SimpleNamespace

    from wmprobe.study.control import FIELDS, _config, plan_control
    (tmp_path / "dyn").mkdir()
    (tmp_path / "dyn" / "meta.json").write_text(json.dumps({"source": {"kind": "wmprobe-sim", "suite": "dynamic"}}))
    enc = SimpleNamespace(frames_per_step=1, key="k", layers=("out",), label="px", family="pixels", id_weight=0.0)
    ds = SimpleNamespace(name="dyn", path=str(tmp_path / "dyn"), split_kind="task", train=(0,), test=(1,))
    without = {k: v for k, v in FIELDS.items() if k != "replan"}

    def key(control):
        return plan_control(SimpleNamespace(seeds=(0,), control=control), enc, ds, ("s",))
    assert key(without).key == key(dict(FIELDS)).key == key({**FIELDS, "replan": 1}).key
    four = key({**FIELDS, "replan": 4})
    assert four.key != key(dict(FIELDS)).key and _config(four).replan == 4
