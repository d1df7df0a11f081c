"""Probe-train corruption (`corrupt_train: true`): probes also fit on corrupted train latents, in rows of their
own (``train_corruption``); the default plan, cache keys and records are those of the paper's protocol."""
import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from wmprobe import analysis as A
from wmprobe.records import CELL_KEY, cell_key
from wmprobe.study.config import load_config, validate
from wmprobe.study.plan import DatasetRef, EncoderRef, describe_study, estimate, plan_study
from wmprobe.study.runner import run

NOISE = "noise:0.3"


def study(store_dir, **over):
    """One encoder, ridge only, clean + one corruption: the smallest study that has something to augment."""
    doc = {"name": "augment", "datasets": [{"name": "square", "path": str(store_dir)}],
           "encoders": [{"name": "pixels:4", "label": "pixels"}], "corruptions": ["clean", NOISE],
           "probes": ["ridge", "ridge-shuffled"], "ks": [1], "seeds": [0], "n_boot": 50, "shard_episodes": 3,
           "executor": {"workers": 1}}
    return {**doc, **over}


# ---- the default plan is the paper's protocol, unchanged --------------------------------------------------------
def _synthetic_plan(**over):
    """A plan over fixed encoder/dataset refs (no data, no model): its task keys are pure functions of the code."""
    cfg = load_config({"name": "g", "datasets": [{"name": "a", "sim": "dynamic"}, {"name": "b", "sim": "static"}],
                       "encoders": ["pixels"], "corruptions": ["clean", "noise:0.3", "blur:5"],
                       "corrupt_datasets": ["a"], "probes": ["ridge", "mlp", "mlp-shuffled", "attentive"],
                       "ks": [1, 4], "seeds": [0, 1], "fidelity": True, "shard_episodes": 3, **over})
    enc = EncoderRef("pix", "pixels", (), ("pooled", "x"), "pixels", 0.0, "ekey")
    dss = [DatasetRef(n, f"/d/{n}", f"fp-{n}", 10, "task", (0, 1, 2, 4, 5, 7, 8), (3, 6, 9)) for n in ("a", "b")]
    return plan_study(cfg, [enc], dss)


def _digest(plan) -> str:
    text = json.dumps([[t.kind, t.key, t.describe()] for t in plan.extract + plan.probe + plan.fidelity])
    return hashlib.sha256(text.encode()).hexdigest()


def test_default_plan_and_its_cache_keys_are_unchanged():
    # digest of the plan's keys: a change here invalidates every cached cell. It changed on purpose when the
    # headline groups (what `r2` averages) entered every probe cell's key, and when ridge cells got
    # ridge.VERSION (alpha per target dim), and when fidelity cells got their decoder's settings (they had only
    # the preset's name, so an edited decoder section served stale scores); `corrupt_train` never changes it
    plan = _synthetic_plan()
    assert plan.summary() == {"extract": 10, "probe": 32, "fidelity": 2}
    assert _digest(plan) == "d8627b28f4aeb7312d46f4a3de6f28070ec886e535de4fd02d4ac82653d2ae1a"
    assert _digest(_synthetic_plan(corrupt_train=False)) == _digest(plan)
    assert all(not t.augmented for t in plan.probe)


def test_a_fidelity_key_follows_the_decoder_settings_not_only_the_preset_name(monkeypatch):
    """Editing a preset's decoder section (here one more step) must give new fidelity keys: the old key held
    only the preset's name, and a rerun served the scores of the old decoder from the cache."""
    from wmprobe import presets
    before = [t.key for t in _synthetic_plan().fidelity]
    real = presets.read

    def edited(name):
        doc = real(name)
        doc["decoder"] = {**doc["decoder"], "steps": doc["decoder"]["steps"] + 1}
        return doc

    monkeypatch.setattr(presets, "read", edited)
    after = [t.key for t in _synthetic_plan().fidelity]
    assert len(before) == len(after) == 2 and not set(before) & set(after)
    monkeypatch.setattr(presets, "read", real)
    assert [t.key for t in _synthetic_plan().fidelity] == before


def test_corrupt_train_adds_train_shards_and_one_fit_per_corruption():
    base, aug = _synthetic_plan(), _synthetic_plan(corrupt_train=True)
    # dataset a only (corrupt_datasets): 2 corruptions x 3 train shards (7 train episodes / 3)
    assert len(aug.extract) == len(base.extract) + 6
    new = [t for t in aug.extract if t.key not in {x.key for x in base.extract}]
    assert {t.corruption for t in new} == {"noise:0.3", "blur:5"} and all(t.dataset.name == "a" for t in new)
    assert sorted(e for t in new if t.corruption == "blur:5" for e in t.episodes) == [0, 1, 2, 4, 5, 7, 8]
    augmented = [t for t in aug.probe if t.augmented]
    # 2 layers x 2 k x 3 non-control probes x 2 corruptions; the controls are never augmented
    assert len(augmented) == 24 and not any("-" in t.probe for t in augmented)
    assert {t.key for t in aug.probe if not t.augmented} == {t.key for t in base.probe}
    t = augmented[0]
    assert t.clean_shards == () and t.corruptions == (t.train_corruption,) and "fit on" in t.describe()
    assert set(t.required_shards) == set(t.train_shards) | set(t.test_shards)


