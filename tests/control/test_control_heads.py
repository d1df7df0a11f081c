"""The token heads of the control policy (``control.head``: spatial / flat) and the random-shift augmentation."""
import numpy as np
import pytest
import torch

from wmprobe.control.heads import HEADS, TokenPolicy, fit_token_policy, grid_positions, shift_frames
from wmprobe.control.policy import PolicyConfig, fit_policy
from wmprobe.errors import ConfigError


@pytest.mark.parametrize("head", ["spatial", "flat"])
@pytest.mark.parametrize("n_tokens", [16, 1, 6])
def test_token_policy_shapes(head, n_tokens):
    pol = TokenPolicy(n_tokens, 5, 3, 8, head=head, hidden=16)
    out = pol(torch.randn(7, n_tokens, 5), torch.randn(7, 3))
    assert out.shape == (7, 8) and torch.isfinite(out).all()
    grid = n_tokens == 16                        # 1 token or 6 tokens: no square grid, mean-pooled tokens only
    assert (pol.keypoints is not None) == (grid and head == "spatial")
    assert (pol.proj is not None) == (grid and head == "flat")


def test_grid_positions_are_row_major_xy():
    pos = grid_positions(3)
    assert pos.shape == (9, 2)
    assert pos[0].tolist() == [-1.0, -1.0] and pos[2].tolist() == [1.0, -1.0] and pos[6].tolist() == [-1.0, 1.0]


def _where_task(n: int, seed: int, g: int = 4):
    """Tokens ``(n, 1, g*g, 2)``: background 0, one object token ``(1, 0)`` at a random cell; target its (x, y).
    The mean-pooled tokens are the same for every sample: position is in the layout only."""
    rng = np.random.default_rng(seed)
    cell = rng.integers(0, g * g, n)
    tok = np.zeros((n, 1, g * g, 2), np.float32)
    tok[np.arange(n), 0, cell, 0] = 1.0
    tok[:, 0, :, 1] = rng.normal(0, 0.05, (n, g * g))       # a little noise in a distractor channel
    xy = grid_positions(g).numpy()[cell].astype(np.float32)
    return tok, np.zeros((n, 1), np.float32), xy


def _r2(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(1 - ((pred - y) ** 2).sum(0) / ((y - y.mean(0)) ** 2).sum(0)))


@pytest.mark.parametrize("head", ["spatial", "flat"])
def test_token_heads_fit_a_task_where_only_position_matters(head):
    """Property: the action is the (x, y) of the one object token; mean-pooled tokens carry no information about
    it, so the mean head cannot beat R2 0, while the token heads recover it on held-out samples."""
    tok, desc, y = _where_task(512, 0)
    cfg = PolicyConfig(steps=600, batch_size=64, hidden=64, head=head)
    pol = fit_token_policy(tok, desc, y, seed=0, cfg=cfg)
    tt, dt, yt = _where_task(256, 1)
    with torch.no_grad():
        pred = pol(torch.from_numpy(tt[:, 0]), torch.from_numpy(dt)).numpy()
    assert _r2(pred, yt) > 0.9
    pooled = tok[:, 0].mean(1)
    mean_pol = fit_policy(pooled, desc, y, seed=0, cfg=PolicyConfig(steps=600, batch_size=64, hidden=64))
    with torch.no_grad():
        mean_pred = mean_pol(torch.from_numpy(tt[:, 0].mean(1)), torch.from_numpy(dt)).numpy()
    assert _r2(mean_pred, yt) < 0.2


def test_token_policy_fit_is_deterministic_and_reads_every_view():
    tok, desc, y = _where_task(64, 2)
    views = np.concatenate([tok, tok[:, :, ::-1]], 1)          # two views per row
    cfg = PolicyConfig(steps=30, batch_size=16, hidden=16, head="spatial")
    a = fit_token_policy(views, desc, y, seed=3, cfg=cfg)
    b = fit_token_policy(views, desc, y, seed=3, cfg=cfg)
    c = fit_token_policy(views, desc, y, seed=4, cfg=cfg)
    x = torch.from_numpy(tok[:8, 0])
    with torch.no_grad():
        assert torch.equal(a(x, torch.zeros(8, 1)), b(x, torch.zeros(8, 1)))
        assert not torch.equal(a(x, torch.zeros(8, 1)), c(x, torch.zeros(8, 1)))


