"""The mini-zoo: every family trains (tiny preset) and its loss falls, checkpoints round-trip bit-identically,
+ID makes the action readable, pretraining refuses test episodes, every auxiliary objective runs.

Torch runs on one thread here: on a shared 2-core box, oversubscribed threads make tiny convs many times slower.
"""
import json

import numpy as np
import pytest
import torch
from helpers import moving_square_store

from wmprobe import zoo
from wmprobe.data.splits import make_split
from wmprobe.data.store import from_episodes
from wmprobe.encoders.registry import load_encoder
from wmprobe.errors import ConfigError, EncoderError
from wmprobe.probes import evaluate
from wmprobe.probes.api import build_probe_data
from wmprobe.zoo import training
from wmprobe.zoo.objectives import LAMBDA_SWEEP, OBJECTIVES
from wmprobe.zoo.training import lambda_sweep

pytestmark = pytest.mark.usefixtures("one_torch_thread")   # conftest: training is reproducible on one thread


@pytest.fixture(scope="module")
def store():
    return moving_square_store(episodes=6, steps=8, size=64)


@pytest.fixture(scope="module")
def ckpts(store, tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    return {f: zoo.train(f, store, train_episodes=[0, 1, 2, 3], preset="tiny", cache_dir=root, progress=False)
            for f in zoo.FAMILIES}


@pytest.mark.parametrize("family", list(zoo.FAMILIES))
def test_family_trains_loss_falls_and_round_trips(family, store, ckpts):
    ck = ckpts[family]
    meta = json.loads((ck / "recipe.json").read_text())
    curve = meta["loss_curve"]
    assert len(curve) == zoo.PRESETS["tiny"].steps and np.isfinite(curve).all()
    assert np.mean(curve[-5:]) < np.mean(curve[:5]), (family, curve[:5], curve[-5:])
    assert meta["recipe"]["family"] == family and meta["recipe"]["data"] == store.fingerprint
    assert meta["recipe"]["code_version"] == zoo.CODE_VERSION and meta["trunk_params"] > 0
    assert zoo.train(family, store, train_episodes=[0, 1, 2, 3], preset="tiny", cache_dir=ck.parent,
                     progress=False) == ck                                   # same recipe: reused
    a, b = load_encoder(f"zoo:{ck}"), zoo.load(ck)
    assert a.spec.weights_hash == b.spec.weights_hash and a.spec.family == family
    frames = store.frames[:4][None]
    ta, tb = a.encode(frames).tokens["out"], b.encode(frames).tokens["out"]
    assert ta.shape == (1, 4, 64, zoo.PRESETS["tiny"].width)
    np.testing.assert_array_equal(ta, tb)
    np.testing.assert_array_equal(ta, a.encode(frames).tokens["out"])      # deterministic at probe time
    if callable(getattr(a, "decode_latents", None)):
        assert a.decode_latents(ta).shape == (1, 4, 64, 64, 3)


def test_backbone_is_shared(ckpts):
    """Same trunk per preset: parameter counts differ only by extra input/output channels."""
    trunk = {f: json.loads((ck / "recipe.json").read_text())["trunk_params"] for f, ck in ckpts.items()}
    assert max(trunk.values()) < 1.5 * min(trunk.values()), trunk


def test_same_seed_same_weights_and_id_changes_them(store, tmp_path):
    kw = dict(train_episodes=[0, 1, 2], preset="tiny", progress=False)
    h1 = zoo.load(zoo.train("vae", store, cache_dir=tmp_path / "a", **kw)).spec.weights_hash
    h2 = zoo.load(zoo.train("vae", store, cache_dir=tmp_path / "b", **kw)).spec.weights_hash
    h3 = zoo.load(zoo.train("vae", store, cache_dir=tmp_path / "c", id_weight=1.0, **kw)).spec.weights_hash
    assert h1 == h2 != h3


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_each_objective_runs(objective, store, tmp_path):
    ck = zoo.train("vae", store, train_episodes=[0, 1], preset="tiny", id_weight=1.0, objective=objective,
                   cache_dir=tmp_path, progress=False, overrides={"steps": 10})
    meta = json.loads((ck / "recipe.json").read_text())
    assert meta["recipe"]["objective"] == objective and meta["head_params"] > 0
    assert zoo.load(ck).spec.extra["objective"] == objective


def test_lambda_sweep_spans_five_orders_of_magnitude(store, tmp_path, monkeypatch):
    assert len(LAMBDA_SWEEP) == 5 and max(LAMBDA_SWEEP) / min(LAMBDA_SWEEP) == pytest.approx(1e4)
    calls = []
    monkeypatch.setattr(training, "train", lambda family, store, **kw: calls.append(kw["id_weight"]) or kw["id_weight"])
    out = lambda_sweep("vae", store, train_episodes=[0, 1], preset="tiny", cache_dir=tmp_path)
    assert calls == [0.0, *LAMBDA_SWEEP] and list(out) == calls


def blob_store(episodes=16, steps=16, size=64, box=14, step=4, seed=0):
    """A bright box moving by the commanded (dx, dy), up to +-``step`` px: the action is visible and large."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    eps = []
    for _ in range(episodes):
        p = rng.uniform(0, size - box, 2)
        frames = np.full((steps, size, size, 3), 40, np.uint8)
        actions = np.zeros((steps, 2), np.float32)
        for t in range(steps):
            frames[t][(xx >= p[0]) & (xx < p[0] + box) & (yy >= p[1]) & (yy < p[1] + box)] = (230, 180, 60)
            d = rng.uniform(-step, step, 2)
            actions[t] = d = np.where((p + d < 0) | (p + d > size - box), -d, d)
            p = p + d
        eps.append((frames, actions))
    return from_episodes(eps, [e % 4 for e in range(episodes)], fps=10, action_names=["x", "y"],
                         action_groups={"translation": [0, 1]}, task_names=[f"t{i}" for i in range(4)],
                         source={"kind": "synthetic"}, name="blob")


def test_id_makes_the_action_readable_by_the_probe(tmp_path):
    """+ID (L1, lambda 10) vs its frozen twin, same recipe otherwise: the pooled ridge probe R2 rises."""
    store = blob_store()
    split = make_split(store, "episode", seed=0)
    r2 = {}
    for w in (0.0, 10.0):
        ck = zoo.train("vae", store, train_episodes=split.train, forbid_episodes=split.test, preset="tiny",
                       overrides={"steps": 150}, id_weight=w, cache_dir=tmp_path, progress=False)
        feats = zoo.load(ck).encode(store.frames[:][None]).tokens["out"][0].mean(1).numpy()
        train, test, groups = build_probe_data(feats, np.arange(store.n_frames), store.episode_of_frame(), store,
                                               split, k=1)
        r2[w] = evaluate("ridge", train, test, groups, n_boot=20)[0]["r2"]
    assert r2[10.0] > r2[0.0] + 0.3 and r2[10.0] > 0.3, r2


def test_pair_targets_are_the_probes_k_step_targets():
    """Every pair (t, t+j) of a clip: translation-type dims sum a_t..a_t+j-1, state dims take a_t+j-1."""
    from wmprobe.zoo.objectives import clip_pairs, pair_targets
    a = torch.arange(2 * 4 * 2, dtype=torch.float32).reshape(2, 4, 2) ** 1.5
    y = pair_targets(a, torch.tensor([False, True]))
    starts, ends = clip_pairs(4)
    assert sorted(zip(starts, ends)) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    for p, (s, e) in enumerate(zip(starts, ends)):
        torch.testing.assert_close(y[:, p, 0], a[:, s:e, 0].sum(1))
        torch.testing.assert_close(y[:, p, 1], a[:, e - 1, 1])


def test_id_trains_on_the_headline_groups_on_the_same_clips_at_a_balanced_scale(store, tmp_path):
    """+ID defaults to the translation group (3 of the store's 7 dims), every family and its +ID term draw the
    same clips, and the +ID term's running mean is id_weight x the family loss's (whatever that family's scale)."""
    metas = {}
    for fam in ("vae", "image-ssl", "vjepa"):
        ck = zoo.train(fam, store, train_episodes=[0, 1, 2, 3], preset="tiny", id_weight=0.5, cache_dir=tmp_path,
                       progress=False)
        metas[fam] = m = json.loads((ck / "recipe.json").read_text())
        assert m["recipe"]["id_groups"] == ["translation"] and m["id_dims"] == [0, 1, 2]
        loss, aux, scale = (np.array(m[c][20:]) for c in ("loss_curve", "id_curve", "id_scale"))
        assert 0.5 / 3 < np.mean(scale * aux) / np.mean(loss) < 0.5 * 3, fam   # ~id_weight (running means lag)
    assert len({(m["clip_len"], m["clips_per_step"]) for m in metas.values()}) == 1
    assert metas["vae"]["clip_len"] == 4
    # the family losses differ by orders of magnitude, so the raw weights applied to +ID do too
    assert metas["image-ssl"]["id_scale"][-1] > 10 * metas["vae"]["id_scale"][-1]
    ck = zoo.train("vae", store, train_episodes=[0, 1, 2, 3], preset="tiny", id_weight=0.5, cache_dir=tmp_path,
                   progress=False, id_groups=["translation", "gripper"])
    assert json.loads((ck / "recipe.json").read_text())["id_dims"] == [0, 1, 2, 6]
    with pytest.raises(ConfigError, match="not action groups"):
        zoo.train("vae", store, train_episodes=[0], id_weight=1.0, id_groups=["wrist"], cache_dir=tmp_path)


def test_the_ceiling_is_the_trunk_trained_by_inverse_dynamics_alone(tmp_path):
    """The ceiling: no family loss, its curve is the +ID loss and falls; probed like any encoder it reads the
    action better than a frozen family at the same budget."""
    store = blob_store()
    split = make_split(store, "episode", seed=0)
    r2 = {}
    for fam in ("vae", zoo.CEILING):
        ck = zoo.train(fam, store, train_episodes=split.train, forbid_episodes=split.test, preset="tiny",
                       overrides={"steps": 150}, cache_dir=tmp_path, progress=False)
        meta = json.loads((ck / "recipe.json").read_text())
        enc = zoo.load(ck)
        feats = enc.encode(store.frames[:][None]).tokens["out"][0].mean(1).numpy()
        train, test, groups = build_probe_data(feats, np.arange(store.n_frames), store.episode_of_frame(), store,
                                               split, k=1)
        r2[fam] = evaluate("ridge", train, test, groups, n_boot=20)[0]["r2"]
    assert enc.spec.family == zoo.CEILING and meta["recipe"]["id_weight"] == 1.0
    assert np.mean(meta["loss_curve"][-10:]) < 0.7 * np.mean(meta["loss_curve"][:10])
    assert r2[zoo.CEILING] > r2["vae"] + 0.3 and r2[zoo.CEILING] > 0.4, r2
    with pytest.raises(ConfigError, match="inverse dynamics"):
        zoo.train(zoo.CEILING, store, train_episodes=[0], objective="contrastive", cache_dir=tmp_path)


def test_the_ceiling_trains_ceiling_factor_times_the_families_steps(store, tmp_path):
    """The preset's ``ceiling_factor`` multiplies the ceiling's steps (its schedule is annealed over them); a
    family's recipe carries no ``ceiling_factor``, so its checkpoint key is what it was before the field."""
    ov = {"steps": 6, "warmup": 2, "ceiling_factor": 3}
    ck = zoo.train(zoo.CEILING, store, train_episodes=[0, 1], preset="tiny", overrides=ov, cache_dir=tmp_path,
                   progress=False)
    meta = json.loads((ck / "recipe.json").read_text())
    assert meta["recipe"]["steps"] == 18 and len(meta["loss_curve"]) == 18
    assert "ceiling_factor" not in meta["recipe"]
    ck = zoo.train("vae", store, train_episodes=[0, 1], preset="tiny", overrides=ov, cache_dir=tmp_path,
                   progress=False)
    meta = json.loads((ck / "recipe.json").read_text())
    assert meta["recipe"]["steps"] == 6 and len(meta["loss_curve"]) == 6 and "ceiling_factor" not in meta["recipe"]
    # docs/zoo.md "The ceiling": the ceiling needs ~3000-4000 steps at this lr whatever the families' budget
    factors = {n: p.ceiling_factor for n, p in zoo.PRESETS.items()}
    assert factors == {"tiny": 1, "demo": 12, "compare": 4, "paper": 2}
    assert all(p.steps * p.ceiling_factor >= 3000 for n, p in zoo.PRESETS.items() if n != "tiny")


def test_training_refuses_test_episodes(store, tmp_path):
    for family in zoo.FAMILIES:
        with pytest.raises(ConfigError, match=r"overlaps the probe's test episodes \[2\]"):
            zoo.train(family, store, train_episodes=[0, 1, 2], forbid_episodes=[2, 5], preset="tiny",
                      cache_dir=tmp_path, progress=False)
    with pytest.raises(ConfigError, match="unknown zoo family"):
        zoo.train("dino", store, train_episodes=[0], cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="unknown \\+ID objective"):
        zoo.train("vae", store, train_episodes=[0], objective="l3", cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="unknown zoo preset field"):
        zoo.train("vae", store, train_episodes=[0], overrides={"stpes": 3}, cache_dir=tmp_path)
    with pytest.raises(EncoderError, match="missing or corrupt"):
        zoo.load(tmp_path / "nope")


def test_concurrent_trainers_of_one_checkpoint_train_once_and_reuse_marks_it_used(store, tmp_path, monkeypatch):
    import os
    import threading
    import time

    from wmprobe.study.cache import cache_gc
    fits, real_fit = [], training._fit

    def slow_fit(*a, **k):
        fits.append(1)
        time.sleep(0.3)                        # the second trainer arrives while the first is still training
        return real_fit(*a, **k)
    monkeypatch.setattr(training, "_fit", slow_fit)
    root = tmp_path / "cache" / "zoo"
    kw = dict(train_episodes=[0, 1, 2], preset="tiny", progress=False, cache_dir=root)
    out: list = []
    threads = [threading.Thread(target=lambda: out.append(zoo.train("vae", store, **kw))) for _ in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(fits) == 1 and len(out) == 2 and out[0] == out[1]
    dest = out[0]
    old = time.time() - 90 * 86400                      # written 90 days ago ...
    for p in dest.rglob("*"):
        os.utime(p, (old, old))
    os.utime(dest, (old, old))
    assert zoo.train("vae", store, **kw) == dest and len(fits) == 1     # ... reused today (no training)
    cache_gc(tmp_path / "cache", keep_days=30)
    assert (dest / "recipe.json").exists(), "gc dropped a checkpoint a study just used"
    for p in dest.rglob("*"):
        os.utime(p, (old, old))
    cache_gc(tmp_path / "cache", keep_days=30)
    assert not dest.exists(), "gc keeps a checkpoint nothing used for 90 days"


def test_cli_zoo_train_puts_the_checkpoint_where_studies_look(store, tmp_path, monkeypatch, capsys):
    from wmprobe.cli import main
    from wmprobe.study.cache import Cache
    monkeypatch.setenv("WMPROBE_QUIET", "1")
    store.save(tmp_path / "store")
    rc = main(["--quiet", "zoo", "train", "vae", "--data", str(tmp_path / "store"), "--preset", "tiny",
               "--split", "episode", "--cache", str(tmp_path / "cache")])
    assert rc == 0
    (ckpt,) = [p for p in Cache(tmp_path / "cache").zoo_dir.iterdir() if (p / "recipe.json").exists()]
    assert str(ckpt) in capsys.readouterr().out


def test_plateau_tells_a_converged_curve_from_one_still_falling():
    steps = np.arange(400)
    converged = 0.1 + 0.9 * np.exp(-steps / 40)                 # flat for the last half
    falling = 1.0 - 0.002 * steps                                # still dropping at the same rate at the end
    noisy = converged + np.random.default_rng(0).normal(0, 0.02, 400)
    assert zoo.plateau(converged)["plateaued"] and zoo.plateau(noisy)["plateaued"]
    assert not zoo.plateau(falling)["plateaued"] and zoo.plateau(falling)["tail_share"] > 0.2
    assert not zoo.plateau(np.ones(100))["plateaued"]            # a loss that never fell did not converge
    # a loss that fell, then climbed back by half its drop in the last fifth (a drifting EMA target)
    rising = np.concatenate([converged[:320], converged[319] + 0.45 * (steps[:80] / 79)])
    p = zoo.plateau(rising)
    assert not p["plateaued"] and p["trend"] == "rising" and p["tail_share"] < -0.1
    assert zoo.plateau(converged)["trend"] == "flat" and zoo.plateau(falling)["trend"] == "falling"


def test_families_are_a_registry_of_named_types():
    """Each family is a ``ZooFamily`` (description, model class, dynamics) in ``zoo.families.REGISTRY``;
    ``FAMILIES`` lists the pretraining ones; an unknown name is one ConfigError with close names."""
    from wmprobe.zoo.families import REGISTRY, ZooFamily, family
    assert list(zoo.FAMILIES) == [n for n in REGISTRY.names() if REGISTRY.get(n).pretraining]
    assert isinstance(family("vjepa"), ZooFamily) and not family("ceiling").pretraining
    assert zoo.DYNAMICS_FAMILIES == ("dynamics", "dynamics-actin") and family("dynamics").dynamics
    assert zoo.model_class("vae").__name__ == "VAE"
    with pytest.raises(ConfigError, match="did you mean vjepa"):
        family("vjeap")


def test_vjepa_target_follows_the_published_ema_schedule():
    """vjepa's EMA target moves by (1 - m) toward the online trunk, m going 0.996 -> 1.0 linearly (I-JEPA /
    V-JEPA): at the first step it takes 0.4 % of the gap, at the last step it does not move."""
    import torch
    from wmprobe.zoo.families import build
    from wmprobe.zoo.video import EMA_END, EMA_START
    assert (EMA_START, EMA_END) == (0.996, 1.0)
    m = build("vjepa", 8, 7)
    with torch.no_grad():
        for p in m.trunk.parameters():
            p.add_(1.0)                                   # online = target + 1 everywhere
    before = [t.clone() for t in m.target.parameters()]
    m.after_step(0, 100)
    for b, t in zip(before, m.target.parameters()):
        torch.testing.assert_close(t, b + (1 - 0.996), rtol=0, atol=1e-6)
    before = [t.clone() for t in m.target.parameters()]
    m.after_step(99, 100)
    for b, t in zip(before, m.target.parameters()):
        torch.testing.assert_close(t, b, rtol=0, atol=0)
