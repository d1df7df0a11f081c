"""`wmprobe probe` in-process: the --latents/--store form (bring your own latents) and the FEATURES STORE form."""
import csv
import re

import numpy as np
import pytest

from helpers import write_tiny_store
from wmprobe.cli import main
from wmprobe.extract import StepFeatures
from wmprobe.probes.pairs import tubelet_steps

COLUMNS = {"encoder", "dataset", "split", "layer", "probe", "k", "seed", "r2", "r2_ci_low", "r2_ci_high",
           "n_train", "n_test", "n_test_episodes", "probe_config", "dataset_fingerprint"}


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    """`main(["--quiet", ...])` sets WMPROBE_QUIET in os.environ; monkeypatch restores it afterwards."""
    monkeypatch.setenv("WMPROBE_QUIET", "1")


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli-probe") / "store"
    write_tiny_store(path, episodes=12, steps=20, size=16)
    return path


def state_latents(store_dir, tokens=None, seed=0):
    """``(N, 12)`` (or ``(N, tokens, 12)``): dims 0..6 the running sum of the episode's actions (a state, so
    ``a_t = z_{t+1} - z_t`` exactly), dims 7..11 noise; every token repeats the state, with its own noise."""
    actions, ends = np.load(store_dir / "actions.npy"), np.load(store_dir / "episode_ends.npy")
    rng = np.random.default_rng(seed)
    state = np.zeros((len(actions), 7), np.float32)
    for s, e in zip(np.r_[0, ends[:-1]], ends):
        state[s:e] = np.concatenate([np.zeros((1, 7)), np.cumsum(actions[s:e], 0)[:-1]])
    if tokens is None:
        return np.c_[state, rng.normal(size=(len(state), 5))].astype(np.float32)
    noise = rng.normal(size=(len(state), tokens, 5))
    return np.concatenate([np.repeat(state[:, None], tokens, 1), noise], 2).astype(np.float32)


def probe_cli(*args):
    return main(["--quiet", "probe", *map(str, args)])


