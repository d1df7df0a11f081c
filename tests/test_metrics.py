"""Metrics agree with sklearn / scipy references; the bootstrap resamples episodes, not frames."""
import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import r2_score as sk_r2

from wmprobe import metrics as M


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(300, 7))
    y[:, 6] = rng.integers(0, 2, 300)          # a binary gripper dim
    pred = y + rng.normal(scale=0.7, size=y.shape)
    episode = np.repeat(np.arange(15), 20)
    return y, pred, episode


def test_r2_matches_sklearn(data):
    y, pred, _ = data
    assert M.r2_score(y, pred) == pytest.approx(sk_r2(y, pred), abs=1e-12)
    np.testing.assert_allclose(M.r2_score(y, pred, "raw_values"), sk_r2(y, pred, multioutput="raw_values"))
    assert M.r2_score(y[:, 0], pred[:, 0]) == pytest.approx(sk_r2(y[:, 0], pred[:, 0]))


def test_r2_constant_target_follows_sklearn():
    y = np.c_[np.ones(10), np.arange(10.0)]
    for pred in (y.copy(), y + 0.5):
        np.testing.assert_allclose(M.r2_score(y, pred, "raw_values"), sk_r2(y, pred, multioutput="raw_values"))
        assert M.r2_score(y, pred) == pytest.approx(sk_r2(y, pred))


def test_r2_by_group(data):
    y, pred, _ = data
    g = M.r2_by_group(y, pred, {"translation": [0, 1, 2], "gripper": [6], "rotation": []})
    assert g["translation"] == pytest.approx(sk_r2(y[:, :3], pred[:, :3]))
    assert g["gripper"] == pytest.approx(sk_r2(y[:, 6], pred[:, 6]))
    assert np.isnan(g["rotation"])


def test_pearson_and_mse_match_scipy(data):
    y, pred, _ = data
    ref = np.mean([stats.pearsonr(y[:, d], pred[:, d])[0] for d in range(7)])
    assert M.pearson_r(y, pred) == pytest.approx(ref, abs=1e-12)
    assert M.mse(y, pred) == pytest.approx(np.mean((y - pred) ** 2))


def test_pearson_is_scale_blind_r2_is_not(data):
    y, _, _ = data
    pred = 3 * y + 1        # perfectly correlated, badly scaled: why r and R2 disagree between studies
    assert M.pearson_r(y, pred) == pytest.approx(1.0)
    assert M.r2_score(y, pred) < 0


@pytest.mark.parametrize("stat,ref", [("r2", sk_r2), ("mse", lambda a, b: np.mean((a - b) ** 2)),
                                      ("pearson", M.pearson_r)])
def test_bootstrap_resamples_whole_episodes(data, stat, ref):
    y, pred, episode = data
    vals = M.bootstrap_stats(y, pred, episode, stat, n_boot=50, seed=3)
    # reference: the same draws of episodes, rows concatenated, metric recomputed from scratch
    counts = M.bootstrap_counts(15, 50, 3)
    rng = np.random.default_rng(3)
    idx = rng.integers(0, 15, size=(50, 15))
    for b in range(50):
        assert np.bincount(idx[b], minlength=15).tolist() == counts[b].astype(int).tolist()
        rows = np.concatenate([np.nonzero(episode == e)[0] for e in idx[b]])
        assert vals[b] == pytest.approx(ref(y[rows], pred[rows]), rel=1e-9, abs=1e-9)


def test_bootstrap_ci_brackets_estimate_and_is_deterministic(data):
    y, pred, episode = data
    lo, hi = M.bootstrap_ci(y, pred, episode, n_boot=300, seed=0)
    assert lo < M.r2_score(y, pred) < hi
    assert (lo, hi) == M.bootstrap_ci(y, pred, episode, n_boot=300, seed=0)
    # a generic statistic goes through the loop path and gives the same answer as the fast path
    assert M.bootstrap_ci(y, pred, episode, stat=lambda a, b: sk_r2(a, b), n_boot=100) == pytest.approx(
        M.bootstrap_ci(y, pred, episode, stat="r2", n_boot=100))