# ---- config ------------------------------------------------------------------------------------------------------
def test_corrupt_train_without_a_corruption_is_a_config_error(tmp_path, store_dir):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(study(store_dir, corruptions=["clean"], corrupt_train=True), sort_keys=False))
    problems = validate(f)
    assert [p.where for p in problems] == ["corrupt_train"], problems
    assert "nothing to fit" in problems[0].message
    assert "corrupt_train" in f.read_text().splitlines()[problems[0].line - 1]
    assert [p.where for p in validate(study(store_dir, corrupt_train="yes"))] == ["corrupt_train"]
    assert [p.where for p in validate(study(store_dir, corrupt_train=True, corrupt_datasets=[]))] == ["corrupt_train"]
    cfg = load_config(study(store_dir, corrupt_train=True))
    assert cfg.corrupt_train and load_config(cfg.to_dict()) == cfg


def test_dry_run_counts_the_extra_extraction_and_fits(store_dir):
    (base,), (aug,) = (estimate(load_config(study(store_dir, **o)))["datasets"] for o in ({}, {"corrupt_train": True}))
    # 8 episodes, 2 test: 3 clean shards + 1 noise test shard; + 2 noise train shards (6 episodes / 3)
    assert (base["extract_tasks"], aug["extract_tasks"]) == (4, 6)
    # ridge: clean + noise cells, the control on clean; + one ridge cell fit on noise. 2 fits (ridge, control) + 1
    assert (base["probe_cells"], aug["probe_cells"]) == (3, 4) and (base["probe_fits"], aug["probe_fits"]) == (2, 3)
    assert aug["frames_encoded"] > base["frames_encoded"]
    text = describe_study(study(store_dir, corrupt_train=True))
    row = next(ln.split() for ln in text.splitlines() if ln.strip().startswith("square "))
    assert (row[3], row[5], row[6]) == ("6", "4", "3") and "corrupt_train" in text, text  # extract, cells, fits


# ---- run -----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(store_dir, tmp_path_factory):
    """The default study, then the augmented one merged into the same results directory (same cache)."""
    d = tmp_path_factory.mktemp("aug")
    default = run(study(store_dir), out=d / "default", cache=d / "cache", progress=False, report=False)
    run(study(store_dir), out=d / "merged", cache=d / "cache", progress=False, report=False)
    merged = run(study(store_dir, corrupt_train=True), out=d / "merged", cache=d / "cache", progress=False,
                 report=False)
    return default, merged


def test_augmented_rows_are_their_own_cells(runs):
    default, merged = runs
    assert "train_corruption" not in default.columns             # default records: no new column
    assert (merged["error"].fillna("") == "").all(), merged["error"].tolist()
    assert not merged.duplicated(cell_key(merged)).any() and merged.duplicated(list(CELL_KEY)).any()
    aug = merged[merged["train_corruption"] == NOISE]
    assert len(aug) == 1 and aug["corruption"].tolist() == [NOISE] and aug["probe"].tolist() == ["ridge"]
    protocol = merged[merged["train_corruption"] == "clean"]
    assert set(merged["train_corruption"]) == {"clean", NOISE}
    pd.testing.assert_frame_equal(protocol.drop(columns=["train_corruption", "train_seconds"]).reset_index(drop=True),
                                  default.drop(columns=["train_seconds"]).reset_index(drop=True))
    test_time = protocol[(protocol["corruption"] == NOISE) & (protocol["probe"] == "ridge")]
    r2_aug, r2_test_time = float(aug["r2"].iloc[0]), float(test_time["r2"].iloc[0])
    assert np.isfinite(r2_aug) and np.isfinite(r2_test_time) and r2_aug != pytest.approx(r2_test_time, abs=1e-6)
    assert aug["n_train"].iloc[0] == test_time["n_train"].iloc[0]     # the same train steps, under the noise


def test_analysis_tables_use_the_protocol_rows_only(runs):
    default, merged = runs
    pd.testing.assert_frame_equal(A.robustness_long(merged), A.robustness_long(default))
    pd.testing.assert_frame_equal(A.summary_table(merged), A.summary_table(default))
