"""The CLI through its installed entry point: exit codes and one-sentence errors."""
import shutil
import subprocess
import sys

import numpy as np

from helpers import moving_square_store

WMPROBE = shutil.which("wmprobe") or ""


def cli(*args, cwd=None):
    cmd = [WMPROBE] if WMPROBE else [sys.executable, "-m", "wmprobe.cli"]
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_help_lists_subcommands_with_examples():
    r = cli("--help")
    assert r.returncode == 0
    for sub in ("demo", "run", "extract", "probe", "report", "ls", "validate", "data", "zoo", "cache"):
        assert sub in r.stdout
    assert "examples:" in r.stdout


def test_ls_encoders():
    r = cli("ls", "encoders")
    assert r.returncode == 0 and "vjepa2" in r.stdout and "pixels" in r.stdout


def test_unknown_encoder_is_one_clear_sentence(tmp_path):
    moving_square_store(episodes=2, steps=3).save(tmp_path / "s")
    r = cli("extract", "dinov4", tmp_path / "s", "--out", tmp_path / "f")
    assert r.returncode == 2
    assert "unknown encoder 'dinov4'" in r.stderr and "Traceback" not in r.stderr


def test_corrupt_store_is_one_clear_sentence(tmp_path):
    moving_square_store(episodes=2, steps=3).save(tmp_path / "s")
    (tmp_path / "s" / "actions.npy").write_bytes(b"not numpy")
    r = cli("extract", "pixels", tmp_path / "s", "--out", tmp_path / "f")
    assert r.returncode == 2 and "actions.npy is corrupt or truncated" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_extract_writes_aligned_features(tmp_path):
    moving_square_store(episodes=3, steps=5).save(tmp_path / "s")
    r = cli("--quiet", "extract", "random-conv", tmp_path / "s", "--out", tmp_path / "f", "--layers", "conv2", "conv3")
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "f" / "step_frame.npy").tolist() == list(range(15))
    assert np.load(tmp_path / "f" / "pooled.conv2.npy").shape == (15, 64)


def test_encoder_options_reach_the_factory(tmp_path):
    moving_square_store(episodes=2, steps=3).save(tmp_path / "s")
    r = cli("--quiet", "extract", "pixels", tmp_path / "s", "--out", tmp_path / "f", "--encoder-option", "size=8")
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "f" / "pooled.out.npy").shape == (6, 8 * 8 * 3)
    r = cli("extract", "pixels", tmp_path / "s", "--out", tmp_path / "g", "--encoder-option", "size")
    assert r.returncode == 2 and "KEY=VALUE" in r.stderr


# ---- dotted overrides on run / demo / validate ----------------------------------------------------------
def _study_file(tmp_path, store_dir):
    import yaml
    f = tmp_path / "micro.yaml"
    f.write_text(yaml.safe_dump({"name": "micro", "datasets": [{"name": "square", "path": str(store_dir)}],
                                 "encoders": [{"name": "pixels:4", "label": "pixels"}], "probes": ["ridge"],
                                 "ks": [1], "seeds": [0], "n_boot": 20, "shard_episodes": 4,
                                 "executor": {"workers": 1}}))
    return f


def test_validate_reports_override_problems_at_their_override(tmp_path, store_dir):
    f = _study_file(tmp_path, store_dir)
    r = cli("validate", f, "probe.steps=200", "ks=[0,4]", "zoo.familes=[vae]", "seeds")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "override 2: ks[0]: must be >= 1" in r.stdout
    assert "override 3: zoo.familes: unknown key (did you mean 'families'?)" in r.stdout
    assert "override 4: 'seeds': expected KEY=VALUE" in r.stdout and "3 problem(s)" in r.stdout
    r = cli("validate", f, "probe.steps=200", "ks=[1,4]")
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout + r.stderr


def test_run_applies_and_records_overrides(tmp_path, store_dir):
    import pandas as pd
    import yaml
    f = _study_file(tmp_path, store_dir)
    r = cli("--quiet", "run", f, "--out", tmp_path / "out", "ks=[1,2]", "probes=[ridge]", "n_boot=10",
            cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    rec = pd.read_csv(tmp_path / "out" / "records.csv")
    assert sorted(set(rec["k"])) == [1, 2]
    cfg = yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())["config"]
    assert cfg["overrides"] == ["ks=[1,2]", "probes=[ridge]", "n_boot=10"]
    assert cfg["study"]["ks"] == [1, 2] and cfg["study"]["n_boot"] == 10
    r = cli("run", f, "--dry-run", "datasets[0].episodes=oops")
    assert r.returncode == 2 and "override 1: datasets[0].episodes: expected an integer" in r.stderr, r.stderr


