import sys
from importlib.metadata import EntryPoint

import pytest

from wmprobe.encoders.registry import list_encoders, load_encoder
from wmprobe.errors import ConfigError, EncoderError, WmprobeError
from wmprobe.registry import Registry, ResolveError, resolve


def test_unknown_encoder_suggests_close_names():
    with pytest.raises(EncoderError, match="unknown encoder 'dinov4'.*did you mean.*dinov"):
        load_encoder("dinov4")


def test_builtin_families_are_listed():
    known = list_encoders()
    for name in ("pixels", "random-conv", "zoo", "vjepa2", "videomae", "dinov2", "siglip", "sd-vae", "cosmos"):
        assert name in known


def test_empty_name_is_an_error():
    with pytest.raises(EncoderError):
        load_encoder("")


# ---- the generic Registry (wmprobe.registry) -------------------------------------------------------------


@pytest.fixture
def lazy_module(tmp_path, monkeypatch):
    """A module ``lazy_thing`` on sys.path (not imported yet) that counts its imports."""
    (tmp_path / "lazy_thing.py").write_text("import builtins\nbuiltins.LAZY_IMPORTS = getattr(builtins, "
                                            "'LAZY_IMPORTS', 0) + 1\n\nclass Box:\n    class Inner:\n"
                                            "        value = 7\n\ndef make():\n    return 'made'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import builtins
    monkeypatch.setattr(builtins, "LAZY_IMPORTS", 0, raising=False)
    yield builtins
    sys.modules.pop("lazy_thing", None)


def test_lazy_entries_import_only_when_asked(lazy_module):
    reg: Registry = Registry("widget")
    reg.add("made", "lazy_thing:make", description="a factory")
    reg.add("inner", "lazy_thing:Box.Inner")
    assert "made" in reg and reg.names() == ["made", "inner"] and reg.entry("made").meta["description"] == "a factory"
    assert lazy_module.LAZY_IMPORTS == 0 and "lazy_thing" not in sys.modules     # listing imports nothing
    assert reg.get("made")() == "made" and reg.get("inner").value == 7            # dotted attributes walk
    assert lazy_module.LAZY_IMPORTS == 1


def test_discover_finds_the_builtins_once_on_first_use_before_those_added_at_import():
    calls = []

    def find(reg):
        calls.append(1)
        reg.add("found", object())
        reg.add("second", object())

    reg: Registry = Registry("thing", discover=find)
    assert calls == []                               # nothing is read when the registry is made
    reg.add("at-import", object())
    assert reg.builtin_names() == ["found", "second", "at-import"] == reg.names() and calls == [1]


def test_a_failed_discovery_leaves_nothing_behind_and_is_tried_again():
    calls = []

    def find(reg):
        calls.append(1)
        reg.add("half", object())
        if len(calls) < 3:
            raise ConfigError("preset file x.yaml: broken")

    reg: Registry = Registry("thing", discover=find)
    for _ in range(2):                               # the error comes back on every use, not only the first
        with pytest.raises(ConfigError, match="broken"):
            reg.names()
    assert reg.names() == ["half"] and len(calls) == 3


def test_unknown_names_suggest_close_ones_with_the_owners_error_class():
    reg: Registry = Registry("executor", error=ConfigError)
    for name in ("local", "submitit", "ray"):
        reg.add(name, object())
    with pytest.raises(ConfigError, match=r"unknown executor 'lcoal'; did you mean local\? \(known: local, ray, "
                                          r"submitit\)"):
        reg.get("lcoal")
    assert reg.did_you_mean("zzz") == "" and reg.suggest("submit") == ["submitit"]


def test_runtime_entries_override_plugins_which_override_builtins(monkeypatch):
    reg: Registry = Registry("thing", group="wmprobe.test-things")
    reg.add("a", "json:dumps")
    with pytest.raises(ValueError, match="registered twice"):
        reg.add("a", "json:loads")
    eps = [EntryPoint("a", "json:loads", "wmprobe.test-things"), EntryPoint("b", "json:JSONDecoder",
                                                                               "wmprobe.test-things")]
    monkeypatch.setattr("importlib.metadata.entry_points", lambda group=None, **_: [e for e in eps if e.group == group])
    import json
    assert reg.get("a") is json.loads and reg.entry("b").source == "plugin"
    reg.add("a", json.dump, runtime=True)
    assert reg.get("a") is json.dump and reg.names() == ["a", "b"]


def test_the_decorator_registers_objects():
    reg: Registry = Registry("op")

    @reg.register("double", doc="x2")
    def double(x):
        return 2 * x
    assert reg.get("double")(3) == 6 and reg.entry("double").meta == {"doc": "x2"} and not reg.entry("double").lazy


def test_check_rejects_what_is_not_the_registered_kind():
    def must_be_callable(name, obj):
        if not callable(obj):
            raise WmprobeError(f"{name} is not callable")
        return obj
    reg: Registry = Registry("fn", check=must_be_callable)
    reg.add("pi", "math:pi")
    with pytest.raises(WmprobeError, match="pi is not callable"):
        reg.get("pi")


@pytest.mark.parametrize("target,reason,text", [
    ("no_such_module_xyz:f", "import", "cannot import no_such_module_xyz"),
    ("json:no_such_attr", "attribute", "json has no attribute 'no_such_attr'"),
    ("json", "format", "not a 'module:attr' target")])
def test_resolve_says_why_a_target_does_not_resolve(target, reason, text):
    with pytest.raises(ResolveError, match=text) as err:
        resolve(target)
    assert err.value.reason == reason and isinstance(err.value, WmprobeError)


def test_every_lazy_builtin_target_resolves():
    """The package's own registries name importable targets (the optional hf extra aside)."""
    from wmprobe.encoders.registry import ENCODERS
    from wmprobe.probes import PROBES
    from wmprobe.study.executors import EXECUTORS
    for reg in (ENCODERS, PROBES, EXECUTORS):
        for name in reg.builtin_names():
            entry = reg.entry(name)
            if entry.meta.get("needs"):
                continue
            assert reg.get(name) is not None, name
