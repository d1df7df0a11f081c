"""Presets as data: the YAML files shipped in the package load through importlib.resources, every consumer
(demo, a study's `preset:`, the zoo, the decoder probe) reads them, and a broken file is one clear error."""
from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import asdict
from importlib import resources
from pathlib import Path

import pytest

from wmprobe import presets
from wmprobe.errors import ConfigError
from wmprobe.registry import Registry

NAMES = ["tiny", "demo", "compare", "paper"]


def test_the_preset_files_ship_in_the_package_and_load_through_importlib_resources():
    files = sorted(f.name for f in resources.files("wmprobe.presets").iterdir() if f.name.endswith(".yaml"))
    assert files == sorted(f"{n}.yaml" for n in NAMES)
    assert presets.names() == NAMES                                   # smallest first (`order`)
    # the wheel's package-data globs cover every file of the package that is not Python
    globs = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["wmprobe"]
    for f in files:
        assert any(fnmatch.fnmatch(f"presets/{f}", g) for g in globs), f


def test_every_consumer_reads_the_files():
    from wmprobe import demo, fidelity, zoo
    from wmprobe.study.config import check, preset_dict
    assert list(demo.PRESETS) == NAMES and list(zoo.PRESETS) == NAMES
    assert list(fidelity.PRESETS) == ["tiny", "demo", "paper"]        # compare uses the demo's decoder
    for name in NAMES:
        doc = presets.read(name)
        assert asdict(zoo.PRESETS[name]) == doc["zoo"]
        assert preset_dict(name)["preset"] == name
        cfg, problems = check({"preset": name})
        assert not problems and cfg.zoo.preset == name and cfg.fidelity_preset in fidelity.PRESETS
    # `zoo.families: all` is every pretraining family of the zoo registry
    assert preset_dict("demo")["zoo"]["families"] == list(zoo.FAMILIES)
    assert preset_dict("tiny")["zoo"]["families"] == ["vae"]
    with pytest.raises(ConfigError, match="choose one of"):
        preset_dict("huge")


def _registry_of(monkeypatch, docs):
    """``presets.PRESETS`` replaced by a fresh registry reading ``docs`` (``{name: parsed file}``) as its files."""
    monkeypatch.setattr(presets, "_read_files", lambda: iter(docs.items()))
    monkeypatch.setattr(presets, "PRESETS", Registry("preset", error=ConfigError, discover=presets._found))


def test_the_presets_are_a_registry_of_their_files_read_on_first_use(monkeypatch):
    assert isinstance(presets.PRESETS, Registry) and presets.PRESETS.builtin_names() == NAMES
    entry = presets.PRESETS.entry("demo")
    assert entry.meta["file"] == "wmprobe/presets/demo.yaml" and entry.meta["description"] == presets.read(
        "demo")["description"]
    assert presets.read("demo") == presets.PRESETS.get("demo") and presets.read("demo") is not presets.read("demo")
    reads = []
    monkeypatch.setattr(presets, "_read_files", lambda: reads.append(1) or iter(()))
    monkeypatch.setattr(presets, "PRESETS", Registry("preset", error=ConfigError, discover=presets._found))
    assert reads == [] and presets.names() == [] and presets.names() == [] and reads == [1]
    with pytest.raises(ConfigError, match=r"^unknown preset 'tiny': choose one of \[\]$"):
        presets.read("tiny")


def test_a_broken_preset_file_is_one_error_naming_the_file(monkeypatch):
    good = presets.read("tiny")
    with pytest.raises(ConfigError, match=r"presets/tiny.yaml.*unknown keys \['extra'\]"):
        presets._check("tiny", {**good, "extra": {}})
    with pytest.raises(ConfigError, match=r"presets/x.yaml.*preset: x"):
        presets._check("x", good)
    from wmprobe.zoo.presets import Preset
    _registry_of(monkeypatch, {"tiny": {**good, "zoo": {**good["zoo"], "lr2": 1}}})
    with pytest.raises(ConfigError, match=r"presets/tiny.yaml: `zoo` must give exactly"):
        presets.section("zoo", Preset)


def test_the_cli_reports_a_broken_preset_file_in_one_line(capsys, monkeypatch):
    # the parser's --preset choices read the preset files: a broken file is exit 2 and one line, no traceback
    from wmprobe.cli import main
    good = presets.read("tiny")
    del good["study"]
    _registry_of(monkeypatch, {"tiny": good})
    assert main(["ls"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "presets/tiny.yaml: missing keys ['study']" in err[0]
    assert "unknown keys" not in err[0] and "Traceback" not in err[0]


def test_main_quiet_does_not_leak_into_the_callers_environment(monkeypatch, capsys):
    # `wmprobe --quiet` sets WMPROBE_QUIET for the command's workers; an in-process main() restores it after
    import os

    from wmprobe.cli import main
    monkeypatch.delenv("WMPROBE_QUIET", raising=False)
    assert main(["--quiet", "ls", "presets"]) == 0
    assert "WMPROBE_QUIET" not in os.environ
    monkeypatch.setenv("WMPROBE_QUIET", "0")
    assert main(["ls", "presets", "--quiet"]) == 0
    assert os.environ["WMPROBE_QUIET"] == "0"


@pytest.mark.parametrize("preset", ["demo", "compare"])
def test_demo_and_compare_name_the_same_held_out_tasks_that_every_suite_they_generate_has(preset):
    """demo and compare hold out the same named tasks on every data seed (rank stability compares seeds, not
    task choices): each name must be a task of every embedded suite the preset generates."""
    from wmprobe.data.sim.tasks import suite_tasks
    from wmprobe.study.config import load_config
    cfg = load_config({"preset": preset})
    assert cfg.test_tasks and len(cfg.test_tasks) == 3
    assert cfg.test_tasks == load_config({"preset": "compare"}).test_tasks
    for d in cfg.datasets:
        names = {t.name for t in suite_tasks(d.sim)}
        assert set(cfg.test_tasks) <= names, (d.sim, sorted(set(cfg.test_tasks) - names))
