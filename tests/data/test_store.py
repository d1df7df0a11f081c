import json

import numpy as np
import pytest

from helpers import moving_square_store
from wmprobe.data import load_dataset
from wmprobe.data.splits import make_split
from wmprobe.data.store import EpisodeStore, validate_store
from wmprobe.errors import ConfigError, StoreError


def test_round_trip_is_memory_mapped_and_identical(tmp_path):
    store = moving_square_store(episodes=6, steps=10)
    store.save(tmp_path / "s")
    back = EpisodeStore.load(tmp_path / "s")
    assert isinstance(back.frames, np.memmap)
    np.testing.assert_array_equal(back.frames, store.frames)
    np.testing.assert_array_equal(back.actions, store.actions)
    assert back.fingerprint == store.fingerprint
    assert back.n_episodes == 6 and back.episode_lengths.tolist() == [10] * 6
    assert back.action_groups["gripper"] == [6]


def test_fingerprint_changes_with_content():
    a = moving_square_store(episodes=4, steps=6, seed=0)
    b = moving_square_store(episodes=4, steps=6, seed=1)
    assert a.fingerprint != b.fingerprint
    assert a.fingerprint == moving_square_store(episodes=4, steps=6, seed=0).fingerprint


def test_nan_actions_are_refused_naming_the_episode(tmp_path):
    store = moving_square_store(episodes=4, steps=6)
    store.save(tmp_path / "s")
    acts = np.load(tmp_path / "s" / "actions.npy")
    acts[14, 2] = np.nan  # episode 2 (rows 12..17)
    np.save(tmp_path / "s" / "actions.npy", acts)
    with pytest.raises(StoreError, match=r"NaN or inf actions in episode\(s\) \[2\]"):
        EpisodeStore.load(tmp_path / "s")


def test_truncated_and_missing_files_give_clear_errors(tmp_path):
    store = moving_square_store(episodes=4, steps=6)
    store.save(tmp_path / "s")
    f = tmp_path / "s" / "frames.npy"
    f.write_bytes(f.read_bytes()[:200])
    with pytest.raises(StoreError, match="frames.npy is corrupt or truncated"):
        EpisodeStore.load(tmp_path / "s")
    (tmp_path / "s" / "tasks.npy").unlink()
    with pytest.raises(StoreError, match="missing tasks.npy"):
        EpisodeStore.load(tmp_path / "s")
    with pytest.raises(StoreError, match="does not exist"):
        load_dataset(tmp_path / "nope")
    assert validate_store(tmp_path / "s")


def test_validate_store_lists_every_problem(tmp_path):
    store = moving_square_store(episodes=4, steps=6)
    store.save(tmp_path / "s")
    assert validate_store(tmp_path / "s") == []
    (tmp_path / "s" / "actions.npy").write_bytes(b"junk")
    f = tmp_path / "s" / "tasks.npy"
    f.write_bytes(f.read_bytes()[:100])
    problems = validate_store(tmp_path / "s")
    assert len(problems) == 2, problems
    assert "actions.npy is corrupt or truncated" in problems[0] and "tasks.npy is corrupt or truncated" in problems[1]
    (tmp_path / "s" / "meta.json").write_text("{")
    (tmp_path / "s" / "frames.npy").unlink()
    problems = validate_store(tmp_path / "s")
    assert len(problems) == 4 and "missing frames.npy" in problems[0] and "meta.json is not valid JSON" in problems[1]
    # every file reads: each inconsistency and the NaN actions are listed, not only the first
    store.save(tmp_path / "t")
    acts = np.load(tmp_path / "t" / "actions.npy")
    acts[3, 0] = np.inf  # episode 0
    np.save(tmp_path / "t" / "actions.npy", acts)
    np.save(tmp_path / "t" / "tasks.npy", np.array([0, 1, 0], np.int64))  # 3 entries for 4 episodes
    meta = json.loads((tmp_path / "t" / "meta.json").read_text())
    del meta["fps"]
    (tmp_path / "t" / "meta.json").write_text(json.dumps(meta))
    problems = validate_store(tmp_path / "t")
    assert len(problems) == 3, problems
    assert "tasks.npy has 3 entries for 4 episodes" in problems[0] and "lacks 'fps'" in problems[1]
    assert "NaN or inf actions in episode(s) [0]" in problems[2] and all(str(tmp_path / "t") in p for p in problems)


