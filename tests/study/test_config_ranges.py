"""Every option `wmprobe run` would reject, `wmprobe validate` rejects first, with the file and line."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest
import yaml

from wmprobe.cli import main
from wmprobe.study.config import load_config, validate


def study(store_dir, **over):
    doc = {"name": "s", "datasets": [{"name": "sq", "path": str(store_dir)}], "encoders": ["pixels:8"],
           "probes": ["ridge"], "seeds": [0], "n_boot": 10}
    doc.update(over)
    return doc


def problems(doc) -> str:
    return "\n".join(map(str, validate(doc)))


def test_the_base_study_is_valid(store_dir):
    assert validate(study(store_dir)) == []


@pytest.mark.parametrize("probe, where", [
    ({"lrs": [-1]}, "probe.lrs[0]"), ({"lrs": [0.0]}, "probe.lrs[0]"), ({"lrs": []}, "probe.lrs"),
    ({"lrs": [".nan"]}, "probe.lrs[0]"), ({"weight_decays": [-5]}, "probe.weight_decays[0]"),
    ({"steps": 0}, "probe.steps"), ({"steps": -3}, "probe.steps"), ({"steps": 2.5}, "probe.steps"),
    ({"batch_size": 0}, "probe.batch_size"), ({"hidden": [-4]}, "probe.hidden"), ({"hidden": 8}, "probe.hidden"),
    ({"val_frac": 2.0}, "probe.val_frac"), ({"val_frac": 0}, "probe.val_frac"), ({"val_frac": 1}, "probe.val_frac"),
    ({"loss": "huber"}, "probe.loss"), ({"use_diff": "yes"}, "probe.use_diff"), ({"lrs": [1e-3, 1e-3]}, "probe.lrs"),
    ({"ensemble": 0}, "probe.ensemble"), ({"ensemble": 2.5}, "probe.ensemble"), ({"ensemble": True}, "probe.ensemble"),
])
def test_probe_options_are_range_checked(store_dir, probe, where):
    assert f"{where}:" in problems(study(store_dir, probe=probe))


def test_good_probe_options_pass(store_dir):
    ok = {"steps": 10, "batch_size": 8, "hidden": [16], "lrs": [1e-3, 3e-4], "weight_decays": [0, 1e-2],
          "val_frac": 0.3, "loss": "l2", "use_diff": True, "ensemble": 3}
    assert validate(study(store_dir, probe=ok)) == []


@pytest.mark.parametrize("over, where", [
    ({"seed": -1}, "seed"), ({"seeds": [-1]}, "seeds[0]"), ({"seeds": [0, 0]}, "seeds[1]"),
    ({"ks": [1, 1]}, "ks[1]"), ({"ks": [0]}, "ks[0]"), ({"ks": [10]}, "ks[0]"), ({"ks": [50]}, "ks[0]"),
    ({"probes": ["ridge", "ridge"]}, "probes[1]"), ({"corruptions": ["clean", "clean"]}, "corruptions[1]"),
    ({"device": "tpu9"}, "device"), ({"device": "cuda:x"}, "device"), ({"layers": ["layer_99"]}, "layers"),
    ({"encoders": [{"name": "pixels:8", "layers": ["layer_99"]}]}, "encoders[0].layers[0]"),
    ({"encoders": [{"name": "random-conv", "layers": ["conv4"]}]}, "encoders[0].layers[0]"),
    ({"encoders": [{"name": "pixels:8", "options": {"bogus": 1}}]}, "encoders[0].options"),
    ({"encoders": [{"name": "random-conv", "options": {"widht": 8}}]}, "encoders[0].options"),
    ({"encoders": [{"name": "dinov2", "options": {"windwo": 8}}]}, "encoders[0].options"),
    ({"encoders": [{"name": "pixels:8", "id_weight": "x"}]}, "encoders[0].id_weight"),
    ({"encoders": [{"name": "pixels:8", "id_weight": -1}]}, "encoders[0].id_weight"),
])
def test_study_options_are_range_checked(store_dir, over, where):
    # the store's episodes have 10 steps: k=10 has no pair in any episode
    assert f"{where}:" in problems(study(store_dir, **over))


def test_known_layers_and_options_pass(store_dir):
    doc = study(store_dir, encoders=[{"name": "pixels:8", "layers": ["out", "patches"]},
                                     {"name": "random-conv", "options": {"width": 8}, "layers": ["conv2"]},
                                     {"name": "dinov2:/nowhere", "layers": ["layer_99"], "options": {"window": 4}}],
                ks=[1, 9], device="auto")
    assert validate(doc) == []   # a hub model's layers are checked when the run loads it
    assert load_config(doc).device in ("cpu", "cuda")   # auto is resolved


@pytest.mark.parametrize("ds, where", [
    ({"steps": -5}, "datasets[0]"), ({"steps": 0}, "datasets[0]"), ({"camera": "nowhere"}, "datasets[0].camera"),
    ({"episodes": 0}, "datasets[0].episodes"), ({"size": 4}, "datasets[0]"), ({"steps": 2.5}, "datasets[0].steps"),
])
def test_simulator_parameters_are_checked(ds, where):
    doc = {"datasets": [{"name": "d", "sim": "dynamic", **ds}], "encoders": ["pixels:8"], "probes": ["ridge"]}
    assert f"{where}:" in problems(doc)


def test_k_against_simulator_steps():
    doc = {"datasets": [{"name": "d", "sim": "dynamic", "steps": 6}], "encoders": ["pixels:8"], "probes": ["ridge"]}
    assert validate({**doc, "ks": [5]}) == []
    assert "ks[0]: k=6" in problems({**doc, "ks": [6]})


@pytest.mark.parametrize("preset", ["tiny", "demo"])
def test_a_preset_combines_with_the_users_own_datasets(store_dir, preset):
    doc = {"preset": preset, "datasets": [{"name": "mine", "path": str(store_dir)}], "ks": [1]}
    assert validate(doc) == [], problems(doc)
    cfg = load_config(doc)
    assert [d.name for d in cfg.datasets] == ["mine"]
    assert cfg.corrupt_datasets == ("mine",)
    assert validate({**doc, "corrupt_datasets": ["dynamic"]}) != []   # the user's own keys are still checked
    assert cfg.test_tasks is None                  # the preset's named tasks are its suites', not this store's


def test_a_presets_named_held_out_tasks_stay_with_embedded_datasets_and_the_users_own_names_win(store_dir):
    sims = {"preset": "demo", "datasets": [{"name": "dyn", "sim": "dynamic", "episodes": 24}, "static"]}
    assert load_config(sims).test_tasks == load_config({"preset": "demo"}).test_tasks
    mixed = {"preset": "demo", "datasets": ["dynamic", {"name": "mine", "path": str(store_dir)}]}
    assert load_config(mixed).test_tasks is None
    assert load_config({**mixed, "test_tasks": ["task0"]}).test_tasks == ("task0",)   # the user's names win
    assert "test_tasks: ['nowhere'] are not tasks" in problems({**sims, "test_tasks": ["nowhere", "reach-red"]})


def test_duplicate_yaml_keys_name_both_lines(tmp_path, store_dir):
    f = tmp_path / "s.yaml"
    f.write_text(f"name: a\ndatasets: [{{name: sq, path: {store_dir}}}]\nencoders: [pixels:8]\n"
                 "probe:\n  steps: 10\n  steps: 20\n")
    msg = problems(f)
    assert f"{f}:6:" in msg and "duplicate key 'steps'" in msg and "line 5" in msg


def test_problems_carry_file_and_line(tmp_path, store_dir):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(study(store_dir, probe={"lrs": [-1]}, seed=-1), sort_keys=False))
    lines = f.read_text().splitlines()
    out = {str(p).split(": ")[1].rstrip(":"): str(p) for p in validate(f)}
    seed_line = next(i for i, l in enumerate(lines, 1) if l.startswith("seed:"))
    assert out["seed"].startswith(f"{f}:{seed_line}:")
    assert any(k.startswith("probe.lrs") for k in out)


def test_binary_file_is_refused(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_bytes(bytes(range(256)) * 8)
    msg = problems(f)
    assert "binary" in msg or "UTF-8" in msg


def test_huge_file_is_refused_without_parsing(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("# " + "x" * (2 << 20) + "\n")
    assert "too large" in problems(f)


def test_alias_bomb_fails_fast(tmp_path):
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 12):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    f = tmp_path / "bomb.yaml"
    f.write_text("\n".join(lines) + "\n")
    t0 = time.monotonic()
    msg = problems(f)
    assert time.monotonic() - t0 < 10
    assert "expands to more than" in msg


def test_validate_cli_rejects_what_run_would(tmp_path, store_dir, capsys):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(study(store_dir, probe={"weight_decays": [-5]}, ks=[1, 1])))
    assert main(["validate", str(f)]) == 1
    out = capsys.readouterr().out
    assert "probe.weight_decays[0]" in out and "ks[1]" in out
    assert main(["--quiet", "run", str(f), "--out", str(tmp_path / "r")]) == 2   # run refuses the same


@pytest.mark.parametrize("argv", [
    ["probe", "--latents", "z.npy", "--store", "s", "--out", "o", "--steps", "0"],
    ["probe", "--latents", "z.npy", "--store", "s", "--out", "o", "--seeds", "-1"],
    ["probe", "--latents", "z.npy", "--store", "s", "--out", "o", "--k", "0"],
    ["data", "gen", "dynamic", "d", "--episodes", "-3"],
    ["data", "gen", "dynamic", "d", "--steps", "0"],
    ["data", "gen", "dynamic", "d", "--seed", "-1"],
    ["data", "gen", "dynamic", "d", "--size", "0"],
    ["demo", "--seed", "-1"],
    ["zoo", "train", "vae", "--data", "d", "--seed", "-1"],
    ["zoo", "train", "vae", "--data", "d", "--id-weight", "-1"],
    ["extract", "pixels", "s", "--out", "o", "--batch-size", "0"],
    ["extract", "pixels", "s", "--out", "o", "--device", "tpu9"],
])
def test_cli_numeric_options_exit_2_with_one_sentence(argv):
    r = subprocess.run([sys.executable, "-m", "wmprobe.cli", *argv], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "error:" in last and "Traceback" not in r.stderr


@pytest.mark.parametrize("over, where", [
    ({"name": "../escape"}, "name"), ({"name": ""}, "name"), ({"name": ".hidden"}, "name"),
    ({"seed": 2**40}, "seed"), ({"seeds": [2**40]}, "seeds[0]"),
    ({"encoders": ["pixels:abc"]}, "encoders[0].name"), ({"encoders": ["pixels:6"]}, "encoders[0].name"),
    ({"encoders": ["random-conv:x"]}, "encoders[0].name"), ({"encoders": ["zoo:/nowhere"]}, "encoders[0].name"),
    ({"encoders": [{"name": "random-conv", "options": {"width": 10**6}}]}, "encoders[0].options"),
    ({"encoders": [{"name": "pixels:8", "label": 5}]}, "encoders[0].label"),
    ({"executor": {"kind": "submitit", "submitit": {"timeout_min": 0}}}, "executor.submitit.timeout_min"),
    ({"executor": {"kind": "submitit", "submitit": {"tasks_per_job": -1}}}, "executor.submitit.tasks_per_job"),
    ({"executor": {"kind": "ray", "ray": {"num_cpus": 0}}}, "executor.ray.num_cpus"),
    ({"executor": {"kind": "ray", "ray": {"num_gpus_per_task": -1}}}, "executor.ray.num_gpus_per_task"),
])
def test_names_seeds_encoder_arguments_and_executor_numbers(store_dir, over, where):
    assert f"{where}:" in problems(study(store_dir, **over))


def test_unknown_options_of_builtin_encoders_are_refused_at_run_time_too(store_dir, tmp_path):
    from wmprobe.encoders.registry import load_encoder
    from wmprobe.errors import EncoderError
    for name in ("pixels", "random-conv"):
        with pytest.raises(EncoderError, match="unknown option"):
            load_encoder(name, bogus=1)
    assert main(["--quiet", "extract", "pixels", str(store_dir), "--out", str(tmp_path / "f"),
                 "--encoder-option", "bogus=1"]) == 2


def test_an_impossible_split_of_a_store_is_reported_by_validate(tmp_path):
    from helpers import write_tiny_store
    s = write_tiny_store(tmp_path / "s", episodes=6, steps=8, size=16, tasks=4)
    doc = {"datasets": [{"name": "sq", "path": str(s.path)}], "encoders": ["pixels:8"], "probes": ["ridge"]}
    assert "split:" in problems({**doc, "split": "task"})            # one held-out task has 1 episode
    assert "test_frac:" in problems({**doc, "split": "episode", "test_frac": 0.9})
    assert validate({**doc, "split": "episode"}) == []


def test_an_edited_store_is_reported_by_validate(tmp_path):
    import numpy as np
    from helpers import write_tiny_store
    s = write_tiny_store(tmp_path / "s", episodes=8, steps=8, size=16)
    time.sleep(0.02)
    with open(s.path / "actions.npy", "r+b") as f:
        f.seek(-8, 2)
        f.write(np.float32([7, 7]).tobytes())
    doc = {"datasets": [{"name": "sq", "path": str(s.path)}], "encoders": ["pixels:8"], "probes": ["ridge"],
           "split": "episode"}
    assert "actions.npy" in problems(doc)


@pytest.mark.parametrize("probe", ["mlp", "attentive"])
def test_a_probe_whose_every_head_diverges_is_an_error_not_nan(probe):
    import torch
    from wmprobe.errors import ProbeError
    from wmprobe.probes.mlp import best_heads
    scores = torch.tensor([[0.1, float("nan"), 0.3], [float("nan")] * 3])
    with pytest.raises(ProbeError, match=r"diverged.*seed\(s\) \[1\]"):
        best_heads(scores, [0, 1], probe)
    assert best_heads(scores[:1], [0], probe).tolist() == [2]           # a NaN head is never picked


def test_a_diverging_lr_is_never_chosen_over_a_good_one(store_dir, tmp_path):
    import numpy as np
    from helpers import moving_square_store
    from wmprobe.probes.api import probe
    s = moving_square_store(episodes=8, steps=10, size=16)
    z = np.asarray(s.frames, np.float32).reshape(s.n_frames, -1)[:, ::7]
    rows = probe(z, s, probe="mlp", k=1, split="episode", seeds=[0], steps=30, lrs=[1e-3, 1e8])
    assert np.isfinite(rows[0]["r2"]) and "1e-3" not in str(rows[0].get("error", ""))
