"""The shipped control studies (studies/control*.yaml) validate, and the compare one rolls out only train tasks."""
from pathlib import Path

import pytest

from wmprobe.data.sim.tasks import suite_tasks
from wmprobe.study.config import load_config, validate


def _studies() -> Path:
    """The repository's studies/ folder, found upwards from this file (tests may live in a subfolder)."""
    for up in Path(__file__).resolve().parents:
        if (up / "studies" / "control.yaml").is_file():
            return up / "studies"
    raise FileNotFoundError("studies/control.yaml not found above the tests")


@pytest.mark.parametrize("name", ["control.yaml", "control-compare.yaml"])
def test_shipped_control_study_validates(name):
    path = _studies() / name
    assert validate(path) == [], "\n".join(map(str, validate(path)))
    cfg = load_config(path)
    assert cfg.control is not None and cfg.control["datasets"], "a control study names its datasets"
    sims = {d.name: d.sim for d in cfg.datasets}
    assert all(sims.get(n) in ("static", "dynamic") for n in cfg.control["datasets"]), sims


def test_compare_control_study_rolls_out_train_tasks_of_the_compare_split():
    """control-compare.yaml: the compare preset's zoo, and rollouts only on tasks of the dynamic suite that the
    task-OOD split trains on (none of the held-out test tasks), with several policy seeds."""
    cfg = load_config(_studies() / "control-compare.yaml")
    assert cfg.preset == "compare" and cfg.zoo.families and cfg.zoo.preset == "compare"
    assert cfg.zoo.replicates == 1    # the 17 encoders measured, not the preset's second frozen seeds
    tasks = cfg.control["tasks"]
    assert tasks and set(tasks) <= {t.name for t in suite_tasks("dynamic")}
    assert not set(tasks) & set(cfg.test_tasks), (tasks, cfg.test_tasks)
    assert len(cfg.control["seeds"]) >= 2
