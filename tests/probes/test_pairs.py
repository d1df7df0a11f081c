"""Pairing: never across episodes, targets aggregated as documented, tubelets aligned to the right frames."""
import warnings

import numpy as np
import pytest

from wmprobe.errors import ProbeError
from wmprobe.probes.pairs import make_pairs, shuffled_pairs, tubelet_steps

GROUPS = {"translation": [0, 1, 2], "rotation": [3, 4, 5], "gripper": [6]}


def _store_arrays(lengths=(7, 5, 9), seed=0):
    rng = np.random.default_rng(seed)
    ends = np.cumsum(lengths).astype(np.int64)
    actions = rng.normal(size=(int(ends[-1]), 7)).astype(np.float32)
    actions[:, 6] = rng.integers(0, 2, len(actions))
    return actions, ends


def _frame_steps(ends):
    return tubelet_steps(ends, 1)


@pytest.mark.parametrize("k", [1, 2, 4, 8])
def test_pairs_stay_inside_episodes_and_sum_the_actions_between(k):
    actions, ends = _store_arrays()
    sf, se = _frame_steps(ends)
    with warnings.catch_warnings(record=True) as caught:     # k=8: episodes 0 (7 steps) and 1 (5) give no pair
        warnings.simplefilter("always")
        p = make_pairs(sf, se, actions, ends, k, GROUPS)
    assert p.skipped_episodes.tolist() == [e for e, L in enumerate((7, 5, 9)) if L <= k]
    assert len(caught) == (k == 8)
    assert (se[p.i] == se[p.j]).all() and (p.episode == se[p.i]).all()
    assert (sf[p.j] - sf[p.i] == k).all()
    # every (t, t+k) inside an episode is there exactly once: sum over episodes of max(0, L - k)
    assert len(p) == sum(max(0, L - k) for L in (7, 5, 9))
    for n in range(len(p)):
        a = actions[sf[p.i[n]] : sf[p.j[n]]]
        np.testing.assert_allclose(p.y[n, :6], a[:, :6].sum(0), rtol=1e-5, atol=1e-5)
        assert p.y[n, 6] == a[-1, 6]             # gripper: last commanded value
    assert p.target_groups == GROUPS


def test_concat_keeps_every_action_in_order():
    actions, ends = _store_arrays()
    sf, se = _frame_steps(ends)
    p = make_pairs(sf, se, actions, ends, 3, GROUPS, agg="concat")
    assert p.y.shape == (len(p), 21)
    n = 4
    np.testing.assert_array_equal(p.y[n].reshape(3, 7), actions[sf[p.i[n]] : sf[p.i[n]] + 3])
    assert p.target_groups["gripper"] == [6, 13, 20]
    assert p.target_groups["translation"][:3] == [0, 1, 2] and len(p.target_groups["translation"]) == 9


def test_tubelet_steps_map_to_the_right_frames():
    actions, ends = _store_arrays(lengths=(7, 5, 9))
    sf, se = tubelet_steps(ends, 2)
    # episode 0: rows 0..6 -> steps at 0,2,4 (frame 6 left over); episode 1: rows 7..11 -> 7,9; episode 2: 12..20
    assert sf.tolist() == [0, 2, 4, 7, 9, 12, 14, 16, 18]
    assert se.tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 2]
    p = make_pairs(sf, se, actions, ends, 1, GROUPS)
    # a tubelet pair (s, s+1) covers 2 frames: the target sums the 2 actions a[f], a[f+1]
    assert (sf[p.j] - sf[p.i] == 2).all()
    n = int(np.nonzero(sf[p.i] == 14)[0][0])
    np.testing.assert_allclose(p.y[n, :6], actions[14:16, :6].sum(0), rtol=1e-5)
    assert p.y[n, 6] == actions[15, 6]
    with pytest.warns(UserWarning, match=r"k=2 is longer than 1 of 3 episodes .* episode\(s\) \[1\]"):
        assert len(make_pairs(sf, se, actions, ends, 2, GROUPS)) == 1 + 0 + 2     # episode 1: 2 tubelet steps


