"""Config-driven studies: validation with locations, the plan, the latent cache (resume, corruption, locking,
disk full), failure reporting, and identical records from the local, submitit and Ray executors."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from wmprobe.records import CELL_KEY
from wmprobe.study.cache import Cache, CacheError
from wmprobe.study.config import load_config, validate
from wmprobe.study.runner import run

TIMING = ["train_seconds"]


def study(store_dir, **over):
    doc = {"name": "micro", "datasets": [{"name": "square", "path": str(store_dir)}],
           "encoders": [{"name": "pixels:4", "label": "pixels"}, "random-conv:0"],
           "corruptions": ["clean", "noise:0.15"], "probes": ["ridge", "mlp"], "ks": [1], "seeds": [0],
           "probe": {"steps": 60}, "n_boot": 50, "shard_episodes": 3, "executor": {"workers": 1}}
    doc.update(over)
    return doc


def records(out):
    return pd.read_parquet(Path(out) / "records.parquet")


def same_records(a, b, ignore=TIMING):
    a = a.drop(columns=ignore).sort_values(list(CELL_KEY)).reset_index(drop=True)
    b = b.drop(columns=ignore).sort_values(list(CELL_KEY)).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


# ---- config ---------------------------------------------------------------------------------------
def test_validate_reports_every_problem_with_its_line(tmp_path, store_dir):
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump({
        "name": "bad",
        "datasets": [{"name": "a", "sim": "nosuchsuite"}, {"name": "b", "path": str(tmp_path / "missing")}],
        "encoders": ["pixels", {"name": "dinoo"}],
        "probes": ["mlp", "lasso"], "ks": [0], "corruptions": ["clean", "snowstorm:3"],
        "executor": {"kind": "slurmz"}, "shard_episode": 4,
        "zoo": {"families": ["vae", "vqvae"], "objectives": ["l1", "l3"]},
    }, sort_keys=False))
    problems = validate(f)
    text = "\n".join(map(str, problems))
    for where in ("datasets[0].sim", "datasets[1].path", "encoders[1].name", "probes[1]", "ks[0]",
                  "corruptions[1]", "executor.kind", "shard_episode", "zoo.families[1]", "zoo.objectives[1]"):
        assert where in text, (where, text)
    assert "did you mean dinov3, dinov2" in text and "did you mean 'shard_episodes'" in text
    lines = f.read_text().splitlines()
    enc = next(p for p in problems if p.where == "encoders[1].name")
    assert "dinoo" in lines[enc.line - 1]                       # the location points at the offending line
    r = subprocess.run([sys.executable, "-m", "wmprobe.cli", "validate", str(f)], capture_output=True, text=True)
    assert r.returncode == 1 and f"{len(problems)} problem(s)" in r.stdout


def test_simulator_datasets_choose_their_tasks(tmp_path, store_dir):
    cfg = load_config({"preset": "tiny", "datasets": [{"name": "mw", "sim": "metaworld", "tasks": "all"},
                                                      {"name": "dynamic", "sim": "dynamic", "tasks": 3}]})
    assert [d.tasks for d in cfg.datasets] == ["all", 3]
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump({"datasets": [{"name": "mw", "sim": "metaworld", "tasks": ["pik-place-v3"]},
                                              {"name": "s", "path": str(store_dir), "tasks": 2}],
                                 "encoders": ["pixels"]}, sort_keys=False))
    text = "\n".join(map(str, validate(f)))
    assert "datasets[0].tasks" in text and "pick-place" in text               # unknown name, close match named
    assert "datasets[1].tasks" in text and "only simulator suites" in text


def test_dataset_action_groups_override_the_stores(tmp_path, store_dir):
    """`action_groups:` on a study dataset is checked like the rest of the file and regroups the store (a new
    fingerprint, so no cell of the original grouping is reused); `none` drops the groups."""
    from wmprobe.data.store import EpisodeStore
    from wmprobe.study.cache import Cache
    from wmprobe.study.runner import resolve_datasets
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(study(store_dir, datasets=[
        {"name": "square", "path": str(store_dir), "action_groups": {"translation": [0, 1, 9]}}])))
    problems = validate(bad)
    assert len(problems) == 1 and problems[0].where == "datasets[0].action_groups"
    assert "outside 0..6" in problems[0].message
    assert "action_groups" in bad.read_text().splitlines()[problems[0].line - 1]
    cfg = load_config(study(store_dir, datasets=[
        {"name": "square", "path": str(store_dir), "action_groups": "translation=0,1 gripper=6"},
        {"name": "flat", "path": str(store_dir), "action_groups": "none"}]))
    assert cfg.datasets[0].action_groups == {"translation": [0, 1], "gripper": [6]}
    assert cfg.to_dict()["datasets"][1]["action_groups"] == {}
    got = resolve_datasets(cfg, Cache(tmp_path / "cache"), progress=False)
    orig = EpisodeStore.load(store_dir)
    square, flat = got["square"][0], got["flat"][0]
    assert square.action_groups == {"translation": [0, 1], "gripper": [6]} and flat.action_groups == {}
    assert len({orig.fingerprint, square.fingerprint, flat.fingerprint}) == 3
    assert np.array_equal(square.actions, orig.actions) and square.meta["parent_fingerprint"] == orig.fingerprint
    again = resolve_datasets(cfg, Cache(tmp_path / "cache"), progress=False)
    assert again["square"][0].path == square.path and EpisodeStore.load(store_dir).action_groups == orig.action_groups


def test_objective_ablation_plans_one_model_per_objective(tmp_path):
    from wmprobe.study.plan import describe_study
    text = describe_study({"preset": "tiny", "encoders": [], "zoo": {"families": ["diffusion"], "id_weights": [0, 1],
                                                                    "objectives": ["l1", "l2", "forward"]}})
    assert "(5 models incl. the ceiling" in text        # frozen twin + one +ID model per objective + the ceiling


def test_presets_resolve_and_round_trip():
    for name in ("tiny", "demo", "compare", "paper"):
        cfg = load_config({"preset": name})
        assert cfg.datasets and cfg.encoders and cfg.zoo.families
        assert load_config(cfg.to_dict()) == cfg


def test_demo_preset_plans_the_decoder_probe_and_corruptions_on_the_dynamic_suite():
    """`wmprobe demo` (preset demo, not tiny): PSNR/SSIM by the decoder probe and noise:0.15 / blur:11 on the
    dynamic suite, checked on the config and the plan only (running it takes minutes)."""
    from wmprobe.fidelity import PRESETS as DECODER_PRESETS
    from wmprobe.study.plan import DatasetRef, EncoderRef, describe_study, estimate, plan_study
    cfg = load_config({"preset": "demo"})
    dynamic = next(d for d in cfg.datasets if d.sim == "dynamic")
    assert cfg.fidelity and cfg.fidelity_preset in DECODER_PRESETS and dynamic.name in cfg.fidelity_datasets
    assert {"noise:0.15", "blur:11"} <= set(cfg.corruptions) and dynamic.name in cfg.corrupt_datasets
    rows = {r["dataset"]: r for r in estimate(cfg)["datasets"]}
    assert rows[dynamic.name]["fidelity_tasks"] == estimate(cfg)["encoders"] > 0
    assert "fidelity on" in describe_study({"preset": "demo"})
    enc = EncoderRef("pixels", "pixels:8", (), ("pooled",), "pixels", 0.0, "ekey")
    refs = [DatasetRef(d.name, f"/d/{d.name}", f"fp-{d.name}", d.episodes, "task", tuple(range(36)),
                       tuple(range(36, d.episodes))) for d in cfg.datasets]
    plan = plan_study(cfg, [enc], refs)
    assert [t.dataset.name for t in plan.fidelity] == [dynamic.name]
    corrupted = {t.corruption for t in plan.extract if t.dataset.name == dynamic.name}
    assert corrupted == {"clean", "noise:0.15", "blur:11"}
    assert all(t.keep_tokens for t in plan.extract if t.dataset.name == dynamic.name and t.corruption == "clean")
    scored = {t.probe: set(t.corruptions) for t in plan.probe if t.dataset.name == dynamic.name}
    assert scored["mlp"] == scored["ridge"] == {"clean", "noise:0.15", "blur:11"}
    assert scored["mlp-shuffled"] == {"clean"}


def test_dry_run_prints_the_plan(tmp_path, store_dir):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(study(store_dir)))
    r = subprocess.run([sys.executable, "-m", "wmprobe.cli", "run", str(f), "--dry-run"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert "3 extract tasks" not in r.stdout and "probe cells" in r.stdout
    # 2 encoders x (3 clean shards + 1 noise shard of the 2 test episodes), 2 enc x 2 corr x 2 probes;
    # one fit (1 seed) per (encoder, probe) scores both corruptions
    header = next(ln.split("  ") for ln in r.stdout.splitlines() if ln.strip().startswith("dataset "))
    assert [h.strip() for h in header if h.strip()][3:7] == ["extract tasks", "frames encoded", "probe cells",
                                                             "probe fits"]
    row = next(ln.split() for ln in r.stdout.splitlines() if ln.strip().startswith("square "))
    assert (row[3], row[5], row[6]) == ("8", "8", "4"), r.stdout   # extract tasks, probe cells, probe fits


# ---- runs, cache, resume ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reference(store_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("ref")
    df = run(study(store_dir), out=d / "out", cache=d / "cache", progress=False)
    return d, df


def test_run_writes_records_and_rerun_reuses_everything(reference, store_dir):
    d, df = reference
    assert set(df["encoder"]) == {"pixels", "random-conv:0"}
    assert set(df["corruption"]) == {"clean", "noise:0.15"}
    assert df["r2"].notna().all() and (df["error"].fillna("") == "").all()
    assert (df["host"] == socket.gethostname()).all() and df["torch_version"].str.startswith("2.13").all()
    before = (d / "out" / "records.parquet").read_bytes()
    run(study(store_dir), out=d / "out", cache=d / "cache", progress=False)
    assert (d / "out" / "records.parquet").read_bytes() == before        # bit-identical
    cfg = yaml.safe_load((d / "out" / "config.yaml").read_text())
    assert cfg["config"]["run"]["extract"]["computed"] == 0 and cfg["config"]["run"]["probe"]["computed"] == 0
    assert cfg["provenance"]["versions"]["torch"]


def test_fidelity_attaches_to_clean_rows_beside_corrupted_cells(store_dir, tmp_path):
    df = run(study(store_dir, encoders=[{"name": "pixels:4", "label": "pixels"}], probes=["ridge"],
                   fidelity=True, fidelity_preset="tiny"), out=tmp_path / "out", cache=tmp_path / "cache",
             progress=False)
    assert (df["error"].fillna("") == "").all(), df["error"].tolist()
    clean, noisy = df[df["corruption"] == "clean"], df[df["corruption"] != "clean"]
    assert clean["psnr"].notna().all() and noisy["psnr"].isna().all() and noisy["r2"].notna().all()
    for m in ("psnr", "ssim"):   # the decoder probe's episode-bootstrap CIs travel with the clean rows
        lo, hi = clean[f"{m}_ci_low"].to_numpy(float), clean[f"{m}_ci_high"].to_numpy(float)
        assert np.isfinite(lo).all() and np.isfinite(hi).all(), (m, lo, hi)
        assert (lo <= clean[m]).all() and (clean[m] <= hi).all() and (lo < hi).all(), (m, lo, hi)
        assert noisy[f"{m}_ci_low"].isna().all()


def test_models_with_their_own_decoder_also_report_its_fidelity(store_dir, tmp_path):
    """zoo:vae decodes its own latents: psnr_own / ssim_own beside the decoder probe's psnr (pixels has none),
    equal to decoding the test episodes directly."""
    from wmprobe.data.store import EpisodeStore
    from wmprobe.encoders.registry import load_encoder
    from wmprobe.fidelity import own_decoder_fidelity_clips
    df = run(study(store_dir, encoders=[{"name": "pixels:4", "label": "pixels"}], probes=["ridge"],
                   corruptions=["clean"], fidelity=True, fidelity_preset="tiny",
                   zoo={"families": ["vae"], "id_weights": [0.0], "preset": "tiny"}),
             out=tmp_path / "out", cache=tmp_path / "cache", progress=False)
    assert (df["error"].fillna("") == "").all(), df["error"].tolist()
    vae, pix = df[df["encoder"] == "zoo:vae"], df[df["encoder"] == "pixels"]
    assert vae["psnr"].notna().all() and vae["psnr_own"].notna().all() and pix["psnr_own"].isna().all()
    assert 5 < vae["psnr_own"].iloc[0] < 60 and 0 < vae["ssim_own"].iloc[0] <= 1
    cfg = yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())
    ckpt = cfg["config"]["encoders"]["zoo:vae"]["name"]
    store = EpisodeStore.load(store_dir)
    test = cfg["config"]["datasets"]["square"]["split"]["test_episodes"]
    order = np.random.default_rng(0).permutation(np.asarray(test, np.int64))
    ref = own_decoder_fidelity_clips(load_encoder(ckpt), [np.asarray(store.frames[store.episode_slice(int(e))])
                                                         for e in order], [int(e) for e in order], seed=0)
    assert vae["psnr_own"].iloc[0] == pytest.approx(ref["psnr"], abs=1e-6)


def test_a_failed_zoo_model_gets_error_rows_under_its_label_and_family(store_dir, tmp_path, monkeypatch):
    """A zoo model whose training fails is one error row per dataset, named by its label (``zoo:FAMILY[OBJ]``)
    and its family (a ``ZooModel`` carries both; nothing is parsed back out of the label)."""
    from wmprobe import zoo
    from wmprobe.errors import EncoderError

    def fail(family, store, **kw):
        raise EncoderError(f"no {family} today")
    monkeypatch.setattr(zoo, "train", fail)
    df = run(study(store_dir, encoders=[{"name": "pixels:4", "label": "pixels"}], probes=["ridge"],
                   corruptions=["clean"], zoo={"families": ["vae"], "id_weights": [1.0], "objective": "l2",
                                               "preset": "tiny"}),
             out=tmp_path / "out", cache=tmp_path / "cache", progress=False)
    bad = df[df["encoder"].str.startswith("zoo:")]
    assert bad["encoder"].tolist() == ["zoo:vae[l2]"] and bad["family"].tolist() == ["vae"]
    assert bad["error"].str.contains("zoo training failed").all() and bad["error"].str.contains("no vae").all()
    assert df[df["encoder"] == "pixels"]["r2"].notna().all()


def test_corrupt_shard_is_recomputed_not_used(reference, store_dir, tmp_path):
    d, df = reference
    cache = tmp_path / "cache"
    import shutil
    shutil.copytree(d / "cache", cache)
    shutil.rmtree(cache / "cells")                              # force the probes to read the shards again
    shard = next((cache / "latents").iterdir())
    victim = next(shard.glob("pooled.*.npy"))
    victim.write_bytes(victim.read_bytes()[:-16])               # truncated on disk
    with pytest.warns(UserWarning, match="corrupt"):
        again = run(study(store_dir), out=tmp_path / "out", cache=cache, progress=False)
    same_records(df, again)
    assert Cache(cache).verify_latents(shard.name)              # rewritten, checksums match again
    feats = Cache(cache).load_latents(shard.name)
    assert all(isinstance(v, np.memmap) for v in feats.pooled.values())   # reads are memory-mapped


def test_disk_full_gives_a_clear_error_and_leaves_the_cache_consistent(store_dir, tmp_path, monkeypatch):
    import errno
    from wmprobe.extract import StepFeatures
    real = StepFeatures.save
    calls = {"n": 0}

    def flaky(self, path):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, path)
    monkeypatch.setattr(StepFeatures, "save", flaky)
    cfg = study(store_dir, executor={"kind": "local", "max_retries": 0, "workers": 1})
    with pytest.raises(CacheError, match="disk full while writing latent shard .* free space"):
        run(cfg, out=tmp_path / "out", cache=tmp_path / "cache", progress=False)   # stops (exit 2), names the path
    assert not (tmp_path / "out" / "records.parquet").exists()  # no records with holes written
    leftovers = [p for p in (tmp_path / "cache" / "latents").iterdir() if p.name.startswith(".")]
    assert not leftovers
    for p in (tmp_path / "cache" / "latents").iterdir():
        assert Cache(tmp_path / "cache").verify_latents(p.name)
    monkeypatch.setattr(StepFeatures, "save", real)
    fixed = run(cfg, out=tmp_path / "out", cache=tmp_path / "cache", progress=False)
    assert (fixed["error"].fillna("") == "").all()


def test_cache_write_error_is_a_cache_error(tmp_path, monkeypatch):
    c = Cache(tmp_path)

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(os, "replace", denied)
    with pytest.raises(CacheError, match="cannot write cell k"):
        c.put_cell("k", [{"r2": 1.0}], {})
    assert not [p for p in (tmp_path / "cells").iterdir()]     # no temporary left behind


def test_failed_tasks_are_retried_then_reported(store_dir, tmp_path, monkeypatch):
    from wmprobe.study import tasks
    real = tasks.run_probe
    attempts = {"n": 0}

    def broken(task, cache):
        if task.probe == "mlp" and task.encoder.label == "pixels":
            attempts["n"] += 1
            raise RuntimeError("worker lost")
        return real(task, cache)
    monkeypatch.setattr(tasks, "run_probe", broken)
    df = run(study(store_dir, executor={"kind": "local", "max_retries": 2, "workers": 1}), out=tmp_path / "out",
             cache=tmp_path / "cache", progress=False)
    bad = df[(df["probe"] == "mlp") & (df["encoder"] == "pixels")]
    # one fit scores clean and noise:0.15: both rows of the failed task are reported, none dropped
    assert sorted(bad["corruption"]) == ["clean", "noise:0.15"]
    assert bad["error"].str.contains("worker lost").all() and bad["r2"].isna().all()
    assert attempts["n"] == 3
    assert (df.drop(bad.index)["error"].fillna("") == "").all()


def test_a_failed_corrupted_extraction_keeps_the_clean_rows_of_its_cells(store_dir, tmp_path, monkeypatch):
    from wmprobe.study import tasks
    real = tasks.run_extract

    def broken(task, cache):
        if task.corruption != "clean" and task.encoder.label == "pixels":
            raise RuntimeError("corrupted frames unreadable")
        return real(task, cache)
    monkeypatch.setattr(tasks, "run_extract", broken)
    cfg = study(store_dir, executor={"kind": "local", "max_retries": 0, "workers": 1})
    df = run(cfg, out=tmp_path / "out", cache=tmp_path / "cache", progress=False)
    pix = df[df["encoder"] == "pixels"]
    noisy, clean = pix[pix["corruption"] == "noise:0.15"], pix[pix["corruption"] == "clean"]
    assert len(noisy) and noisy["error"].str.contains("corrupted frames unreadable").all()
    assert len(clean) and (clean["error"].fillna("") == "").all() and clean["r2"].notna().all()
    # the next run, with extraction fixed, fills the corrupted rows and leaves the clean ones identical
    monkeypatch.setattr(tasks, "run_extract", real)
    again = run(cfg, out=tmp_path / "out2", cache=tmp_path / "cache", progress=False)
    pix2 = again[again["encoder"] == "pixels"]
    assert (pix2["error"].fillna("") == "").all()
    key = ["probe", "k", "seed", "layer"]
    a = clean.sort_values(key)["r2"].to_numpy()
    b = pix2[pix2["corruption"] == "clean"].sort_values(key)["r2"].to_numpy()
    np.testing.assert_array_equal(a, b)


def _run_cli(cfg_path, out, cache, **kw):
    env = {**os.environ, "WMPROBE_CACHE": str(cache)}
    return subprocess.Popen([sys.executable, "-m", "wmprobe.cli", "--quiet", "run", str(cfg_path), "--out",
                             str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def test_kill_9_during_extraction_then_resume(reference, store_dir, tmp_path):
    d, df = reference
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(study(store_dir, shard_episodes=1)))
    cache = tmp_path / "cache"
    p = _run_cli(f, tmp_path / "out", cache)
    deadline = time.time() + 120
    latents = cache / "latents"
    while time.time() < deadline and p.poll() is None:
        if latents.is_dir() and len([x for x in latents.iterdir() if not x.name.startswith(".")]) >= 3:
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    done_before = {x.name for x in latents.iterdir() if not x.name.startswith(".")}
    assert done_before, "the run was killed before writing any shard"
    assert not (tmp_path / "out" / "records.parquet").exists()
    mtimes = {n: (latents / n / "entry.json").stat().st_mtime_ns for n in done_before}
    p = _run_cli(f, tmp_path / "out", cache)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err.decode()[-2000:]
    for n, m in mtimes.items():                                 # finished shards were not recomputed
        assert (latents / n / "entry.json").stat().st_mtime_ns == m
    same_records(df, records(tmp_path / "out"))


def test_two_processes_share_one_cache(reference, store_dir, tmp_path):
    d, df = reference
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(study(store_dir)))
    ps = [_run_cli(f, tmp_path / f"out{i}", tmp_path / "cache") for i in range(2)]
    for p in ps:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]
    for i in range(2):
        same_records(df, records(tmp_path / f"out{i}"))
    entries = [json.loads((p / "entry.json").read_text()) for p in (tmp_path / "cache" / "latents").iterdir()
               if not p.name.startswith(".")]
    assert len(entries) == 8                                    # each shard written once


# ---- executors ------------------------------------------------------------------------------------------
def test_local_worker_pool_gives_identical_records(reference, store_dir, tmp_path):
    d, df = reference
    got = run(study(store_dir, executor={"kind": "local", "workers": 2}), out=tmp_path / "out",
              cache=tmp_path / "cache", progress=False)
    same_records(df, got)


def test_submitit_local_executor_gives_identical_records(reference, store_dir, tmp_path):
    pytest.importorskip("submitit")
    d, df = reference
    cfg = study(store_dir, executor={"kind": "submitit", "submitit": {"cluster": "local", "tasks_per_job": 8,
                                                                      "timeout_min": 10}})
    got = run(cfg, out=tmp_path / "out", cache=tmp_path / "cache", progress=False)
    same_records(df, got)


def test_ray_local_executor_gives_identical_records(reference, store_dir, tmp_path):
    ray = pytest.importorskip("ray")
    d, df = reference
    cfg = study(store_dir, executor={"kind": "ray", "ray": {"num_cpus": 2}})
    try:
        got = run(cfg, out=tmp_path / "out", cache=tmp_path / "cache", progress=False)
        assert not ray.is_initialized(), "the executor left the Ray cluster it started running"
    finally:
        if ray.is_initialized():
            ray.shutdown()
    same_records(df, got)


def test_cache_ls_and_gc(reference, tmp_path):
    d, _ = reference
    r = subprocess.run([sys.executable, "-m", "wmprobe.cli", "cache", "ls", "--cache", str(d / "cache")],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "latents" in r.stdout and "pixels" in r.stdout, r.stdout + r.stderr
    import shutil
    shutil.copytree(d / "cache", tmp_path / "c")
    from wmprobe.study.cache import cache_gc
    assert cache_gc(tmp_path / "c", keep_days=30).startswith("0 entries")
    old = time.time() - 40 * 86400
    for p in (tmp_path / "c" / "latents").rglob("*"):
        os.utime(p, (old, old))
    for p in (tmp_path / "c" / "latents").iterdir():
        os.utime(p, (old, old))
    assert cache_gc(tmp_path / "c", keep_days=30).startswith("8 entries")
    assert not any((tmp_path / "c" / "latents").iterdir())


# ---- task-OOD across suites, the pretraining pool and the leakage check ---------------------------------------------
def _suites(tmp_path):
    """Two stores sharing task names task0..task3; the second also has task4 and task5, and other task ids."""
    from helpers import moving_square_store
    from wmprobe.data.store import EpisodeStore, from_episodes
    a = moving_square_store(episodes=16, steps=8, size=16, tasks=4, seed=1)
    b0 = moving_square_store(episodes=18, steps=8, size=16, tasks=6, seed=2)
    # b names its tasks in another order: ids differ, names are what a study holds out
    names = ["task5", "task3", "task0", "task4", "task2", "task1"]
    b = from_episodes([(np.asarray(b0.frames[b0.episode_slice(e)]), np.asarray(b0.actions[b0.episode_slice(e)]))
                       for e in range(b0.n_episodes)], [int(t) for t in b0.tasks], fps=10,
                      action_names=b0.meta["action_names"], action_groups=b0.meta["action_groups"],
                      task_names=names, source={"kind": "synthetic"}, name="b")
    a.save(tmp_path / "a")
    b.save(tmp_path / "b")
    return EpisodeStore.load(tmp_path / "a"), EpisodeStore.load(tmp_path / "b")


def test_a_study_holds_out_the_same_task_names_in_every_dataset_and_the_pool_has_none(tmp_path):
    from wmprobe.data.splits import make_split, study_splits, task_names_of
    from wmprobe.study.leakage import check_leakage
    from wmprobe.study.runner import pretraining_pool
    a, b = _suites(tmp_path)
    for seed in range(6):
        sp = study_splits({"a": a, "b": b}, kind="task", test_frac=0.25, seed=seed)
        held = set(sp["a"].test_task_names)
        assert held == set(sp["b"].test_task_names) and held <= {"task0", "task1", "task2", "task3"}
        for s, x in ((a, sp["a"]), (b, sp["b"])):
            names = task_names_of(s)
            assert {names[int(s.tasks[e])] for e in x.test} == held
            assert not {names[int(s.tasks[e])] for e in x.train} & held
        pool = pretraining_pool({"a": (a, sp["a"]), "b": (b, sp["b"])}, Cache(tmp_path / f"cache{seed}"))
        assert pool.n_episodes == len(sp["a"].train) + len(sp["b"].train)
        pool_names = {task_names_of(pool)[int(t)].split("/", 1)[1] for t in pool.tasks}
        assert pool_names and not pool_names & held
        assert check_leakage({"a": (a, sp["a"]), "b": (b, sp["b"])}, pool)["ok"]
    assert len({tuple(study_splits({"a": a, "b": b}, seed=s)["a"].test_task_names) for s in range(6)}) > 1
    assert study_splits({"a": a}, seed=3)["a"] == make_split(a, seed=3)          # one dataset: as before


def test_named_test_tasks_are_held_out_in_every_dataset_whatever_the_seed(tmp_path):
    from wmprobe.data.splits import study_splits, task_names_of
    from wmprobe.errors import ConfigError
    a, b = _suites(tmp_path)
    got = {tuple(sorted(sp.test_task_names)) for seed in range(4)
           for sp in study_splits({"a": a, "b": b}, seed=seed, test_tasks=["task1", "task3"]).values()}
    assert got == {("task1", "task3")}
    sp = study_splits({"a": a, "b": b}, seed=0, test_tasks=["task1", "task3"])
    for s, x in ((a, sp["a"]), (b, sp["b"])):
        names = task_names_of(s)
        assert {names[int(s.tasks[e])] for e in x.test} == {"task1", "task3"}
        assert not {names[int(s.tasks[e])] for e in x.train} & {"task1", "task3"}
    with pytest.raises(ConfigError, match=r"test_tasks \['nope'\] are not tasks of any dataset \(known: task0"):
        study_splits({"a": a, "b": b}, test_tasks=["task1", "nope"])
    with pytest.raises(ConfigError, match="only a task split"):
        study_splits({"a": a, "b": b}, kind="episode", test_tasks=["task1"])


def test_test_tasks_is_checked_where_it_is_declared(tmp_path):
    from wmprobe.study.config import load_config, validate
    cfg = load_config({"preset": "tiny", "test_tasks": ["reach-red", "lift-blue"]})
    assert cfg.test_tasks == ("reach-red", "lift-blue") and load_config({"preset": "tiny"}).test_tasks is None
    (tmp_path / "s.yaml").write_text("preset: tiny\ntest_tasks: reach-red\n")
    problems = validate(tmp_path / "s.yaml")
    assert any(p.where == "test_tasks" and p.line == 2 for p in problems), problems


def test_the_leakage_check_fails_on_a_leaking_pool_and_on_a_leaking_checkpoint(tmp_path):
    from wmprobe import zoo
    from wmprobe.data.splits import make_split, study_splits
    from wmprobe.errors import ConfigError
    from wmprobe.study.leakage import assert_no_leak, check_leakage
    from wmprobe.study.runner import pretraining_pool
    a, b = _suites(tmp_path)
    # the old way: each dataset holds out its own tasks and the pool takes every train episode -> a test task
    # of one dataset reaches the pool through the other
    own = {"a": (a, make_split(a, seed=0)), "b": (b, make_split(b, seed=0))}
    assert set(own["a"][1].test_task_names) != set(own["b"][1].test_task_names)
    leaky = _old_pool(own, tmp_path / "leaky")
    res = check_leakage(own, leaky)
    assert not res["ok"] and any("held-out task" in p for p in res["problems"])
    assert any("test episode" in p for p in res["problems"])
    with pytest.raises(ConfigError, match="leakage check failed"):
        assert_no_leak(res)
    # a zoo checkpoint trained on the leaky pool is caught from its recipe alone, even beside a clean pool
    ck = zoo.train("vae", leaky, train_episodes=range(leaky.n_episodes), preset="tiny", progress=False,
                   overrides={"steps": 2}, cache_dir=tmp_path / "zoo")
    sp = study_splits({"a": a, "b": b}, seed=0)
    good = {"a": (a, sp["a"]), "b": (b, sp["b"])}
    pool = pretraining_pool(good, Cache(tmp_path / "cache"))
    assert check_leakage(good, pool)["ok"]
    res = check_leakage(own, pool, [ck])
    assert not res["ok"] and any(ck.name in p for p in res["problems"])


def _old_pool(datasets, path):
    from wmprobe.data.store import from_episodes
    eps, tasks, names = [], [], []
    for name, (s, sp) in datasets.items():
        off = len(names)
        names += [f"{name}/{t}" for t in s.meta["task_names"]]
        for e in sp.train:
            eps.append((np.asarray(s.frames[s.episode_slice(e)]), np.asarray(s.actions[s.episode_slice(e)])))
            tasks.append(off + int(s.tasks[e]))
    # and one test episode copied in as if it were training data
    s, sp = datasets["a"]
    e = sp.test[0]
    eps.append((np.asarray(s.frames[s.episode_slice(e)]), np.asarray(s.actions[s.episode_slice(e)])))
    tasks.append(len(names))
    names.append("copied")
    pool = from_episodes(eps, tasks, fps=10, action_names=s.meta["action_names"],
                         action_groups=s.meta["action_groups"], task_names=names, source={"kind": "test"}, name="p")
    pool.save(path)
    from wmprobe.data.store import EpisodeStore
    return EpisodeStore.load(path)


def test_every_study_records_its_leakage_check_in_config_yaml(reference):
    d, _ = reference
    leak = yaml.safe_load((d / "out" / "config.yaml").read_text())["config"]["leakage"]
    assert leak["ok"] is True and leak["checked"]["test_episodes"] > 0 and leak["problems"] == []


# ---- headline groups, the audit, the state ceiling ------------------------------------------------------
@pytest.fixture(scope="module")
def state_store_dir(tmp_path_factory):
    """The moving square with per-frame proprioceptive states (x, y, z, gripper in force)."""
    from helpers import moving_square_store
    path = tmp_path_factory.mktemp("states") / "square-states"
    moving_square_store(episodes=8, steps=10, size=16, tasks=4, states=True).save(path)
    return path


def _state_study(store_dir, **over):
    return study(store_dir, encoders=[{"name": "pixels:4", "label": "pixels"}], corruptions=["clean"],
                 **{"probes": ["ridge", "mlp", "ridge-shuffled"], **over})


def test_headline_groups_are_validated_against_the_datasets_groups_with_their_line(tmp_path, store_dir):
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(study(store_dir, datasets=[
        {"name": "square", "path": str(store_dir)},
        {"name": "moved", "path": str(store_dir), "action_groups": {"translation": [0, 1, 2]}}],
        headline_groups=["translation", "gripper", "wrist"]), sort_keys=False))
    problems = {p.where: p for p in validate(f)}
    assert set(problems) == {"headline_groups[1]", "headline_groups[2]"}, problems
    assert "'gripper' is not an action group of dataset 'moved' (it has translation)" in problems[
        "headline_groups[1]"].message
    assert "'wrist' is not an action group of dataset 'square'" in problems["headline_groups[2]"].message
    assert "headline_groups" in f.read_text().splitlines()[problems["headline_groups[2]"].line - 1] or \
        "wrist" in f.read_text().splitlines()[problems["headline_groups[2]"].line - 1]
    f.write_text(yaml.safe_dump(study(store_dir, headline_groups={"squares": ["translation"]}), sort_keys=False))
    (p,) = validate(f)
    assert p.where == "headline_groups.squares" and "not one of the study's datasets" in p.message and p.line
    cfg = load_config(study(store_dir, headline_groups={"square": ["gripper", "translation"]}))
    assert cfg.headline_groups == {"square": ("gripper", "translation")}
    assert cfg.to_dict()["headline_groups"] == {"square": ["gripper", "translation"]}          # saved with records


def test_the_config_override_and_the_audit_choice_reach_config_yaml_and_every_row(state_store_dir, tmp_path):
    from wmprobe.data.audit import audit
    from wmprobe.data.splits import make_split
    from wmprobe.data.store import EpisodeStore
    # no override: the audit of the dataset under the study's split at the headline k chooses
    out = tmp_path / "audit"
    df = run(_state_study(state_store_dir), out=out, cache=tmp_path / "cache", progress=False, report=False)
    cfg = yaml.safe_load((out / "config.yaml").read_text())["config"]
    store = EpisodeStore.load(state_store_dir)
    expect = audit(store, make_split(store, kind="task", test_frac=0.25, seed=0), k=1)
    assert cfg["audit"]["square"]["headline_groups"] == expect["headline_groups"]
    head = cfg["headline"]["square"]
    assert head["source"] == "audit" and head["k"] == 1
    assert head["headline_groups"] == [g for g in ("translation", "rotation", "gripper")
                                       if g in expect["headline_groups"]]
    assert set(head["left_out"]) == {"translation", "rotation", "gripper"} - set(head["headline_groups"])
    assert all(head["left_out"].values())                                        # each with its reason
    assert set(df["headline_groups"]) == {"+".join(head["headline_groups"])}
    # the override wins, is recorded with why the others are out, and recomputes every probe cell
    out2 = tmp_path / "override"
    df2 = run(_state_study(state_store_dir, headline_groups=["translation", "gripper"]), out=out2,
              cache=tmp_path / "cache", progress=False, report=False)
    cfg2 = yaml.safe_load((out2 / "config.yaml").read_text())["config"]
    assert cfg2["headline"]["square"]["headline_groups"] == ["translation", "gripper"]
    assert cfg2["headline"]["square"]["source"] == "config"
    assert set(cfg2["headline"]["square"]["left_out"]) == {"rotation"}
    assert "headline_groups" in cfg2["headline"]["square"]["left_out"]["rotation"]
    assert cfg2["audit"]["square"]["groups"] and cfg2["study"]["headline_groups"] == ["translation", "gripper"]
    assert head["headline_groups"] != ["translation", "gripper"]          # the audit leaves the binary gripper out
    assert cfg2["run"]["probe"]["computed"] == cfg2["run"]["probe"]["planned"] > 0   # a new headline: new cells
    assert set(df2["headline_groups"]) == {"translation+gripper"}
    assert np.allclose(df2["r2"], (df2["r2_translation"] + df2["r2_gripper"]) / 2)
    assert not np.allclose(df["r2"], df2["r2"])


def test_state_ceiling_rows_appear_only_for_datasets_with_states(state_store_dir, store_dir, tmp_path):
    over = {"ks": [1, 2], "seeds": [0, 1], "headline_groups": ["translation", "gripper"]}
    df = run(_state_study(state_store_dir, **over), out=tmp_path / "s", cache=tmp_path / "cache", progress=False,
             report=False)
    st = df[df["encoder"] == "state"]
    assert set(st["family"]) == {"state"} and set(st["layer"]) == {"state"} and set(st["corruption"]) == {"clean"}
    # the study's mlp and ridge (no controls), its ks and seeds (ridge: one row per cell)
    assert sorted(map(tuple, st[["probe", "k", "seed"]].values.tolist())) == sorted(
        [("mlp", k, s) for k in (1, 2) for s in (0, 1)] + [("ridge", k, 0) for k in (1, 2)])
    assert (st["error"].fillna("") == "").all() and (st["headline_groups"] == "translation+gripper").all()
    (ridge,) = st[(st["probe"] == "ridge") & (st["k"] == 1)].to_dict("records")
    assert ridge["r2_translation"] > 0.95 and ridge["r2_gripper"] > 0.95        # the state tells both
    assert ridge["r2_rotation"] < 0.2 and ridge["bacc_gripper"] > 0.95          # and nothing of the rotation
    cfg = yaml.safe_load((tmp_path / "s" / "config.yaml").read_text())["config"]
    assert cfg["run"]["state"] == {"planned": 4, "computed": 4}
    # cached like any cell: a rerun computes nothing
    run(_state_study(state_store_dir, **over), out=tmp_path / "s", cache=tmp_path / "cache", progress=False,
        report=False)
    cfg = yaml.safe_load((tmp_path / "s" / "config.yaml").read_text())["config"]
    assert cfg["run"]["state"] == {"planned": 4, "computed": 0}
    # a store without states: no state rows
    df = run(_state_study(store_dir, **over), out=tmp_path / "n", cache=tmp_path / "cache", progress=False,
             report=False)
    assert "state" not in set(df["encoder"]) and len(df)



def test_id_groups_come_from_the_config_else_the_audit(tmp_path):
    """+ID trains on what the probe's headline scores: the config's zoo.id_groups when given, else the groups the
    action-space audit finds identifiable in every dataset (its fallback to every group is no evidence)."""
    from wmprobe.data.audit import audit
    from wmprobe.data.splits import study_splits
    from wmprobe.study.runner import zoo_id_groups
    a, b = _suites(tmp_path)
    sp = study_splits({"a": a, "b": b}, seed=0)
    datasets = {"a": (a, sp["a"]), "b": (b, sp["b"])}
    doc = {"datasets": [{"name": "a", "path": str(tmp_path / "a")}], "encoders": ["pixels:4"]}
    cfg = load_config({**doc, "zoo": {"families": ["vae"], "id_groups": ["translation", "gripper"]}})
    assert zoo_id_groups(cfg, datasets) == (["translation", "gripper"], "config zoo.id_groups")
    groups, source = zoo_id_groups(load_config({**doc, "zoo": {"families": ["vae"]}}), datasets)
    found = [audit(s, x, k=4) for s, x in datasets.values()]
    if any(f["fallback"] for f in found):
        assert groups is None and source.startswith("default")
    else:
        assert source == "audit"
        assert groups == [g for g in found[0]["headline_groups"] if g in found[1]["headline_groups"]]
    # in a study: the headline every dataset shares (the probe's choice), an "every group" headline is no evidence
    heads = {"a": {"headline_groups": ["translation", "gripper"], "source": "config"},
             "b": {"headline_groups": ["translation"], "source": "audit"}}
    zoo_cfg = load_config({**doc, "zoo": {"families": ["vae"]}})
    assert zoo_id_groups(zoo_cfg, datasets, heads, {"b": {}})[0] == ["translation"]
    heads["b"] = {"headline_groups": ["translation", "rotation", "gripper"], "source": "all"}
    assert zoo_id_groups(load_config({**doc, "zoo": {"families": ["vae"]}}), datasets, heads, {})[0] is None


def test_the_zoo_stage_submits_the_longest_models_first_and_keeps_the_models_in_config_order(tmp_path):
    """Longest expected task first (``zoo_train.expected_cost``): at the demo budget the ceiling (12 x the
    families' steps) starts first and overlaps the families on a worker pool, then +ID before frozen models;
    at ceiling_factor 1 the ceiling is the cheapest. The models come back in the config's order whatever
    order the executor ran them in."""
    from wmprobe.data.splits import study_splits
    from wmprobe.study.attempt import Outcome
    from wmprobe.study.config import load_config
    from wmprobe.study.zoo_train import train_zoo
    a, b = _suites(tmp_path)
    sp = study_splits({"a": a, "b": b}, seed=0)

    class Recorder:
        submitted: list = []

        def map(self, tasks, cache_root, desc="tasks"):
            self.submitted = list(tasks)
            return [Outcome(True, value=f"/ckpt/{t.family}-{t.id_weight:g}") for t in tasks]

    for zoo_preset, first, rest in [("demo", ["ceiling"], []), ("tiny", [], ["ceiling"])]:
        cfg = load_config({"preset": "tiny", "zoo": {"families": ["vae", "vjepa"], "id_weights": [0.0, 1.0],
                                                     "preset": zoo_preset}})
        ex, stats = Recorder(), {"failures": []}
        models = train_zoo(cfg, {"a": (a, sp["a"]), "b": (b, sp["b"])}, Cache(tmp_path / "cache"), ex, stats)
        assert [(t.family, t.id_weight) for t in ex.submitted] == [(f, 1.0) for f in first] + [
            ("vae", 1.0), ("vjepa", 1.0), ("vae", 0.0), ("vjepa", 0.0)] + [(f, 1.0) for f in rest]
        assert [(m.label, m.id_weight, m.checkpoint) for m in models] == [
            ("zoo:vae", 0.0, "/ckpt/vae-0"), ("zoo:vae", 1.0, "/ckpt/vae-1"), ("zoo:vjepa", 0.0, "/ckpt/vjepa-0"),
            ("zoo:vjepa", 1.0, "/ckpt/vjepa-1"), ("ceiling", 0.0, "/ckpt/ceiling-1")]


def test_zoo_replicates_train_each_model_with_its_own_seed_and_label(tmp_path):
    from wmprobe.data.splits import study_splits
    from wmprobe.errors import ConfigError
    from wmprobe.study.attempt import Outcome
    from wmprobe.study.config import load_config, validate
    from wmprobe.study.dry_run import estimate
    from wmprobe.study.zoo_train import train_zoo
    a, b = _suites(tmp_path)
    sp = study_splits({"a": a, "b": b}, seed=0)
    cfg = load_config({"preset": "tiny", "seed": 7, "zoo": {"families": ["vae"], "id_weights": [0.0, 1.0],
                                                            "replicates": 3}})

    class Recorder:
        def map(self, tasks, cache_root, desc="tasks"):
            self.submitted = list(tasks)
            return [Outcome(True, value=f"/ckpt/{t.key}") for t in tasks]

    ex = Recorder()
    models = train_zoo(cfg, {"a": (a, sp["a"]), "b": (b, sp["b"])}, Cache(tmp_path / "c"), ex, {"failures": []})
    assert [(m.label, m.id_weight) for m in models] == [
        ("zoo:vae", 0.0), ("zoo:vae", 1.0), ("zoo:vae#1", 0.0), ("zoo:vae#1", 1.0), ("zoo:vae#2", 0.0),
        ("zoo:vae#2", 1.0), ("ceiling", 0.0)]
    seeds = {t.key: t.seed for t in ex.submitted}
    assert seeds["ceiling"] == 7 and sorted({s for n, s in seeds.items() if n != "ceiling"}) == [7, 1007, 2007]
    assert len(set(m.checkpoint for m in models)) == 7                   # every replicate is its own model
    assert estimate(cfg)["zoo_models"] == 7
    with pytest.raises(ConfigError, match="replicates"):
        load_config({"preset": "tiny", "zoo": {"families": ["vae"], "replicates": 0}})
    # only the frozen models replicated (`replicate_weights`): the +ID model and the ceiling once each
    cfg = load_config({"preset": "tiny", "seed": 7, "zoo": {"families": ["vae", "vjepa"], "id_weights": [0.0, 1.0],
                                                            "replicates": 2, "replicate_weights": [0]}})
    models = train_zoo(cfg, {"a": (a, sp["a"]), "b": (b, sp["b"])}, Cache(tmp_path / "c"), ex, {"failures": []})
    assert [(m.label, m.id_weight) for m in models] == [
        ("zoo:vae", 0.0), ("zoo:vae", 1.0), ("zoo:vjepa", 0.0), ("zoo:vjepa", 1.0), ("zoo:vae#1", 0.0),
        ("zoo:vjepa#1", 0.0), ("ceiling", 0.0)]
    assert sorted(t.seed for t in ex.submitted if t.id_weight == 0) == [7, 7, 1007, 1007]
    assert estimate(cfg)["zoo_models"] == 7
    with pytest.raises(ConfigError, match=r"zoo.replicate_weights\[1\].*0.5 is not one of zoo.id_weights"):
        load_config({"preset": "tiny", "zoo": {"families": ["vae"], "replicates": 2, "replicate_weights": [0, 0.5]}})
    (tmp_path / "s.yaml").write_text("preset: tiny\nzoo:\n  families: [vae]\n  replicates: 1.5\n")
    assert any(p.where == "zoo.replicates" and p.line == 4 for p in validate(tmp_path / "s.yaml"))
