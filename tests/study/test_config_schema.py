"""The declarative study config (issue 20): each key's default and rule declared once, one generic checker,
choices read from the registries (plugins count), `zoo.families: all` in a study file."""
from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass

import yaml

from wmprobe.registry import Entry
from wmprobe.study.checker import Checker, build, check_section, check_value
from wmprobe.study.config import check, validate
from wmprobe.study.fields import at_least, choice, default_of, integer, listing, rule_of, setting
from wmprobe.study.schema import (PROBE_OPTIONS, ControlCfg, DatasetCfg, EncoderCfg, ExecutorCfg, StudyConfig, ZooCfg,
                                  plain)

SECTIONS = (StudyConfig, DatasetCfg, EncoderCfg, ZooCfg, ExecutorCfg, ControlCfg)


def test_every_declared_default_passes_its_own_rule():
    for section in SECTIONS:
        c = Checker(None, {})
        for f in dataclasses.fields(section):
            rule, default = rule_of(f), default_of(f)
            if rule is None or default in (None, dataclasses.MISSING) or dataclasses.is_dataclass(default):
                continue   # None: "not given" (`label: null` spelt out is a problem); sections: below
            check_value(c, rule, plain(default), f"{section.__name__}.{f.name}")
        assert c.problems == [], c.problems


def test_an_absent_key_gets_the_declared_default():
    cfg, problems = check({"datasets": ["dynamic"], "encoders": ["pixels:8"]})
    assert problems == [] and cfg is not None
    assert cfg.ks == StudyConfig.ks and cfg.seeds == StudyConfig.seeds and cfg.probes == StudyConfig.probes
    assert cfg.zoo == ZooCfg() and cfg.executor == ExecutorCfg()
    assert cfg.datasets[0].episodes == DatasetCfg.episodes and cfg.datasets[0].size == DatasetCfg.size
    # and a StudyConfig round-trips through its dict
    again, problems = check(cfg.to_dict())
    assert problems == [] and again == cfg


def test_the_probe_options_are_the_mlp_probes_arguments():
    from wmprobe.probes.mlp import MLPProbe
    params = set(inspect.signature(MLPProbe).parameters) - {"unknown", "seeds"}   # seeds: the study's
    assert set(PROBE_OPTIONS) == params


@dataclass(frozen=True)
class _Toy:
    size: int = setting(4, integer(at_least(1)))
    kinds: tuple[str, ...] = setting(("a",), listing("a list", unique=True, items=choice(lambda: ["a", "b"],
                                                                                          "unknown kind '{value}'")))


def test_a_new_section_is_checked_and_built_from_its_declarations_alone(tmp_path):
    from wmprobe.study.yamlfile import read_yaml
    f = tmp_path / "toy.yaml"
    f.write_text("size: 0\nkinds: [a, c, a]\nsizes: 3\n")
    raw, lines = read_yaml(f)
    c = Checker(str(f), lines)
    check_section(c, raw, _Toy, "")
    assert [str(p) for p in c.problems] == [
        f"{f}:3: sizes: unknown key (did you mean 'size'?)",
        f"{f}:1: size: must be >= 1",
        f"{f}:2: kinds[2]: 'a' is listed twice (also kinds[0]): it would repeat identical rows",
        f"{f}:2: kinds[1]: unknown kind 'c'"]
    assert build(_Toy, {"kinds": ["b"]}) == _Toy(4, ("b",))


def test_executor_kinds_come_from_the_registry(monkeypatch):
    from wmprobe.cli import build_parser
    from wmprobe.study.executor_registry import EXECUTORS
    doc = {"datasets": ["dynamic"], "encoders": ["pixels:8"], "executor": "slurmish"}
    assert [str(p) for p in validate(doc)] == [
        f"executor.kind: unknown executor 'slurmish' (known: {', '.join(EXECUTORS.names())})"]
    monkeypatch.setitem(EXECUTORS._runtime, "slurmish", Entry("slurmish", "wmprobe.study.executors:_local",
                                                               "runtime"))
    assert validate(doc) == []
    run = build_parser()._subparsers._group_actions[0].choices["run"]
    executor = next(a for a in run._actions if a.dest == "executor")
    assert list(executor.choices)[:3] == ["local", "submitit", "ray"]