def test_demo_takes_overrides_checked_before_anything_runs(tmp_path):
    r = cli("demo", "--preset", "tiny", "--out", tmp_path / "d", "probe.stepz=5")
    assert r.returncode == 2 and "override 1: probe.stepz: unknown key" in r.stderr, r.stderr
    assert not (tmp_path / "d").exists()


# ---- the command line: flags, help, listings, pipes, progress ------------------------------------------
def test_quiet_and_debug_work_after_the_subcommand(tmp_path):
    r = cli("ls", "presets", "--quiet")
    assert r.returncode == 0 and "tiny" in r.stdout, r.stderr
    moving_square_store(episodes=2, steps=3).save(tmp_path / "s")
    r = cli("extract", "dinov4", tmp_path / "s", "--out", tmp_path / "f", "--debug")
    assert r.returncode == 2 and "Traceback" in r.stderr and "unknown encoder 'dinov4'" in r.stderr
    r = cli("data", "info", tmp_path / "s", "-q", "--json")
    assert r.returncode == 0 and '"episodes": 2' in r.stdout


def test_every_option_has_a_help_line_and_shows_its_default():
    import argparse
    from wmprobe.cli import _Fmt, build_parser
    fmt = _Fmt(prog="wmprobe")
    seen = 0

    def walk(parser, name):
        nonlocal seen
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, sp in action.choices.items():
                    walk(sp, f"{name} {sub}")
            elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                assert action.help, f"{name} {action.dest}: no help line"
                if action.option_strings and not action.required:
                    seen += 1
                    shown = fmt._get_help_string(action) if action.default is not argparse.SUPPRESS else action.help
                    assert "default" in shown.lower(), f"{name} {action.option_strings}: no default shown"
    walk(build_parser(), "wmprobe")
    assert seen > 60
    r = cli("extract", "--help")
    assert "frames per forward pass (default: 32)" in " ".join(r.stdout.split())
    assert "(default: auto)" in r.stdout
    r = cli("probe", "--help")
    text = " ".join(r.stdout.split())
    assert "(default: 1 4)" in text and "mlp 3000 steps x batch 256" in text