def test_episode_bootstrap_is_wider_than_frame_bootstrap():
    """Episode-level noise (a per-episode offset) must widen the CI: frames are not independent."""
    rng = np.random.default_rng(1)
    episode = np.repeat(np.arange(20), 50)
    y = rng.normal(size=(1000, 1))
    pred = y + rng.normal(scale=0.8, size=(20, 1))[episode] + rng.normal(scale=0.1, size=(1000, 1))
    lo_e, hi_e = M.bootstrap_ci(y, pred, episode, n_boot=400)
    lo_f, hi_f = M.bootstrap_ci(y, pred, np.arange(1000), n_boot=400)
    assert hi_e - lo_e > 2 * (hi_f - lo_f)


def test_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(2)
    a, b = rng.integers(0, 5, 30).astype(float), rng.normal(size=30)
    assert M.spearman(a, b) == pytest.approx(stats.spearmanr(a, b)[0], abs=1e-12)
    lo, hi = M.spearman_ci(a, a + 0.01 * b, n_boot=200)
    assert 0.9 < lo <= hi <= 1.0


def test_pareto_front_maximises_both():
    x = np.array([1.0, 2.0, 3.0, 2.0, np.nan, 3.0])
    y = np.array([3.0, 2.0, 1.0, 1.0, 9.0, 1.0])
    assert M.pareto_front(x, y).tolist() == [True, True, True, False, False, True]


def test_mean_and_spread():
    s = M.mean_and_spread([0.5, 0.7, np.nan])
    assert s["mean"] == pytest.approx(0.6) and s["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert s["n"] == 2 and M.mean_and_spread([0.3])["std"] == 0.0


GROUPS7 = {"translation": [0, 1, 2], "rotation": [3, 4, 5], "gripper": [6]}


def test_r2_over_groups_counts_each_group_once(data):
    y, pred, _ = data
    per_dim = sk_r2(y, pred, multioutput="raw_values")
    two = {"translation": [0, 1, 2], "gripper": [6]}
    assert M.r2_over_groups(y, pred, two) == pytest.approx((per_dim[:3].mean() + per_dim[6]) / 2, rel=1e-12)
    assert M.r2_over_groups(y, pred, GROUPS7) == pytest.approx(
        np.mean([per_dim[:3].mean(), per_dim[3:6].mean(), per_dim[6]]), rel=1e-12)
    assert M.r2_over_groups(y, pred, {"gripper": [6]}) == pytest.approx(per_dim[6], rel=1e-12)
    with pytest.raises(ValueError, match="no dims"):
        M.r2_over_groups(y, pred, {"rotation": []})


@pytest.mark.parametrize("groups", [{"translation": [0, 1, 2], "gripper": [6]}, GROUPS7, {"rotation": [3, 4, 5]}])
def test_bootstrap_of_the_headline_statistic_equals_a_direct_computation(data, groups):
    y, pred, episode = data
    fast = M.bootstrap_stats(y, pred, episode, "r2", n_boot=60, seed=5, groups=groups)
    slow = M.bootstrap_stats(y, pred, episode, lambda a, b: M.r2_over_groups(a, b, groups), n_boot=60, seed=5)
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-9)
    lo, hi = M.bootstrap_ci(y, pred, episode, n_boot=300, groups=groups)
    assert lo < M.r2_over_groups(y, pred, groups) < hi
    assert (lo, hi) != M.bootstrap_ci(y, pred, episode, n_boot=300)          # not the all-dims CI
    with pytest.raises(ValueError, match="stat='r2' only"):
        M.bootstrap_stats(y, pred, episode, "mse", n_boot=5, groups=groups)