def test_zoo_families_come_from_the_registry_plugins_included(monkeypatch):
    from wmprobe.zoo import families
    doc = {"datasets": ["dynamic"], "zoo": {"families": ["vae", "myfam"]}}
    assert "zoo.families[1]: unknown zoo family 'myfam'" in "\n".join(map(str, validate(doc)))
    plugin = families.ZooFamily("myfam", "a plugin family", "vae:VAE")
    monkeypatch.setattr(families.REGISTRY, "plugins", lambda: {"myfam": Entry("myfam", plugin, "plugin")})
    assert validate(doc) == []
    assert families.pretraining_families()[-1] == "myfam" and "ceiling" not in families.pretraining_families()
    from wmprobe.cli.misc import _ls_data
    assert _ls_data("families")["families"]["myfam"] == "a plugin family"   # `wmprobe ls families` lists it


def test_families_all_in_a_study_file_is_every_pretraining_family(tmp_path):
    from wmprobe.zoo.families import pretraining_families
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump({"datasets": ["dynamic"], "zoo": {"families": "all"}}))
    cfg, problems = check(str(f))
    assert problems == [] and cfg is not None and list(cfg.zoo.families) == pretraining_families()
    f.write_text(yaml.safe_dump({"datasets": ["dynamic"], "zoo": {"families": "vae"}}))
    assert [str(p) for p in validate(str(f))] == [
        f"{f}:4: zoo.families: expected a list of family names or all, got str 'vae'"]


def test_the_control_section_is_declared_and_checked_with_file_lines(tmp_path):
    """`control:` is a declared section like the others: its defaults are ControlCfg's (what a study resolves
    and keys its tasks by), each problem is located at its line, `datasets` must name the study's."""
    from wmprobe.study.control import FIELDS
    assert FIELDS == {f.name: default_of(f) for f in dataclasses.fields(ControlCfg)}
    assert list(FIELDS) == ["rollouts", "horizon", "tasks", "policy_steps", "seeds", "datasets", "demos", "chunk",
                            "state", "head", "augment", "replan"]
    f = tmp_path / "s.yaml"
    f.write_text("datasets: [{sim: static, name: d, episodes: 4}]\nencoders: [pixels:8]\ncontrol:\n  rollouts: 0\n"
                 "  seeds: [1, 1]\n  datasets: [e]\n  state: yes please\n  demos: 0\n")
    assert sorted(map(str, validate(str(f)))) == [
        f"{f}:4: control.rollouts: must be an integer >= 1, got 0",
        f"{f}:5: control.seeds: expected a non-empty list of distinct integers >= 0, got [1, 1]",
        f"{f}:6: control.datasets: ['e'] are not datasets of this study (['d'])",
        f"{f}:7: control.state: must be true or false, got 'yes please'"]
    cfg, problems = check({"datasets": [{"sim": "static", "name": "d", "episodes": 4}], "encoders": ["pixels:8"],
                           "control": {"rollouts": 2, "seeds": [3]}})
    assert problems == [] and cfg is not None
    assert cfg.control == {**FIELDS, "rollouts": 2, "seeds": [3]} and list(cfg.control) == list(FIELDS)
    assert [str(p) for p in validate({"datasets": ["static"], "encoders": ["pixels:8"], "control": [1]})] == [
        "control: expected a mapping: {rollouts: N, horizon: T, tasks: [...], policy_steps: S, seeds: [...], "
        "datasets: [...]}"]


def test_the_cli_objective_choices_are_the_zoo_objectives():
    from wmprobe.cli import build_parser
    from wmprobe.zoo.objectives import OBJECTIVES
    zoo = build_parser()._subparsers._group_actions[0].choices["zoo"]
    train = zoo._subparsers._group_actions[0].choices["train"]
    objective = next(a for a in train._actions if a.dest == "objective")
    assert list(objective.choices) == list(OBJECTIVES)


def test_a_list_where_a_name_belongs_is_a_problem_not_a_traceback():
    base = {"datasets": ["dynamic"], "encoders": ["pixels:8"]}
    problems = [str(p) for p in validate({**base, "fidelity_preset": ["demo"], "zoo": {"preset": {},
                                                                                        "objectives": 3}})]
    assert problems == [
        "zoo.preset: unknown zoo preset '{}' (known: tiny, demo, compare, paper)",
        "zoo.objectives: expected a list of +ID objectives, got int 3",
        "fidelity_preset: unknown decoder-probe preset '['demo']' (known: tiny, demo, paper)"]
