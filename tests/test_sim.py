import numpy as np
import pytest

from wmprobe.data.sim import SUITES, cached_generate, generate
from wmprobe.data.sim.tasks import TASKS
from wmprobe.data.splits import make_split
from wmprobe.errors import ConfigError


@pytest.fixture(scope="module")
def static():
    return generate("static", 4, steps=12, seed=3, workers=1, progress=False)


def test_deterministic_for_a_seed_with_any_number_of_workers(static):
    again = generate("static", 4, steps=12, seed=3, workers=2, progress=False)
    np.testing.assert_array_equal(again.frames, static.frames)
    np.testing.assert_array_equal(again.actions, static.actions)
    assert again.fingerprint == static.fingerprint
    other = generate("static", 1, steps=12, seed=4, workers=1, progress=False)
    assert not np.array_equal(other.frames[:12], static.frames[:12])


def test_store_layout_and_meta(static):
    assert static.frames.shape == (48, 64, 64, 3) and static.frames.dtype == np.uint8
    assert static.actions.shape == (48, 7) and np.isfinite(static.actions).all()
    assert static.meta["action_groups"] == {"translation": [0, 1, 2], "rotation": [3, 4, 5], "gripper": [6]}
    assert len(static.meta["task_names"]) == len(TASKS) >= 10 and set(SUITES) == {"static", "dynamic"}
    assert set(np.unique(static.actions[:, 6])) <= {-1.0, 1.0}


def test_arm_moves_as_commanded(static):
    # the first frames of an episode: the arm moves toward a block; commanded translation is non-trivial
    # and consecutive frames differ where the arm is
    a = static.actions[:, :3]
    assert np.abs(a).max() > 0.01
    diff = np.abs(static.frames[1:12].astype(int) - static.frames[:11].astype(int)).sum(axis=(1, 2, 3))
    assert (diff > 0).all()


@pytest.mark.parametrize("suite", ["static", "dynamic"])
def test_only_the_dynamic_suite_moves_without_the_robot(suite):
    from wmprobe.data.sim import _params, make_world
    from wmprobe.data.sim import scene as S
    p, w, _, _ = make_world(_params(suite, 1, 64, 0, 8, "front"), 0)
    still = np.zeros(7)
    still[6] = 1.0  # keep the gripper open: a zero command
    S.apply_action(p, w, still)
    before = S.render(p, w)
    for _ in range(3):
        S.apply_action(p, w, still)
    change = np.abs(S.render(p, w).astype(int) - before.astype(int)).sum()
    if suite == "static":
        assert change < 1500  # nothing moves (the arm settles by a few intensity levels at most)
    else:
        assert change > 5000    # the distractors glide on


def test_task_ood_split_of_a_generated_store(tmp_path):
    store = cached_generate("static", tmp_path, 24, steps=3, seed=0, workers=2, progress=False)
    again = cached_generate("static", tmp_path, 24, steps=3, seed=0, progress=False)
    assert again.path == store.path  # reused, not regenerated
    assert np.bincount(store.tasks, minlength=len(TASKS)).min() >= 2  # balanced tasks
    sp = make_split(store, kind="task", seed=0)
    assert not set(store.tasks[list(sp.train)]) & set(store.tasks[list(sp.test)])


def test_bad_parameters():
    with pytest.raises(ConfigError, match="unknown simulator suite 'dynamc'"):
        generate("dynamc", 2)
    with pytest.raises(ConfigError, match="unknown camera"):
        generate("static", 2, camera="fisheye")