@pytest.mark.parametrize("levels", [(0.0, 1.0), (-1.0, 1.0)])
def test_binary_accuracy_and_balanced_accuracy_match_sklearn(levels):
    from sklearn.metrics import accuracy_score, balanced_accuracy_score
    rng = np.random.default_rng(1)
    lo, hi = levels
    y = np.where(rng.random(500) < 0.85, hi, lo)                         # imbalanced: 85 % high
    pred = y + rng.normal(scale=0.6 * (hi - lo), size=500)
    guess = np.where(pred >= (lo + hi) / 2, hi, lo)
    acc, bacc = M.binary_accuracy(y, pred, levels)
    assert acc == pytest.approx(accuracy_score(y, guess)) and bacc == pytest.approx(balanced_accuracy_score(y, guess))
    if levels == (-1.0, 1.0):                                           # the sign of the prediction
        assert acc == pytest.approx(np.mean(np.sign(pred) == y))
    # always guessing the majority: accuracy is its share, balanced accuracy 0.5
    acc, bacc = M.binary_accuracy(y, np.full(500, hi), levels)
    assert acc == pytest.approx(np.mean(y == hi)) and bacc == pytest.approx(0.5)
    assert M.binary_levels(y) == levels and M.binary_levels(pred) is None
    with pytest.raises(ValueError, match="levels"):
        M.binary_accuracy(y + 0.5, pred, levels)


def test_bootstrap_mean_ci_resamples_episodes():
    """The CI of a mean of per-image scores draws whole episodes (``bootstrap_counts``): equal to a direct
    loop over the same draws; NaN for one episode or no draws."""
    from wmprobe.metrics import bootstrap_counts, bootstrap_mean_ci
    rng = np.random.default_rng(0)
    values, episode = rng.normal(size=40), np.repeat(np.arange(8), 5)
    lo, hi = bootstrap_mean_ci(values, episode, n_boot=200, seed=3)
    w = bootstrap_counts(8, 200, 3)
    means = [np.concatenate([np.repeat(values[episode == e], int(c)) for e, c in enumerate(row)]).mean()
             for row in w]
    assert np.allclose([lo, hi], np.quantile(means, [0.025, 0.975]))
    assert lo < values.mean() < hi
    assert np.isnan(bootstrap_mean_ci(values, np.zeros(40), n_boot=200)).all()
    assert np.isnan(bootstrap_mean_ci(values, episode, n_boot=0)).all()


def test_spearman_keeps_the_values_of_its_own_rank_code():
    """metrics ranks with scipy.stats.rankdata now (it had its own rank code): the values, CIs included, are
    bit for bit those the old code gave (ties, a missing value), so findings computed before do not move."""
    rng = np.random.default_rng(7)
    a = np.round(rng.normal(size=12), 1)
    b = np.round(a + rng.normal(size=12), 0)
    a[3] = np.nan
    assert M.spearman(a, b) == 0.42314797268868254
    assert M.spearman_ci(a, b, n_boot=200, seed=1) == (-0.13738053459291058, 0.7115730887749522)
    x = np.array([0.61, 0.55, 0.55, 0.42, 0.30, 0.30, 0.12])
    y = np.array([31.2, 29.0, 30.5, 25.1, 25.1, 22.0, 24.0])
    assert M.spearman(x, y) == 0.9082951062292475
    assert M.spearman_ci(x, y, n_boot=300, seed=0) == (0.5577954598817947, 1.0)
    assert not hasattr(M, "_rank")


def test_spearman_drops_pairs_with_a_missing_side_instead_of_ranking_nan_last():
    # an encoder without a PSNR (NaN) used to be ranked as the largest value: rho 0.4 here instead of 1.0
    from scipy.stats import spearmanr
    a, b = np.array([1.0, 2.0, np.nan, 4.0, 5.0]), np.array([1.0, 3.0, 2.0, 5.0, np.inf])
    assert M.spearman(a, b) == pytest.approx(spearmanr([1.0, 2.0, 4.0], [1.0, 3.0, 5.0]).statistic)
    assert np.isnan(M.spearman(np.array([np.nan, 1.0, 2.0]), np.array([1.0, np.nan, 3.0])))   # one pair left
