"""Imagined latents: a zoo world model's own k-step rollout, probed beside the real latents; the records'
``latents`` key column (``real`` by default) merges with tables that predate it."""
import json

import numpy as np
import pytest
import torch

from helpers import moving_square_store
from wmprobe import zoo
from wmprobe.data.splits import make_split
from wmprobe.errors import EncoderError, ProbeError
from wmprobe.probes.imagined import probe_imagined


pytestmark = pytest.mark.usefixtures("one_torch_thread")   # conftest: training is reproducible on one thread


@pytest.fixture(scope="module")
def store():
    return moving_square_store(episodes=8, steps=8, size=64)


@pytest.fixture(scope="module")
def ckpts(store, tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    return {f: zoo.train(f, store, train_episodes=[0, 1, 2, 3, 4, 5], preset="tiny", cache_dir=root,
                         progress=False) for f in zoo.DYNAMICS_FAMILIES}


def test_checkpoint_stores_the_training_action_standardisation(store, ckpts):
    meta = json.loads((ckpts["dynamics"] / "recipe.json").read_text())
    L = meta["clip_len"]                                  # _fit standardises over the clip starts of training
    a = store.actions[np.concatenate([np.arange(s, s + 8 - L + 1) for s in store.episode_starts[:6]])]
    np.testing.assert_allclose(meta["action_mean"], a.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(meta["action_scale"], np.maximum(a.std(0, ddof=1), 1e-3), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("family", zoo.DYNAMICS_FAMILIES)
def test_imagine_is_deterministic_and_keeps_the_token_shape(store, ckpts, family):
    enc = zoo.load(ckpts[family])
    tok = enc.encode(np.asarray(store.frames[:5])[:, None]).tokens["out"][:, 0]
    acts = np.asarray(store.actions[:15], np.float32).reshape(5, 3, 7)
    a, b = enc.imagine(tok, acts), enc.imagine(tok, acts)
    assert a.shape == tok.shape and a.dtype == torch.float32 and torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert not torch.equal(a, enc.imagine(tok, acts, seed=1))            # the seed is the noise
    other = enc.imagine(tok, -acts)
    if family == "dynamics":     # the action enters the dynamics net: other actions, other predictions
        assert not torch.equal(a, other)
    else:                        # dynamics-actin: the dynamics net has no action input
        assert torch.equal(a, other)
    with pytest.raises(EncoderError, match="actions"):
        enc.imagine(tok, acts[:, :, :4])


def test_old_checkpoint_without_action_stats_refuses_to_imagine(store, ckpts, tmp_path):
    import shutil
    old = tmp_path / "old"
    shutil.copytree(ckpts["dynamics"], old)
    meta = json.loads((old / "recipe.json").read_text())
    del meta["action_mean"], meta["action_scale"]
    (old / "recipe.json").write_text(json.dumps(meta))
    enc = zoo.load(old)
    tok = enc.encode(np.asarray(store.frames[:2])[:, None]).tokens["out"][:, 0]
    with pytest.raises(EncoderError, match="action mean and scale"):
        enc.imagine(tok, np.zeros((2, 1, 7), np.float32))


def test_probe_imagined_rows_beside_the_real_ones(store, ckpts, tmp_path):
    from wmprobe.records import read_records, write_records
    split = make_split(store, kind="episode", seed=0)
    enc = zoo.load(ckpts["dynamics"])
    rows = probe_imagined(enc, store, split, ks=(1, 2), probes=("ridge",), seeds=(0,), n_boot=20)
    kinds = {(r["latents"], r["k"]) for r in rows}
    assert kinds == {("imagined", 1), ("imagined", 2), ("real", 1), ("real", 2)}
    assert all(np.isfinite(r["r2"]) and r["probe"] == "ridge" for r in rows)
    again = probe_imagined(enc, store, split, ks=(1, 2), probes=("ridge",), seeds=(0,), n_boot=20)
    assert [r["r2"] for r in rows] == [r["r2"] for r in again]
    # records: rows with the column merge with a table that has none (those rows read as real)
    out = tmp_path / "rec"
    plain = [{k: v for k, v in r.items() if k != "latents"} for r in rows if r["latents"] == "real"]
    write_records(plain, out, {})
    write_records([r for r in rows if r["latents"] == "imagined"], out, {})
    df = read_records(out)
    assert sorted(df["latents"].tolist()) == ["imagined"] * 2 + ["real"] * 2
    write_records([r for r in rows if r["latents"] == "real"], out, {})   # same cells: replaced, not doubled
    assert len(read_records(out)) == 4
    from wmprobe.analysis import measured_rows
    assert set(measured_rows(read_records(out))["latents"]) == {"real"}   # headline analyses: real latents only


def test_probe_imagined_refuses_an_encoder_without_dynamics(store, ckpts):
    from wmprobe.encoders.registry import load_encoder
    with pytest.raises(ProbeError, match="no dynamics model"):
        probe_imagined(load_encoder("pixels:8"), store, make_split(store, kind="episode"), ks=(1,))


@pytest.mark.slow
def test_study_adds_imagined_cells_for_world_models_only(tmp_path):
    """A study with zoo:dynamics and pixels: one imagined cell per (layer, k, mlp | ridge) for the world model,
    none for pixels; the headline analyses read the real rows only."""
    from helpers import write_tiny_store
    from wmprobe.study.runner import run
    store_dir = tmp_path / "store"
    write_tiny_store(store_dir, episodes=8, steps=8, size=64)
    doc = {"name": "imagined", "datasets": [{"name": "square", "path": str(store_dir)}],
           "encoders": [{"name": "pixels:4", "label": "pixels"}], "corruptions": ["clean"], "probes": ["ridge"],
           "ks": [1, 2], "seeds": [0], "n_boot": 20, "split": "episode", "executor": {"workers": 1},
           "zoo": {"families": ["dynamics"], "id_weights": [0.0], "preset": "tiny"}}
    df = run(doc, out=tmp_path / "out", cache=tmp_path / "cache", progress=False)
    assert (df["error"].fillna("") == "").all(), df["error"].tolist()
    probe_rows = df[(df["probe"] == "ridge") & df["encoder"].isin(["pixels", "zoo:dynamics"])]   # not the ceiling
    got = sorted(zip(probe_rows["encoder"], probe_rows["k"], probe_rows["latents"]))
    assert got == [("pixels", 1, "real"), ("pixels", 2, "real"), ("zoo:dynamics", 1, "imagined"),
                   ("zoo:dynamics", 1, "real"), ("zoo:dynamics", 2, "imagined"), ("zoo:dynamics", 2, "real")]
    assert np.isfinite(probe_rows["r2"]).all()
    again = run(doc, out=tmp_path / "out2", cache=tmp_path / "cache", progress=False)   # cached, identical
    cols = ["encoder", "k", "latents", "r2"]
    ridge = again[(again["probe"] == "ridge") & again["encoder"].isin(["pixels", "zoo:dynamics"])]
    pd_equal = ridge[cols].sort_values(cols[:3]).reset_index(drop=True)
    assert pd_equal.equals(probe_rows[cols].sort_values(cols[:3]).reset_index(drop=True))


def test_dry_run_counts_the_imagined_cells():
    from wmprobe.study.config import load_config
    from wmprobe.study.plan import estimate
    doc = {"name": "e", "datasets": [{"name": "a", "sim": "dynamic", "episodes": 8}], "encoders": [],
           "corruptions": ["clean"], "probes": ["ridge", "mlp", "mlp-shuffled"], "ks": [1, 2], "seeds": [0, 1],
           "zoo": {"families": ["vae"], "id_weights": [0.0], "ceiling": False}}
    base = estimate(load_config(doc))["datasets"][0]
    doc["zoo"]["families"] = ["vae", "dynamics"]
    with_wm = estimate(load_config(doc))["datasets"][0]
    # dynamics: 3 real cells per k, and 2 imagined (mlp, ridge) per k; fits: ridge 1 + mlp 2 seeds per k
    assert with_wm["probe_cells"] - base["probe_cells"] == 2 * 3 + 2 * 2
    assert with_wm["probe_fits"] - base["probe_fits"] == 2 * (1 + 2 + 2) + 2 * (1 + 2)


def test_a_failed_imagined_cell_reports_its_error_under_its_own_key():
    from wmprobe.study.plan import DatasetRef, EncoderRef, ProbeTask
    from wmprobe.study.runner import _error_rows
    enc = EncoderRef("zoo:dynamics", "zoo:/x", (), ("out",), "dynamics", 0.0, "ekey")
    ds = DatasetRef("a", "/d/a", "fp", 8, "episode", (0, 1, 2, 3, 4, 5), (6, 7))
    real = ProbeTask("k1", enc, ds, "out", "mlp", 1, (0, 1), (), 20, ("s",))
    imagined = ProbeTask("k2", enc, ds, "out", "mlp", 1, (0, 1), (), 20, ("s",), latents="imagined")
    assert {r.get("latents", "real") for r in _error_rows(real, "x")} == {"real"}
    rows = _error_rows(imagined, "no action stats")
    assert {r["latents"] for r in rows} == {"imagined"} and len(rows) == 2 and "imagined" in imagined.describe()


def test_plan_gives_imagined_cells_to_world_models_and_imagining_plugins_only():
    from wmprobe.study.config import load_config
    from wmprobe.study.plan import DatasetRef, EncoderRef, plan_study
    cfg = load_config({"name": "p", "datasets": [{"name": "a", "sim": "dynamic"}], "encoders": ["pixels"],
                       "corruptions": ["clean"], "probes": ["ridge", "mlp", "mlp-shuffled"], "ks": [1, 4],
                       "seeds": [0]})
    ds = DatasetRef("a", "/d/a", "fp", 10, "task", (0, 1, 2, 4, 5, 7, 8), (3, 6, 9))
    refs = [EncoderRef("pix", "pixels", (), ("pooled",), "pixels", 0.0, "k1"),
            EncoderRef("wm", "zoo:/x", (), ("out",), "dynamics-actin", 0.0, "k2"),
            EncoderRef("plug", "my:wm", (), ("out",), "custom", 0.0, "k3", imagines=True),
            EncoderRef("tube", "my:tube", (), ("out",), "custom", 0.0, "k4", frames_per_step=2, imagines=True)]
    plan = plan_study(cfg, refs, [ds])
    imagined = sorted((t.encoder.label, t.probe, t.k) for t in plan.probe if t.latents == "imagined")
    assert imagined == sorted((e, p, k) for e in ("wm", "plug") for p in ("mlp", "ridge") for k in (1, 4))
    tokens = {t.encoder.label: t.keep_tokens for t in plan.extract}
    assert tokens == {"pix": False, "wm": True, "plug": True, "tube": False}
    assert len({t.key for t in plan.probe}) == len(plan.probe)          # imagined cells have keys of their own
