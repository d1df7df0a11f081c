"""The action-space audit: which groups a probe can be scored on, with the evidence (issue 16)."""
import json

import numpy as np
import pytest

from wmprobe.data.audit import RULE, audit, headline_groups, state_features
from wmprobe.data.splits import Split
from wmprobe.data.store import EpisodeStore, from_episodes
from wmprobe.errors import ConfigError


@pytest.fixture(scope="module")
def sim_store(tmp_path_factory):
    """The dynamic suite, two episodes per task, written to disk (the CLI reads it too)."""
    from wmprobe.data.sim import generate
    path = tmp_path_factory.mktemp("audit") / "dyn"
    return generate("dynamic", 28, size=32, steps=24, seed=2, workers=2, progress=False).save(path)


def test_translation_of_the_simulator_is_identifiable_with_a_high_state_ceiling(sim_store):
    store = EpisodeStore.load(sim_store)
    r = audit(store, "task", k=4)
    tr = r["groups"]["translation"]
    assert tr["identifiable"] and not tr["reasons"], tr
    assert r["state_ceiling"]["by_group"]["translation"] > 0.8
    assert "translation" in headline_groups(r) and r["rule"] == RULE and not r["override"]
    assert set(r["angles"]) == {"x/y", "x/z", "y/z"} and min(r["angles"].values()) >= 30
    assert tr["image_px_per_k"] >= 2 and all(r["axes"][a]["image_px_per_k"] > 0 for a in "xyz")
    assert r["axes"]["gripper"]["binary"] and "state_ceiling_acc" in r["axes"]["gripper"]
    assert r["axes"]["gripper"]["image_px_per_k"] > 0           # open vs closed finger tips, projected
    assert all(0 <= v["test"] < 0.5 for v in r["expert_noise_share"].values())
    assert state_features(store).shape == (store.n_frames, 4)
    json.dumps(r)                                              # JSON-able as it is


def test_the_front_camera_is_flagged_for_x_and_z(sim_store):
    # the same data seen through the front camera's projection: x and z share one image direction
    from wmprobe.data.sim import camera_meta
    store = EpisodeStore.load(sim_store)
    meta = {**store.meta, "camera": camera_meta("front", 32)}
    front = EpisodeStore(store.frames, store.actions, store.episode_ends, store.tasks, meta, states=store.states)
    r = audit(front, "task", k=4)
    assert r["angles"]["x/z"] < 15 and min(r["angles"]["x/y"], r["angles"]["y/z"]) > 60
    assert any("x/z share an image direction" in s for s in r["groups"]["translation"]["reasons"])


def _constructed(constant_in_test: bool = True):
    """6 tasks x 3 episodes of 12 steps: x random, roll random in train tasks but 0 in test tasks (3, 4, 5),
    gripper a two-level command that switches in every episode; states = (position, gripper)."""
    rng = np.random.default_rng(0)
    eps, states, tasks = [], [], []
    for e in range(18):
        task = e % 6
        a = np.zeros((12, 3), np.float32)
        a[:, 0] = rng.normal(0, 1, 12)
        a[:, 1] = 0.0 if (constant_in_test and task >= 3) else rng.normal(0, 1, 12)
        a[:, 2] = np.where(np.arange(12) < rng.integers(3, 9), 1.0, -1.0)
        pos = np.concatenate([[0.0], np.cumsum(a[:-1, 0])])
        grip = np.concatenate([[1.0], a[:-1, 2]])
        eps.append((np.zeros((12, 8, 8, 3), np.uint8), a))
        states.append(np.stack([pos, grip], axis=1).astype(np.float32))
        tasks.append(task)
    store = from_episodes(eps, tasks, fps=10, action_names=["x", "roll", "gripper"],
                          action_groups={"translation": [0], "rotation": [1], "gripper": [2]},
                          task_names=[f"t{i}" for i in range(6)], source={"kind": "test"}, name="constructed",
                          states=states, state_names=["pos", "grip"])
    test = tuple(e for e in range(18) if tasks[e] >= 3)
    split = Split("task", tuple(e for e in range(18) if tasks[e] < 3), test, (3, 4, 5), ("t3", "t4", "t5"))
    return store, split


def test_an_axis_constant_on_the_test_episodes_is_flagged_and_left_out():
    store, split = _constructed()
    r = audit(store, split, k=2)
    roll = r["axes"]["roll"]
    assert roll["constant_test_episodes"] == roll["n_test_episodes"] == 9 and roll["low_share"]
    rot = r["groups"]["rotation"]
    assert not rot["identifiable"] and rot["constant_on_test"]
    assert any("constant on all 9 test episodes" in s for s in rot["reasons"])
    assert any("variance share" in s for s in rot["reasons"])
    assert "rotation" not in r["headline_groups"] and "translation" in r["headline_groups"]
    assert r["axes"]["x"]["image_px_per_k"] is None and r["angles"] == {}     # not simulated: no camera


def test_a_binary_axis_gets_accuracy_from_the_state_ceiling():
    store, split = _constructed()
    r = audit(store, split, k=2)
    g = r["axes"]["gripper"]
    assert g["binary"] and not r["axes"]["x"]["binary"]
    assert g["state_ceiling_acc"] > 0.9 and 0 <= g["state_ceiling_bacc"] <= 1
    # a binary command stays out of the headline R2 (scored by accuracy beside it), even with a perfect state
    assert "gripper" not in r["headline_groups"]
    assert any("binary command" in s for s in r["groups"]["gripper"]["reasons"])
    assert r["state_ceiling"]["by_group"]["translation"] > 0.95      # x_t+k - x_t is the sum of the actions


def test_override_fallback_and_errors():
    store, split = _constructed()
    r = audit(store, split, k=2, headline=["rotation"])
    assert r["headline_groups"] == ["rotation"] and r["override"]
    assert not r["groups"]["rotation"]["identifiable"]             # the evidence is still reported
    with pytest.raises(ConfigError, match="not action groups"):
        audit(store, split, k=2, headline=["wrist"])
    with pytest.raises(ConfigError, match="k=12 leaves no frame pair"):
        audit(store, split, k=12)
    flat, _ = _constructed()
    flat = EpisodeStore(flat.frames, np.zeros_like(flat.actions), flat.episode_ends, flat.tasks, flat.meta)
    r = audit(flat, split, k=2)
    assert r["fallback"] and r["headline_groups"] == ["translation", "rotation", "gripper"]
    assert r["state_ceiling"] is None and "no group" in r["fallback_reason"]


def test_cli_prints_the_table_and_json(sim_store, capsys, tmp_path):
    from wmprobe.cli import main
    assert main(["data", "audit", str(sim_store), "--k", "4"]) == 0
    out = capsys.readouterr().out
    assert "translation" in out and "headline groups:" in out and "rule:" in out and "angles" in out
    assert main(["data", "audit", str(sim_store), "--json", "--headline", "translation"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["headline_groups"] == ["translation"] and doc["override"]
    assert main(["data", "audit", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and len(err.strip().splitlines()) == 1
    assert main(["data", "audit", str(sim_store), "--k", "40"]) == 2
    assert "leaves no frame pair" in capsys.readouterr().err
