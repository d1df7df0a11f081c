"""Probes recover actions where they are recoverable by construction, and only there.

Reduced step counts keep this file fast; the defaults stay at the paper's values (3000 steps, 3 seeds).
"""
import csv
import json

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from helpers import moving_square_store
from wmprobe.data.splits import make_split
from wmprobe.errors import ProbeError
from wmprobe.metrics import r2_score
from wmprobe.probes import evaluate, make_probe, probe
from wmprobe.probes.base import ProbeData, Standardizer, episode_folds

GROUPS = {"translation": [0, 1], "gripper": [2]}
FAST = dict(steps=300, seeds=(0,), lrs=(3e-3, 1e-3))


def pooled_data(n, seed, fn="linear", d=8, independent=False):
    """State-like latents: z_tk = z_t + delta, the action a function of delta (and z_t): z_t alone says nothing."""
    rng = np.random.default_rng(seed)
    w = np.random.default_rng(100).normal(size=(d, 3)) / np.sqrt(d)
    zt, delta = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    y = delta @ w
    if fn == "nonlinear":
        y = np.tanh(1.5 * y) + 0.5 * y ** 2
    if independent:
        y = rng.normal(size=y.shape)
    ones = np.ones((n, 1))                                  # a constant feature dim must be harmless
    return ProbeData(np.c_[zt, ones], np.c_[zt + delta, ones], y, np.repeat(np.arange(n // 40), 40))


def token_data(n, seed, N=16, D=8, moved=(3, 12), fn="linear", independent=False):
    """A patch-level signal that mean pooling destroys: the action u moves token ``moved[0]`` by +u M and
    ``moved[1]`` by -u M (tokens ``(n, N, D)``); the target is u (``fn="nonlinear"``: tanh(1.5u) + 0.5u^2),
    or (``independent``) noise that no token carries."""
    rng = np.random.default_rng(seed)
    m = np.random.default_rng(99).normal(size=(3, D))
    zt = rng.normal(size=(n, N, D)).astype(np.float32)
    y = rng.normal(size=(n, 3))
    ztk = zt.copy()
    ztk[:, moved[0]] += y @ m
    ztk[:, moved[1]] -= y @ m
    if fn == "nonlinear":
        y = np.tanh(1.5 * y) + 0.5 * y ** 2
    if independent:
        y = rng.normal(size=y.shape)
    return ProbeData(zt, ztk, y, np.repeat(np.arange(n // 50), 50))


def grid_token_data(n, seed, side=8, block=4, D=8, within_block=False):
    """Tokens ``(n, side^2, D)`` on a side x side grid. The action u moves every token of the top-left
    block x block block by +u M and of the bottom-right block by -u M (a signal block x block mean pooling
    keeps), or (``within_block``) two neighbouring tokens of the top-left block by +u M and -u M (a signal
    that pooling cancels exactly)."""
    rng = np.random.default_rng(seed)
    m = np.random.default_rng(98).normal(size=(3, D))
    zt = rng.normal(size=(n, side, side, D)).astype(np.float32)
    y = rng.normal(size=(n, 3))
    ztk, shift = zt.copy(), (y @ m)[:, None, None]
    if within_block:
        ztk[:, 0:1, 0:1] += shift
        ztk[:, 0:1, 1:2] -= shift
    else:
        ztk[:, :block, :block] += shift
        ztk[:, -block:, -block:] -= shift
    flat = lambda z: z.reshape(n, side * side, D)  # noqa: E731
    return ProbeData(flat(zt), flat(ztk), y, np.repeat(np.arange(n // 50), 50))


def r2s(name, train, test, **cfg):
    return [r["r2"] for r in evaluate(name, train, test, GROUPS, n_boot=50, **cfg)]


def test_ridge_equals_sklearn_at_chosen_alpha_and_cv_is_exact():
    tr = pooled_data(800, 0)
    tr = ProbeData(tr.z_t, tr.z_tk, tr.y + np.random.default_rng(1).normal(scale=0.3, size=tr.y.shape),
                   tr.episode)
    te = pooled_data(200, 2)
    rp = make_probe("ridge", alphas=np.logspace(-2, 4, 7)).fit(tr)
    x = np.concatenate([tr.z_t, tr.z_tk], 1)
    scaler = Standardizer.fit(x)  # our standardisation (variance shrunk toward the mean; docs/protocol.md)
    for d, a in enumerate(rp.alpha):                      # each target dim at its own alpha
        sk = Ridge(alpha=a).fit(scaler(x), tr.y[:, d])
        np.testing.assert_allclose(rp.predict(te)[0][:, d], sk.predict(scaler(np.concatenate([te.z_t, te.z_tk], 1))),
                                   rtol=1e-4, atol=1e-4)
    # the eigendecomposition shortcut gives the same CV curve as refitting sklearn on every fold
    fold = episode_folds(tr.episode, 5, 0)
    per_dim = {}
    for a, score in zip(rp.alphas, rp.cv_r2):
        pred = np.zeros_like(tr.y, dtype=np.float64)
        for f in range(5):
            sc = Standardizer.fit(x)          # fold-train standardisation stats = whole train (documented)
            m = Ridge(alpha=a).fit(sc(x[fold != f]), tr.y[fold != f])
            pred[fold == f] = m.predict(sc(x[fold == f]))
        assert score == pytest.approx(r2_score(tr.y, pred), abs=1e-4)
        per_dim[a] = r2_score(tr.y, pred, multioutput="raw_values")
    # each dim's alpha is the one with its best CV R2 (sklearn RidgeCV's alpha_per_target)
    assert rp.alpha == [rp.alphas[int(np.argmax([per_dim[a][d] for a in rp.alphas]))] for d in range(tr.y.shape[1])]


def test_a_dim_the_features_cannot_explain_does_not_shrink_the_others():
    """Ridge picks alpha per target dim: pure-noise target dims (which favour the largest alpha) beside
    recoverable ones leave the recoverable dims' fit as good as without them."""
    tr, te = pooled_data(320, 0), pooled_data(200, 1)
    rng = np.random.default_rng(7)
    noisy = lambda d: ProbeData(d.z_t, d.z_tk, np.c_[d.y, rng.normal(size=(len(d), 4))], d.episode)  # noqa: E731
    alone = make_probe("ridge").fit(tr)
    mixed = make_probe("ridge").fit(noisy(tr))
    r_alone = r2_score(te.y, alone.predict(te)[0], multioutput="raw_values")
    r_mixed = r2_score(te.y, mixed.predict(noisy(te))[0][:, :3], multioutput="raw_values")
    np.testing.assert_allclose(r_mixed, r_alone, atol=1e-9)
    assert min(mixed.alpha[3:]) > max(mixed.alpha[:3])


def test_linear_actions_are_recovered_by_ridge_and_mlp():
    tr, te = pooled_data(2000, 0), pooled_data(400, 1)
    assert r2s("ridge", tr, te)[0] > 0.99
    assert min(r2s("mlp", tr, te, **FAST)) > 0.95


def test_nonlinear_actions_need_the_mlp():
    tr, te = pooled_data(3000, 0, "nonlinear"), pooled_data(400, 1, "nonlinear")
    mlp = r2s("mlp", tr, te, steps=600, seeds=(0,), lrs=(3e-3,))[0]
    assert mlp > 0.95
    assert r2s("ridge", tr, te)[0] < mlp - 0.1


def test_independent_latents_and_shuffled_pairs_give_no_r2():
    tr, te = pooled_data(1200, 0, independent=True), pooled_data(400, 1, independent=True)
    assert r2s("ridge", tr, te)[0] < 0.05
    assert max(r2s("mlp", tr, te, **FAST)) < 0.05
    tr, te = pooled_data(1200, 0), pooled_data(400, 1)
    assert max(r2s("mlp-shuffled", tr, te, **FAST)) < 0.05
    assert r2s("ridge-shuffled", tr, te)[0] < 0.05
    assert r2s("ridge-single", tr, te)[0] < 0.05         # z_t alone says nothing about z_tk - z_t


def test_patch_signal_found_by_attentive_but_destroyed_by_mean_pooling():
    tr, te = token_data(2000, 0), token_data(400, 1)
    att = r2s("attentive", tr, te, steps=300, seeds=(0,), lrs=(1e-3,), dim=32)[0]
    mlp = r2s("mlp", tr.pooled(), te.pooled(), **FAST)[0]
    assert att > 0.95, att
    assert mlp < 0.05, mlp
    # 2x2 token pooling merges token 3 with its grid neighbours but keeps the signal
    att4 = r2s("attentive", tr, te, steps=300, seeds=(0,), lrs=(1e-3,), dim=32, pool=2)[0]
    assert att4 > 0.9, att4


ATT = dict(seeds=(0,), lrs=(3e-3,), dim=32)


def test_attentive_recovers_a_nonlinear_patch_signal_and_nothing_from_independent_tokens():
    tr, te = (token_data(n, seed, N=4, moved=(1, 2), fn="nonlinear") for n, seed in ((1500, 0), (400, 1)))
    att = r2s("attentive", tr, te, steps=600, **ATT)[0]
    assert att > 0.95, att
    flat = lambda d: ProbeData(d.z_t.reshape(len(d), -1), d.z_tk.reshape(len(d), -1), d.y, d.episode)  # noqa: E731
    assert r2s("ridge", flat(tr), flat(te))[0] < att - 0.1      # every token, but only linearly: not enough
    tr, te = (token_data(n, seed, N=4, moved=(1, 2), independent=True) for n, seed in ((600, 0), (400, 1)))
    assert r2s("attentive", tr, te, steps=150, **ATT)[0] < 0.05


def test_attentive_4x4_pooling_on_an_8x8_grid_keeps_a_block_signal_and_cancels_a_within_block_one():
    from wmprobe.probes.attentive import pool_tokens
    tr, te = grid_token_data(1000, 0), grid_token_data(400, 1)
    assert pool_tokens(tr.z_t, 4).shape == (1000, 4, 8)          # 8x8 tokens -> 2x2
    rows = evaluate("attentive", tr, te, GROUPS, n_boot=50, steps=200, pool=4, **ATT)
    assert rows[0]["r2"] > 0.9, rows[0]["r2"]
    assert json.loads(rows[0]["probe_config"])["pool"] == 4
    tr, te = grid_token_data(600, 0, within_block=True), grid_token_data(400, 1, within_block=True)
    assert r2s("attentive", tr, te, steps=150, pool=4, **ATT)[0] < 0.05


def test_heads_grid_equals_separate_fits_and_seeds_are_deterministic():
    tr, te = pooled_data(600, 0), pooled_data(200, 1)
    grid = make_probe("mlp", steps=60, seeds=(0, 1), lrs=(1e-3, 3e-4)).fit(tr)
    alone = make_probe("mlp", steps=60, seeds=(0, 1), lrs=(3e-4,)).fit(tr)
    np.testing.assert_allclose(np.asarray(grid.val_r2)[:, 1], np.asarray(alone.val_r2)[:, 0], rtol=1e-4, atol=1e-5)
    again = make_probe("mlp", steps=60, seeds=(0, 1), lrs=(1e-3, 3e-4)).fit(tr)
    p1, p2 = grid.predict(te), again.predict(te)
    np.testing.assert_array_equal(p1, p2)
    assert not np.allclose(p1[0], p1[1])                 # different seeds, different heads


def test_an_ensemble_predicts_the_mean_of_its_members_and_a_one_member_ensemble_is_the_single_probe():
    from wmprobe.probes.mlp import MEMBER_STRIDE
    tr, te = pooled_data(600, 0, fn="nonlinear"), pooled_data(200, 1, fn="nonlinear")
    cfg = dict(steps=60, lrs=(1e-3,))
    ens = make_probe("mlp", seeds=(0, 1), ensemble=3, **cfg).fit(tr)
    assert ens.head_seeds() == [0, MEMBER_STRIDE, 2 * MEMBER_STRIDE, 1, 1 + MEMBER_STRIDE, 1 + 2 * MEMBER_STRIDE]
    pred = ens.predict(te)
    assert pred.shape == (2, 200, 3)
    for i, s in enumerate((0, 1)):
        members = make_probe("mlp", seeds=[s + e * MEMBER_STRIDE for e in range(3)], **cfg).fit(tr).predict(te)
        np.testing.assert_allclose(pred[i], members.mean(0), rtol=1e-4, atol=1e-5)
        assert not np.allclose(pred[i], members[0], atol=1e-3)            # not one member's prediction
    assert ens.config()["ensemble"] == 3
    single = make_probe("mlp", seeds=(0, 1), **cfg).fit(tr)
    one = make_probe("mlp", seeds=(0, 1), ensemble=1, **cfg).fit(tr)
    np.testing.assert_array_equal(single.predict(te), one.predict(te))
    assert single.config() == one.config() and "ensemble" not in one.config()   # old records keep their keys
    for bad in (0, -1, 1.5, True, "3"):
        with pytest.raises(ProbeError, match="ensemble"):
            make_probe("mlp", ensemble=bad)


@pytest.mark.parametrize("loss", ["l1", "l2"])
def test_hand_written_mlp_training_equals_the_autograd_reference(loss):
    """train_mlp_grid (manual backward, fused AdamW) is the maths of train_heads (autograd) with biases exempt
    from weight decay: same parameters after training, for both losses and a (lr, wd) grid."""
    import torch
    from wmprobe.probes.mlp import MLPProbe, grid, mlp_forward, train_heads, train_mlp_grid
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(500, 48, generator=g), torch.randn(500, 7, generator=g)
    lrs, wds = grid([3e-3, 1e-3], [0.0, 0.1])
    init = MLPProbe(seeds=(0, 1))._init(48, 7, len(lrs))
    ref = train_heads({k: v.clone() for k, v in init.items()}, lambda p, rows: mlp_forward(p, x[rows]), y, (0, 1),
                      lrs, wds, steps=40, batch_size=64, loss=loss, no_decay=[k for k in init if k.startswith("b")])
    fast = train_mlp_grid({k: v.clone() for k, v in init.items()}, x, y, (0, 1), lrs, wds, steps=40, batch_size=64,
                          loss=loss)
    for k in init:
        assert not torch.allclose(ref[k], init[k])
        torch.testing.assert_close(fast[k], ref[k], rtol=1e-3, atol=1e-4)


def test_evaluate_records_everything_a_row_needs():
    tr, te = pooled_data(400, 0), pooled_data(200, 1)
    rows = evaluate("mlp", tr, te, GROUPS, seeds=(0, 1), n_boot=100, steps=30)
    assert [r["seed"] for r in rows] == [0, 1]
    r = rows[0]
    assert r["r2_ci_low"] <= r["r2"] <= r["r2_ci_high"]
    assert np.isnan(r["r2_rotation"]) and np.isfinite(r["r2_translation"])
    assert (r["n_train"], r["n_test"], r["n_test_episodes"]) == (400, 200, 5)
    cfg = json.loads(r["probe_config"])
    assert cfg["steps"] == 30 and cfg["loss"] == "l1" and len(cfg["chosen"]) == 2
    defaults = make_probe("mlp").config()
    got = (defaults["steps"], defaults["seeds"], defaults["hidden"], defaults["loss"])
    assert got == (3000, [0, 1, 2], [256, 128], "l1")
    with pytest.raises(ProbeError, match="unknown probe"):
        evaluate("lasso", tr, te, GROUPS)
    with pytest.raises(ProbeError, match="1 episode"):
        evaluate("ridge", tr, te.select(te.episode == te.episode[0]), GROUPS)


def _state_latents(store, noise=0.0, seed=0):
    """Latents = running sum of actions (a state), so a_t = z_{t+1} - z_t exactly (within each episode)."""
    rng = np.random.default_rng(seed)
    z = np.zeros((store.n_frames, 12), np.float32)
    for e in range(store.n_episodes):
        sl = store.episode_slice(e)
        z[sl, :7] = np.concatenate([[np.zeros(7)], np.cumsum(store.actions[sl], 0)[:-1]])
    z[:, 7:] = rng.normal(size=(store.n_frames, 5))
    return z + noise * rng.normal(size=z.shape).astype(np.float32)


def test_probe_api_end_to_end_writes_records(tmp_path):
    store = moving_square_store(episodes=12, steps=20)
    z = _state_latents(store)
    rows = probe(z, store, probe=["ridge", "ridge-shuffled"], k=[1, 2], split="episode", out=tmp_path, n_boot=50)
    got = {(r["probe"], r["k"]): r["r2"] for r in rows}
    by = {(r["probe"], r["k"]): r for r in rows}
    assert got[("ridge", 1)] > 0.95 and by[("ridge", 2)]["r2_translation"] > 0.95
    # the headline (the audit's choice here) averages its groups, each once
    r = by[("ridge", 2)]
    heads = r["headline_groups"].split("+")
    assert got[("ridge", 2)] > 0.95 and "translation" in heads
    assert r["r2"] == pytest.approx(np.mean([r[f"r2_{g}"] for g in heads]))
    assert by[("ridge", 1)]["acc_gripper"] == 1.0 and by[("ridge", 1)]["bacc_gripper"] == 1.0
    assert got[("ridge-shuffled", 1)] < 0.05
    with open(tmp_path / "records.csv") as fh:
        recs = list(csv.DictReader(fh))
    assert len(recs) == 4 and {"r2", "r2_ci_low", "probe", "k", "seed"} <= set(recs[0])
    # tubelet latents: one row per 2 frames, pairs span 2 actions
    z2 = z[np.concatenate([np.arange(store.episode_starts[e], store.episode_ends[e] - 1, 2)
                           for e in range(store.n_episodes)])]
    assert probe(z2, store, probe="ridge", frames_per_step=2, split="episode", n_boot=0)[0]["r2"] > 0.95


def test_probe_api_rejects_bad_latents():
    store = moving_square_store(episodes=8, steps=10)
    z = _state_latents(store)
    with pytest.raises(ProbeError, match="latents have 79 rows but the store needs 80"):
        probe(z[:-1], store, probe="ridge", split="episode")
    z[25, 3] = np.inf                                         # row 25 is in episode 2
    with pytest.raises(ProbeError, match=r"NaN or inf latents in episode\(s\) \[2\]"):
        probe(z, store, probe="ridge", split="episode")
    with pytest.raises(ProbeError, match="longer than every episode"):
        probe(_state_latents(store), store, probe="ridge", k=10, split="episode")
    split = make_split(store, "episode")
    assert len(split.test) >= 2


def walk_store(episodes=40, steps=16, seed=0):
    """A store of random walks: actions ``(steps, 3)`` N(0, 1) per episode, 4x4 blank frames."""
    from wmprobe.data.store import from_episodes
    rng = np.random.default_rng(seed)
    eps = [(np.zeros((steps, 4, 4, 3), np.uint8), rng.normal(size=(steps, 3)).astype(np.float32))
           for _ in range(episodes)]
    return from_episodes(eps, [e % 4 for e in range(episodes)], fps=10, action_names=["x", "y", "z"],
                         action_groups={"translation": [0, 1, 2]}, task_names=[f"t{i}" for i in range(4)],
                         source={"kind": "synthetic"}, name="walk")


def walk_tokens(store, seed=0):
    """Tokens ``(N, 4, 8)`` of noise, except channels 0..2 of token 1 (+state) and token 2 (-state), the
    state being the running sum of the episode's actions: the action is in the tokens, not in their mean."""
    rng = np.random.default_rng(seed)
    tok = rng.normal(size=(store.n_frames, 4, 8)).astype(np.float32)
    for e in range(store.n_episodes):
        sl = store.episode_slice(e)
        state = np.concatenate([np.zeros((1, 3)), np.cumsum(store.actions[sl], 0)[:-1]])
        tok[sl, 1, :3], tok[sl, 2, :3] = state, -state
    return tok


def test_probe_api_keeps_tokens_for_the_attentive_probe_and_pools_them_for_the_others():
    store = walk_store()
    rows = probe(walk_tokens(store), store, probe=["attentive", "ridge"], split="episode", n_boot=50, steps=300,
                 **ATT)
    got = {r["probe"]: r for r in rows}
    assert got["attentive"]["r2"] > 0.9, got["attentive"]["r2"]
    assert got["ridge"]["r2"] < 0.05                      # mean over tokens: +state and -state cancel
    assert json.loads(got["attentive"]["probe_config"])["steps"] == 300
    with pytest.raises(ProbeError, match=r"needs patch tokens \(N, tokens, D\)"):
        probe(walk_tokens(store).mean(1), store, probe="attentive", split="episode")


def test_probing_two_layers_gives_one_row_per_layer():
    from wmprobe.extract import StepFeatures
    from wmprobe.pipeline import probe_features
    from wmprobe.probes.pairs import tubelet_steps
    store = walk_store(episodes=12)
    state = walk_tokens(store)[:, 1]                        # (N, 8): +state and 5 noise channels
    noise = np.random.default_rng(5).normal(size=state.shape).astype(np.float32)
    feats = StepFeatures({"deep": state, "shallow": noise}, *tubelet_steps(store.episode_ends, 1))
    rows = probe_features(feats, store, make_split(store, "episode"), probes=["ridge"], ks=[1], seeds=[0],
                          n_boot=50, base={"encoder": "toy"})
    assert sorted(r["layer"] for r in rows) == ["deep", "shallow"]
    by_layer = {r["layer"]: r for r in rows}
    assert by_layer["deep"]["r2"] > 0.95 and by_layer["shallow"]["r2"] < 0.05
    assert {r["encoder"] for r in rows} == {"toy"} and {r["k"] for r in rows} == {1}


def test_one_fit_scored_on_several_test_sets_equals_separate_evaluations():
    """evaluate_many (one fit, clean + corrupted test sets) gives the rows separate evaluate calls give."""
    from wmprobe.probes import evaluate_many
    tr, te = pooled_data(400, 0), pooled_data(160, 1)
    noisy = ProbeData(te.z_t + 0.5, te.z_tk - 0.5, te.y, te.episode)
    groups = {"translation": [0, 1], "rotation": [], "gripper": []}
    for name in ("ridge", "mlp", "mlp-shuffled"):
        cfg = {"steps": 40, "seeds": (0, 1)} if name.startswith("mlp") else {}
        both = evaluate_many(name, tr, {"clean": te, "noise": noisy}, groups, n_boot=50, **cfg)
        for key, test in (("clean", te), ("noise", noisy)):
            alone = evaluate(name, tr, test, groups, n_boot=50, **cfg)
            for a, b in zip(both[key], alone):
                assert a["r2"] == pytest.approx(b["r2"], abs=1e-6) and a["r2_ci_low"] == pytest.approx(b["r2_ci_low"])


def split_signal_data(n, seed, binary=False):
    """Translation (2 dims) is a linear function of z_tk - z_t; the gripper (1 dim) is independent noise
    (``binary``: a 0/1 label, 80 % ones)."""
    d = pooled_data(n, seed)
    rng = np.random.default_rng(1000 + seed)
    grip = (rng.random(n) < 0.8).astype(np.float32) if binary else rng.normal(size=n)
    return ProbeData(d.z_t, d.z_tk, np.c_[d.y[:, :2], grip], d.episode)


def test_r2_is_the_mean_of_the_headline_groups_r2():
    tr, te = split_signal_data(1200, 0), split_signal_data(400, 1)
    row, = evaluate("ridge", tr, te, GROUPS, n_boot=100)
    assert row["r2_translation"] > 0.99 and row["r2_gripper"] < 0.05           # one recoverable, one noise
    assert row["headline_groups"] == "translation+gripper"                     # default: every group, once each
    assert row["r2"] == pytest.approx((row["r2_translation"] + row["r2_gripper"]) / 2, abs=1e-12)
    assert row["r2_rotation"] != row["r2_rotation"]                            # absent group: NaN
    only, = evaluate("ridge", tr, te, GROUPS, n_boot=100, headline=["translation"])
    assert only["headline_groups"] == "translation" and only["r2"] == pytest.approx(only["r2_translation"])
    assert only["r2_ci_low"] > 0.98 and only["r2_ci_low"] <= only["r2"] <= only["r2_ci_high"]
    assert row["r2_ci_high"] < only["r2_ci_low"]                               # its own CI, not the old one
    assert only["r2_gripper"] == row["r2_gripper"]                             # every group keeps its column
    # the order a user names groups in does not change the label
    assert evaluate("ridge", tr, te, GROUPS, n_boot=0, headline=["gripper", "translation"])[0]["headline_groups"] \
        == "translation+gripper"
    with pytest.raises(ProbeError, match="rotation.*has translation, gripper"):
        evaluate("ridge", tr, te, GROUPS, n_boot=0, headline=["rotation"])


def test_other_groups_get_their_own_column_and_data_without_groups_average_every_dim():
    tr, te = split_signal_data(800, 0), split_signal_data(200, 1)
    row, = evaluate("ridge", tr, te, {"translation": [0, 1], "base": [2]}, n_boot=0)
    assert row["r2_base"] < 0.05 and row["headline_groups"] == "translation+base"
    flat, = evaluate("ridge", tr, te, {}, n_boot=0)
    assert flat["headline_groups"] == "all-dims" and flat["r2"] == pytest.approx(
        (2 * row["r2_translation"] + row["r2_base"]) / 3)


def test_a_binary_gripper_gets_accuracy_and_balanced_accuracy():
    tr, te = split_signal_data(1200, 0, binary=True), split_signal_data(400, 1, binary=True)
    row, = evaluate("ridge", tr, te, GROUPS, n_boot=0)
    share = float((te.y[:, 2] == 1).mean())
    # the label is noise: ridge predicts about the train share (0.8) everywhere, i.e. always "1"
    assert row["acc_gripper"] == pytest.approx(share, abs=0.02) and row["bacc_gripper"] == pytest.approx(0.5, abs=0.02)
    cont, = evaluate("ridge", split_signal_data(800, 0), split_signal_data(200, 1), GROUPS, n_boot=0)
    assert np.isnan(cont["acc_gripper"]) and np.isnan(cont["bacc_gripper"])   # a continuous gripper: no accuracy