def read_csv(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_latents_form_writes_records_like_the_demo(tmp_path, store_dir, capsys):
    np.save(tmp_path / "Z.npy", state_latents(store_dir))
    out = tmp_path / "res"
    rc = probe_cli("--latents", tmp_path / "Z.npy", "--store", store_dir, "--probe", "ridge", "mlp",
                   "--k", "1", "2", "--split", "episode", "--seeds", "0", "--steps", "40", "--out", out)
    assert rc == 0, capsys.readouterr().err
    assert {p.name for p in out.iterdir()} >= {"records.csv", "records.parquet", "config.yaml"}
    recs = read_csv(out / "records.csv")
    assert COLUMNS <= set(recs[0])
    assert sorted((r["probe"], r["k"]) for r in recs) == [("mlp", "1"), ("mlp", "2"), ("ridge", "1"), ("ridge", "2")]
    ridge1 = next(r for r in recs if (r["probe"], r["k"]) == ("ridge", "1"))
    assert float(ridge1["r2"]) > 0.9 and ridge1["encoder"] == "Z" and ridge1["layer"] == "input"
    mlp = next(r for r in recs if r["probe"] == "mlp")
    assert '"steps": 40' in mlp["probe_config"]
    assert "records:" in capsys.readouterr().out


def test_latents_form_takes_tokens_for_the_attentive_probe(tmp_path, store_dir):
    np.save(tmp_path / "T.npy", state_latents(store_dir, tokens=4))
    rc = probe_cli("--latents", tmp_path / "T.npy", "--store", store_dir, "--probe", "attentive", "ridge",
                   "--split", "episode", "--seeds", "0", "--steps", "20", "--out", tmp_path / "res")
    assert rc == 0
    recs = read_csv(tmp_path / "res" / "records.csv")
    assert {r["probe"] for r in recs} == {"attentive", "ridge"}
    assert float(next(r for r in recs if r["probe"] == "ridge")["r2"]) > 0.9   # non-attentive probes pool tokens


def _bad(tmp_path, store_dir, name, z=None, write=None, probes=("ridge",)):
    path = tmp_path / name
    if z is not None:
        np.save(path, z) if name.endswith(".npy") else np.savez(path, z=z)
    if write is not None:
        path.write_bytes(write)
    rc = probe_cli("--latents", path, "--store", store_dir, "--probe", *probes, "--split", "episode",
                   "--out", tmp_path / "res")
    return rc, path


@pytest.mark.parametrize("case, message", [
    ("rows", "have 239 rows but the store needs 240"),
    ("nan", r"NaN or inf latents .* in episode\(s\) \[2\]"),
    ("missing", "does not exist"),
    ("npz", "is an .npz archive"),
    ("corrupt", "is corrupt or not a .npy array"),
    ("attentive-on-pooled", r"needs patch tokens \(N, tokens, D\) but latents .* are pooled"),
])
def test_bad_latents_exit_2_naming_the_file(tmp_path, store_dir, capsys, case, message):
    z = state_latents(store_dir)
    if case == "rows":
        rc, path = _bad(tmp_path, store_dir, "Z.npy", z[:-1])
    elif case == "nan":
        z[45, 3] = np.nan                                     # row 45: episode 2 (20 frames per episode)
        rc, path = _bad(tmp_path, store_dir, "Z.npy", z)
    elif case == "missing":
        rc, path = _bad(tmp_path, store_dir, "nowhere.npy")
    elif case == "npz":
        rc, path = _bad(tmp_path, store_dir, "Z.npz", z)
    elif case == "corrupt":
        rc, path = _bad(tmp_path, store_dir, "Z.npy", write=b"\x93NUMPY not really")
    else:
        rc, path = _bad(tmp_path, store_dir, "Z.npy", z, probes=("ridge", "attentive"))
    err = capsys.readouterr().err
    assert rc == 2, err
    assert str(path) in err and len(err.strip().splitlines()) == 1
    assert re.search(message, err), err
    assert not (tmp_path / "res" / "records.csv").exists()


@pytest.mark.parametrize("args, message", [
    (["F", "S", "--latents", "Z.npy", "--store", "S"], "not both"),
    ([], "give either FEATURES STORE"),
    (["--latents", "Z.npy"], "go together"),
    (["F"], "needs both FEATURES and STORE"),
])
def test_the_two_forms_exclude_each_other(tmp_path, capsys, args, message):
    assert probe_cli(*args, "--out", tmp_path / "res") == 2
    assert message in capsys.readouterr().err


def test_features_form_end_to_end(tmp_path, store_dir, capsys):
    """The positional form (features saved by `wmprobe extract`) still works as before."""
    from wmprobe.data import load_dataset
    store = load_dataset(store_dir)
    sf, se = tubelet_steps(store.episode_ends, 1)
    z = state_latents(store_dir)
    feats = StepFeatures({"state": z, "noise": np.random.default_rng(1).normal(size=z.shape).astype(np.float32)},
                         sf, se, spec={"encoder": "toy", "dataset_fingerprint": store.fingerprint})
    feats.save(tmp_path / "feats")
    rc = probe_cli(tmp_path / "feats", store_dir, "--probe", "ridge", "--split", "episode", "--seeds", "0",
                   "--k", "1", "--out", tmp_path / "res")
    assert rc == 0, capsys.readouterr().err
    recs = {r["layer"]: r for r in read_csv(tmp_path / "res" / "records.csv")}
    assert set(recs) == {"state", "noise"} and recs["state"]["encoder"] == "toy"
    assert float(recs["state"]["r2"]) > 0.9 and float(recs["noise"]["r2"]) < 0.05
    assert (tmp_path / "res" / "config.yaml").exists()
    # --steps reaches the mlp probe in this form too, and is recorded
    assert probe_cli(tmp_path / "feats", store_dir, "--probe", "mlp", "--split", "episode", "--seeds", "0",
                     "--steps", "7", "--k", "1", "--out", tmp_path / "res2") == 0
    (mlp, _) = sorted(read_csv(tmp_path / "res2" / "records.csv"), key=lambda r: r["layer"])
    assert '"steps": 7' in mlp["probe_config"]


def test_headline_groups_are_chosen_recorded_and_said(tmp_path, store_dir, capsys):
    """--headline-groups names what r2 averages (each group once); without it the action-space audit chooses.
    Either way the choice, the left-out groups with their reasons and the audit go into config.yaml, every row
    says what its r2 averaged, and the command prints it."""
    import yaml
    np.save(tmp_path / "Z.npy", state_latents(store_dir))
    out = tmp_path / "res"
    rc = probe_cli("--latents", tmp_path / "Z.npy", "--store", store_dir, "--probe", "ridge", "--split", "episode",
                   "--seeds", "0", "--k", "1", "--headline-groups", "gripper", "translation", "--out", out)
    said = capsys.readouterr()
    assert rc == 0, said.err
    (r,) = read_csv(out / "records.csv")
    assert r["headline_groups"] == "translation+gripper"
    assert float(r["r2"]) == pytest.approx((float(r["r2_translation"]) + float(r["r2_gripper"])) / 2)
    assert r["acc_gripper"] and float(r["bacc_gripper"]) > 0.9                # the 0/1 gripper, read as a label
    cfg = yaml.safe_load((out / "config.yaml").read_text())["config"]
    (name, head), = cfg["headline"].items()
    assert name == r["dataset"] and set(cfg["audit"]) == {name}
    assert head["headline_groups"] == ["translation", "gripper"] and head["source"] == "config"
    assert list(head["left_out"]) == ["rotation"] and "--headline-groups" in head["left_out"]["rotation"]
    assert "headline_groups" in cfg["audit"][name]
    assert f"{name}: headline r2 averages translation, gripper (as named); left out: rotation" in said.out
    # no choice: the audit's, recorded as such
    rc = probe_cli("--latents", tmp_path / "Z.npy", "--store", store_dir, "--probe", "ridge", "--split", "episode",
                   "--seeds", "0", "--out", tmp_path / "res2")
    assert rc == 0
    cfg = yaml.safe_load((tmp_path / "res2" / "config.yaml").read_text())["config"]
    head = cfg["headline"][name]
    assert head["source"] in ("audit", "all") and read_csv(tmp_path / "res2" / "records.csv")[0][
        "headline_groups"] == "+".join(head["headline_groups"])
    if head["source"] == "audit":
        assert cfg["audit"][name]["headline_groups"]
    # a group the store does not have: one clear error, nothing written
    capsys.readouterr()
    rc = probe_cli("--latents", tmp_path / "Z.npy", "--store", store_dir, "--probe", "ridge", "--split", "episode",
                   "--headline-groups", "wrist", "--out", tmp_path / "res3")
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "wrist" in err and "translation, rotation, gripper" in err
    assert not (tmp_path / "res3" / "records.csv").exists()


def test_python_probe_takes_headline_groups(store_dir):
    from wmprobe import probe
    df = probe(state_latents(store_dir), str(store_dir), probe="ridge", split="episode", seeds=(0,), n_boot=20,
               headline_groups=["rotation"])
    (row,) = df.to_dict("records")
    assert row["headline_groups"] == "rotation" and row["r2"] == pytest.approx(row["r2_rotation"])