def test_inconsistent_meta_is_refused_on_write(tmp_path):
    store = moving_square_store(episodes=4, steps=6)
    meta = dict(store.meta, action_names=["x", "y"])
    from wmprobe.data.store import write_store
    with pytest.raises(StoreError, match="names 2 action axes but actions have 7"):
        write_store(tmp_path / "bad", store.frames, store.actions, store.episode_ends, store.tasks, meta)
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("kind", ["episode", "task"])
def test_splits_never_share_episodes_or_tasks(kind):
    store = moving_square_store(episodes=16, steps=4, tasks=4)
    sp = make_split(store, kind=kind, seed=3)
    assert not set(sp.train) & set(sp.test)
    assert sorted(sp.train + sp.test) == list(range(16))
    if kind == "task":
        train_tasks = set(store.tasks[list(sp.train)].tolist())
        test_tasks = set(store.tasks[list(sp.test)].tolist())
        assert not train_tasks & test_tasks and test_tasks == set(sp.test_tasks)
    assert make_split(store, kind=kind, seed=3) == sp


def test_split_errors():
    store = moving_square_store(episodes=4, steps=4, tasks=1)
    with pytest.raises(ConfigError, match="needs >= 2 tasks"):
        make_split(store, kind="task")
    with pytest.raises(ConfigError, match="unknown split"):
        make_split(store, kind="frames")


def test_subset_keeps_episode_boundaries():
    store = moving_square_store(episodes=5, steps=7)
    sub = store.subset([3, 1])
    assert sub.n_episodes == 2 and sub.n_frames == 14
    np.testing.assert_array_equal(sub.frames[:7], store.frames[21:28])
    assert sub.meta["parent_fingerprint"] == store.fingerprint


def test_states_round_trip_and_count_in_the_fingerprint(tmp_path):
    from wmprobe.data.store import from_episodes
    plain = moving_square_store(episodes=3, steps=5)
    eps = [(plain.frames[plain.episode_slice(e)], plain.actions[plain.episode_slice(e)]) for e in range(3)]
    kw = dict(fps=10, action_names=plain.meta["action_names"], action_groups=plain.meta["action_groups"],
              task_names=plain.meta["task_names"], source={"kind": "test"})
    states = [np.full((5, 2), e, np.float32) + np.arange(5)[:, None] for e in range(3)]
    with_states = from_episodes(eps, plain.tasks, states=states, state_names=["a", "b"], **kw)
    without = from_episodes(eps, plain.tasks, **kw)
    assert without.states is None and without.state_names is None
    assert without.fingerprint == plain.fingerprint             # a store without states hashes as before
    assert with_states.fingerprint != without.fingerprint       # states are part of what the store holds
    with_states.save(tmp_path / "s")
    back = EpisodeStore.load(tmp_path / "s")
    np.testing.assert_array_equal(back.states, with_states.states)
    assert back.state_names == ["a", "b"] and back.fingerprint == with_states.fingerprint
    sub = back.subset([2, 0])
    np.testing.assert_array_equal(sub.states[:5], states[2])
    assert validate_store(tmp_path / "s") == []
    # old stores (no states.npy) keep loading
    without.save(tmp_path / "old")
    assert EpisodeStore.load(tmp_path / "old").states is None
    # a states file that disagrees with the frames is named
    np.save(tmp_path / "s" / "states.npy", np.zeros((4, 2), np.float32))
    with pytest.raises(StoreError, match="states.npy must be"):
        EpisodeStore.load(tmp_path / "s")
    assert any("states.npy" in p for p in validate_store(tmp_path / "s"))
    bad = np.zeros((15, 2), np.float32)
    bad[7, 1] = np.nan
    np.save(tmp_path / "s" / "states.npy", bad)
    with pytest.raises(StoreError, match=r"NaN or inf states in episode\(s\) \[1\]"):
        EpisodeStore.load(tmp_path / "s")
    with pytest.raises(StoreError, match="one .T, S. array per episode"):
        from_episodes(eps, plain.tasks, states=states[:2], **kw)