def test_choice_lists_come_from_their_owners_and_the_parser_needs_no_torch():
    """Every ``choices=`` of the parser is read from the registry or name list that owns the concept (one more
    objective, split, format or preset is one more choice with no CLI edit), default first; building the
    parser imports neither torch nor pybullet."""
    import argparse
    code = ("import sys; from wmprobe.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'pybullet', 'pandas') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
    from wmprobe import presets
    from wmprobe.cli import build_parser
    from wmprobe.cli.misc import LISTS
    from wmprobe.data.formats import READERS, WRITERS
    from wmprobe.data.sim.tasks import WRIST_MODES
    from wmprobe.data.splits import SPLITS
    from wmprobe.study.executor_registry import EXECUTORS
    from wmprobe.trackers import TRACKERS
    from wmprobe.zoo.objective_names import OBJECTIVES

    found = {}

    def walk(parser, name):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, sp in action.choices.items():
                    walk(sp, f"{name} {sub}".strip())
            elif action.choices is not None:
                found[f"{name} {(action.option_strings or [action.dest])[0]}"] = list(action.choices)
    walk(build_parser(), "")
    expected = {"zoo train --objective": list(OBJECTIVES), "zoo train --split": ["task", "episode"],
                "probe --split": ["task", "episode"], "data audit --split": ["task", "episode"],
                "data gen --wrist": list(WRIST_MODES), "data export --format": WRITERS.names(),
                "ls what": ["all", *LISTS], "demo --preset": presets.names(), "zoo train --preset": presets.names(),
                "run --executor": EXECUTORS.names(),
                **{f"{c} --log": list(TRACKERS) for c in ("demo", "report", "run")},
                **{f"data {c} --format": ["auto", *READERS.names()] for c in ("import", "info", "validate")}}
    assert found == expected
    assert sorted(found["zoo train --split"]) == sorted(SPLITS)
    assert list(OBJECTIVES)[0] == "l1" and WRITERS.names() == ["lerobot"]


def test_ls_probes_and_json_and_no_broken_pipe():
    import json
    import os
    r = cli("ls", "probes")
    assert r.returncode == 0 and "ridge" in r.stdout and "PROBE-shuffled" in r.stdout
    r = cli("ls", "--json")
    doc = json.loads(r.stdout)
    assert {"encoders", "families", "probes", "datasets", "corruptions", "presets"} <= set(doc)
    assert "mlp" in doc["probes"] and "pixels" in doc["encoders"]
    rd, wr = os.pipe()
    os.close(rd)  # the reader is gone before anything is written, as when `| head` has exited
    cmd = [WMPROBE] if WMPROBE else [sys.executable, "-m", "wmprobe.cli"]
    try:
        p = subprocess.run([*cmd, "ls"], stdout=wr, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(wr)
    assert "BrokenPipeError" not in p.stderr and "Traceback" not in p.stderr and p.returncode == 0, p.stderr


def test_zoo_ls_lists_trained_checkpoints(tmp_path):
    import json
    ck = tmp_path / "cache" / "zoo" / "vjepa-tiny-id1-abc"
    ck.mkdir(parents=True)
    (ck / "recipe.json").write_text(json.dumps({"recipe": {"family": "vjepa", "preset": "tiny", "id_weight": 1.0,
                                                           "objective": "l1", "seed": 0, "data": "fp123"}}))
    r = cli("zoo", "ls", "--cache", tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    row = next(ln for ln in r.stdout.splitlines() if "vjepa-tiny-id1-abc" in ln).split()
    assert row[:3] == ["vjepa", "tiny", "1"] and row[-1] == str(ck)
    doc = json.loads(cli("zoo", "ls", "--cache", tmp_path / "cache", "--json").stdout)
    assert doc["checkpoints"][0]["path"] == str(ck) and "vae" in doc["families"]


def test_data_info_is_a_table_and_json_on_request(tmp_path):
    import json
    moving_square_store(episodes=3, steps=4, tasks=2).save(tmp_path / "s")
    r = cli("data", "info", tmp_path / "s")
    assert r.returncode == 0 and not r.stdout.lstrip().startswith("{"), r.stdout
    lines = {ln.split("  ")[0].strip(): ln for ln in r.stdout.splitlines()}
    assert "3" in lines["episodes"] and "translation" in lines["action groups"]
    assert json.loads(cli("data", "info", tmp_path / "s", "--json").stdout)["frames"] == 12


def test_probe_progress_warnings_and_default_k(tmp_path, store_dir):
    from wmprobe.cli import build_parser
    a = build_parser().parse_args(["probe", "--latents", "z.npy", "--store", "s", "--out", "o"])
    assert a.k == [1, 4]
    assert build_parser().parse_args(["extract", "pixels", "s", "--out", "o"]).device == "auto"
    from wmprobe.data.store import EpisodeStore
    store = EpisodeStore.load(store_dir)
    z = np.asarray(store.frames, np.float32).reshape(store.n_frames, -1)[:, ::16]
    np.save(tmp_path / "z.npy", z)
    r = cli("probe", "--latents", tmp_path / "z.npy", "--store", store_dir, "--probe", "ridge", "--k", "1", "2",
            "--seeds", "0", "--out", tmp_path / "o")
    assert r.returncode == 0, r.stderr
    assert "2/2 cells" in r.stderr and "<" in r.stderr          # progress over cells with elapsed<remaining
    assert "test episode(s): the bootstrap CI over test episodes is unreliable" in r.stderr


def test_probe_warns_on_absurd_r2():
    from wmprobe.cli import probe_warnings
    rows = [{"layer": "out", "probe": "mlp", "k": 4, "seed": 0, "r2": -7e12, "n_test_episodes": 12,
             "probe_config": '{"chosen": [{"seed": 0, "val_r2": -3e12}]}'},
            {"layer": "out", "probe": "ridge", "k": 4, "seed": 0, "r2": 0.4, "n_test_episodes": 12}]
    w = probe_warnings(rows)
    assert len(w) == 1 and "test R2 -7e+12 is absurd" in w[0] and "mlp" in w[0]
    assert probe_warnings(rows[1:]) == []


def test_python_probe_returns_a_dataframe_and_store_repr_is_one_line(store_dir):
    import pandas as pd
    import wmprobe
    from wmprobe.records import RECORD_COLUMNS
    store = wmprobe.load_dataset(store_dir)
    assert "\n" not in repr(store) and "8 episodes" in repr(store) and len(repr(store)) < 300
    z = np.asarray(store.frames, np.float32).reshape(store.n_frames, -1)[:, ::16]
    df = wmprobe.probe(z, store, probe="ridge", k=[1, 2], split="episode", n_boot=10)
    assert isinstance(df, pd.DataFrame) and list(df.columns[:len(RECORD_COLUMNS)]) == list(RECORD_COLUMNS)
    assert sorted(df["k"]) == [1, 2]


def test_no_simulator_banner_in_the_output(tmp_path):
    r = cli("data", "gen", "dynamic", tmp_path / "d", "--episodes", "2", "--steps", "3", "--size", "16",
            "--workers", "1", "--tasks", "1")
    assert r.returncode == 0, r.stderr
    assert "pybullet build time" not in r.stdout + r.stderr