def test_token_policy_refuses_bad_input():
    tok, desc, y = _where_task(8, 0)
    cfg = PolicyConfig(steps=2, head="spatial")
    with pytest.raises(ConfigError, match="rows, views"):
        fit_token_policy(tok[:, 0], desc, y, cfg=cfg)                 # no views axis
    bad = tok.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        fit_token_policy(bad, desc, y, cfg=cfg)
    with pytest.raises(ConfigError, match="head"):
        PolicyConfig(head="conv")
    with pytest.raises(ConfigError, match="augment"):
        PolicyConfig(augment=-1)
    assert "mean" in HEADS


def test_random_shift_keeps_shape_and_is_seeded():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (5, 12, 12, 3), dtype=np.uint8)
    a = shift_frames(frames, np.random.default_rng(1), pad=2)
    b = shift_frames(frames, np.random.default_rng(1), pad=2)
    assert a.shape == frames.shape and a.dtype == np.uint8 and np.array_equal(a, b)
    assert np.array_equal(shift_frames(frames, np.random.default_rng(1), pad=0), frames)
    # every shifted frame is a window of the edge-padded frame
    padded = np.pad(frames, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="edge")
    for i in range(5):
        assert any(np.array_equal(a[i], padded[i, dy:dy + 12, dx:dx + 12]) for dy in range(5) for dx in range(5))


def test_encoder_policy_with_a_token_head_is_deterministic(tmp_path):
    """The package path of a token head (tokens of the store's and the fresh demonstrations' frames, shifted
    views, closed-loop rollouts that encode every rendered frame): rows per task, and the same seed gives the
    same success counts."""
    from wmprobe.control import ControlConfig, collect_demos, evaluate_control, token_views
    from wmprobe.data.sim.generate import generate
    from wmprobe.data.splits import Split
    from wmprobe.encoders.registry import load_encoder
    store = generate("dynamic", 2, steps=8, size=32, workers=1, progress=False, tasks=["reach-red"])
    split = Split("task", (0, 1), ())
    cfg = ControlConfig(rollouts=2, horizon=6, demos=1,
                        policy=PolicyConfig(steps=20, batch_size=32, hidden=16, head="spatial", augment=1))
    demos = collect_demos(store, split, cfg, render=True)
    enc = load_encoder("random-conv:0", size=32)
    v = token_views(enc, "out", demos[-1].frames[:3], 2, demos[-1].index)
    assert v.shape[:3] == (3, 3, 16)                      # frames, 1 + 2 views, a 4 x 4 token grid
    assert not np.array_equal(v[:, 0], v[:, 1])
    feats = np.zeros((store.n_frames, 1), np.float32)      # the token heads encode the frames themselves
    rows = evaluate_control(enc, "out", store, split, feats, cfg, seeds=(0,), demos=demos)
    again = evaluate_control(enc, "out", store, split, feats, cfg, seeds=(0,), demos=demos)
    assert {(r["task_split"], r["task"]) for r in rows} == {("train", "reach-red"), ("train", "all")}
    assert all(r["n_rollouts"] == 2 for r in rows)
    assert [(r["task"], r["success"]) for r in rows] == [(r["task"], r["success"]) for r in again]


def test_control_head_and_augment_are_checked_with_locations():
    from wmprobe.study.config import validate
    base = {"name": "x", "datasets": [{"name": "d", "sim": "dynamic", "episodes": 8}], "encoders": ["pixels:4"]}
    text = "\n".join(map(str, validate({**base, "control": {"head": "conv", "augment": -1}})))
    assert text.count("control.head") == 1 and text.count("control.augment") == 1, text
    assert validate({**base, "control": {"head": "spatial", "augment": 2}}) == []
    assert validate({**base, "control": {"head": "mean", "augment": 0}}) == []