def test_unsorted_steps_pair_by_frame_not_by_position():
    actions, ends = _store_arrays()
    sf, se = _frame_steps(ends)
    perm = np.random.default_rng(0).permutation(len(sf))
    p = make_pairs(sf[perm], se[perm], actions, ends, 2, GROUPS)
    assert (sf[perm][p.j] - sf[perm][p.i] == 2).all() and (se[perm][p.i] == se[perm][p.j]).all()


def test_shuffled_partner_always_comes_from_another_episode():
    actions, ends = _store_arrays(lengths=(30, 5, 12, 9))
    sf, se = _frame_steps(ends)
    p = make_pairs(sf, se, actions, ends, 1, GROUPS)
    s = shuffled_pairs(p, se, np.random.default_rng(0))
    assert (se[s.j] != se[s.i]).all()
    np.testing.assert_array_equal(s.i, p.i)
    np.testing.assert_array_equal(s.y, p.y)


def test_k_longer_than_every_episode_names_the_dataset_and_the_longest_episode():
    actions, ends = _store_arrays(lengths=(7, 5, 9))
    sf, se = _frame_steps(ends)
    with pytest.raises(ProbeError, match=r"toy: k=9 is longer than every episode: the longest, episode 2, has 9 "
                                         r"latent steps and a pair needs k \+ 1 = 10; use k <= 8"):
        make_pairs(sf, se, actions, ends, 9, GROUPS, dataset="toy")
    with pytest.raises(ProbeError, match="toy: k=3 .* episode 0, has 3 latent steps"):   # 2-frame tubelets
        make_pairs(*tubelet_steps(ends[:2], 2), actions[:12], ends[:2], 3, GROUPS, dataset="toy")


def test_k_longer_than_some_episodes_warns_naming_them_and_counts_them():
    actions, ends = _store_arrays(lengths=(3, 12, 2, 4, 3, 3, 2, 10, 3))
    sf, se = _frame_steps(ends)
    with pytest.warns(UserWarning, match=r"toy: k=4 is longer than 7 of 9 episodes .* episode\(s\) "
                                         r"\[0, 2, 3, 4, 5\], \.\.\.; they are left out"):
        p = make_pairs(sf, se, actions, ends, 4, GROUPS, dataset="toy")
    assert p.skipped_episodes.tolist() == [0, 2, 3, 4, 5, 6, 8]
    assert set(p.episode.tolist()) == {1, 7} and len(p) == (12 - 4) + (10 - 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                       # k=1: every episode pairs, no warning
        assert len(make_pairs(sf, se, actions, ends, 1, GROUPS, dataset="toy").skipped_episodes) == 0


def test_bad_inputs_raise_clear_errors():
    actions, ends = _store_arrays()
    sf, se = _frame_steps(ends)
    with pytest.raises(ProbeError, match="longer than every episode"):
        make_pairs(sf, se, actions, ends, 9, GROUPS, dataset="toy")
    bad = actions.copy()
    bad[8, 2] = np.nan                      # row 8 is in episode 1
    with pytest.raises(ProbeError, match=r"toy: NaN or inf actions in episode\(s\) \[1\]"):
        make_pairs(sf, se, bad, ends, 1, GROUPS, dataset="toy")
    with pytest.raises(ProbeError, match="one length"):
        make_pairs(sf[:-1], se, actions, ends, 1, GROUPS)
    wrong = se.copy()
    wrong[3] = 2
    with pytest.raises(ProbeError, match="do not align"):
        make_pairs(sf, wrong, actions, ends, 1, GROUPS)
    with pytest.raises(ProbeError, match="positive integer"):
        make_pairs(sf, se, actions, ends, 0, GROUPS)
    with pytest.raises(ProbeError, match=">= 2 episodes"):
        p = make_pairs(sf[:7], se[:7], actions, ends, 1, GROUPS)
        shuffled_pairs(p, se[:7], np.random.default_rng(0))
