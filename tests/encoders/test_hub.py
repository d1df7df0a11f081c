"""Hub ids, offline first: bare model ids get their family from config.json, dataset repo ids resolve through
the Hugging Face cache. Everything is built in a local hub cache layout (``HF_HUB_CACHE`` -> tmp) with tiny
random-init models saved by transformers / diffusers and a tiny LeRobot dataset; HF_HUB_OFFLINE=1, no network."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("diffusers")
pytest.importorskip("huggingface_hub")

from helpers import moving_square_store  # noqa: E402
from fixtures.formats import episodes_data, write_lerobot_v3  # noqa: E402
from fixtures.checkpoints import ADAPTERS, OPTIONS, save  # noqa: E402
from wmprobe.data import EpisodeStore  # noqa: E402
from wmprobe.encoders.registry import load_encoder  # noqa: E402
from wmprobe.errors import EncoderError, StoreError  # noqa: E402


def publish(cache: Path, kind: str, repo: str, files: Path, rev: str = "main", commit: str | None = None) -> Path:
    """Put ``files`` into ``cache`` the way huggingface_hub lays out a downloaded snapshot of ``repo``."""
    commit = commit or (format(abs(hash((repo, rev))), "x") * 5)[:40]
    d = cache / f"{kind}s--{repo.replace('/', '--')}"
    shutil.copytree(files, d / "snapshots" / commit)
    (d / "refs").mkdir(parents=True, exist_ok=True)
    (d / "refs" / rev).write_text(commit)
    return d / "snapshots" / commit


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A hub cache with one tiny checkpoint per supported family (``tiny/<family>``), a diffusers pipeline,
    a checkpoint of an unsupported model type and a LeRobot dataset at two revisions."""
    root = tmp_path_factory.mktemp("hub")
    cache, work = root / "cache", root / "work"
    for name in ADAPTERS:
        publish(cache, "model", f"tiny/{name}", save(name, work / name))
    pipe = work / "pipe"
    save("sd-vae", pipe / "vae")
    save("diffusion-unet", pipe / "unet")
    (pipe / "model_index.json").write_text(json.dumps({"_class_name": "DDPMPipeline"}))
    publish(cache, "model", "tiny/pipeline", pipe)
    odd = save("dinov2", work / "odd")
    cfg = json.loads((odd / "config.json").read_text())
    (odd / "config.json").write_text(json.dumps({**cfg, "model_type": "bert"}))
    publish(cache, "model", "tiny/bert", odd)
    publish(cache, "dataset", "lerobot/tiny", write_lerobot_v3(work / "ds-main", episodes_data((3, 4, 5), size=16),
                                                               image=True, size=16))
    publish(cache, "dataset", "lerobot/tiny", write_lerobot_v3(work / "ds-v1", episodes_data((3, 4), size=16),
                                                               image=True, size=16, tasks=(0, 1), files=((0, 1),)),
            rev="v1")
    return cache


@pytest.fixture
def offline_cache(hub, monkeypatch):
    import huggingface_hub.constants as hc
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True, raising=False)
    return hub


@pytest.mark.parametrize("name", ADAPTERS)
def test_bare_hub_id_gets_its_family_from_config(offline_cache, name):
    from wmprobe.encoders.detect import detect_family
    assert detect_family(f"tiny/{name}") == name
    enc = load_encoder(f"tiny/{name}", device="cpu", **OPTIONS.get(name, {}))
    same = load_encoder(f"{name}:tiny/{name}", device="cpu", **OPTIONS.get(name, {}))
    assert type(enc) is type(same) and enc.spec.name == same.spec.name == f"{name}:tiny/{name}"
    assert enc.spec.family == same.spec.family and enc.spec.weights_hash == same.spec.weights_hash


def test_family_prefix_overrides_and_undetectable_checkpoints_are_refused(offline_cache):
    with pytest.raises(EncoderError, match="is a 'dinov2' model, expected siglip"):
        load_encoder("siglip:tiny/dinov2", device="cpu")      # the prefix wins over detection
    with pytest.raises(EncoderError, match="diffusers pipeline.*sd-vae:tiny/pipeline.*diffusion-unet:tiny/pipeline"):
        load_encoder("tiny/pipeline")
    assert load_encoder("sd-vae:tiny/pipeline", device="cpu").spec.name == "sd-vae:tiny/pipeline"
    with pytest.raises(EncoderError, match="model_type 'bert' is not a supported family.*FAMILY:tiny/bert"):
        load_encoder("tiny/bert")
    with pytest.raises(EncoderError, match=r"not on disk.*`hf download tiny/missing`") as exc:
        load_encoder("tiny/missing")
    assert "huggingface-cli" not in str(exc.value)


def test_bare_directory_is_detected_too(tmp_path):
    d = save("dinov2", tmp_path / "my-dino")
    assert load_encoder(str(d), device="cpu").spec.name == f"dinov2:{d}"


def test_study_validates_bare_hub_ids_without_the_network(offline_cache, tmp_path):
    from wmprobe.study.config import validate
    moving_square_store(episodes=4, steps=4, size=16).save(tmp_path / "s")
    doc = {"datasets": [{"name": "s", "path": str(tmp_path / "s")}],
           "encoders": ["tiny/dinov2", "tiny/bert", "not-yet/downloaded"]}
    problems = validate(doc)
    assert [p.where for p in problems] == ["encoders[1].name"] and "bert" in problems[0].message


def test_lerobot_repo_id_resolves_through_the_cache(offline_cache, tmp_path):
    from wmprobe.data.formats import dataset_info, import_dataset, validate_dataset
    store = EpisodeStore.load(import_dataset("lerobot/tiny", tmp_path / "main", progress=False))
    assert store.episode_lengths.tolist() == [3, 4, 5]
    assert store.meta["source"]["hub"]["repo_id"] == "lerobot/tiny"
    v1 = EpisodeStore.load(import_dataset("lerobot/tiny", tmp_path / "v1", revision="v1", progress=False))
    assert v1.episode_lengths.tolist() == [3, 4] and v1.meta["source"]["hub"]["revision"] == "v1"
    assert dataset_info("lerobot/tiny", revision="v1")["episodes"] == 2
    assert validate_dataset("lerobot/tiny") == []
    with pytest.raises(StoreError, match=r"'lerobot/nope' is not on disk.*`hf download lerobot/nope --repo-type "
                                         r"dataset`"):
        import_dataset("lerobot/nope", tmp_path / "nope", progress=False)
    with pytest.raises(StoreError, match="--revision applies to a hub dataset id"):
        import_dataset(tmp_path / "main", tmp_path / "x", revision="v1", progress=False)


@pytest.mark.slow
def test_cli_takes_hub_ids_offline(hub, tmp_path):
    env = {**os.environ, "HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1"}
    exe = shutil.which("wmprobe")
    cmd = [exe] if exe else [sys.executable, "-m", "wmprobe.cli"]

    def cli(*args):
        return subprocess.run([*cmd, "--quiet", *map(str, args)], capture_output=True, text=True, env=env,
                              timeout=300)
    r = cli("data", "import", "lerobot/tiny", tmp_path / "s", "--revision", "v1")
    assert r.returncode == 0, r.stderr
    assert EpisodeStore.load(tmp_path / "s").n_episodes == 2
    r = cli("extract", "tiny/dinov2", tmp_path / "s", "--out", tmp_path / "f")
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "f" / "step_frame.npy").shape == (7,)
    r = cli("data", "import", "lerobot/absent", tmp_path / "t")
    assert r.returncode == 2 and "hf download lerobot/absent --repo-type dataset" in r.stderr, r.stderr
