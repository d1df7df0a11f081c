"""What each probe is (ProbeSpec) is declared once and asked by every stage: a probe registered in one place
runs through `wmprobe.probe`, its controls included, and the study plan treats it by its spec."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from wmprobe.errors import ProbeError
from wmprobe.probes import PROBES, probe_spec
from wmprobe.probes.spec import CONTROLS, ProbeSpec, declared_probes, known_probe_names, register_probe
from wmprobe.registry import Registry


def test_the_builtin_specs_say_what_the_stages_used_to_read_off_names():
    mlp, ridge, att = probe_spec("mlp"), probe_spec("ridge"), probe_spec("attentive")
    assert (mlp.seeded, mlp.takes_config, mlp.needs_tokens, mlp.on_states, mlp.on_imagined) == (True, True, False,
                                                                                                  True, True)
    assert (ridge.seeded, ridge.takes_config, ridge.takes_options, ridge.on_states) == (False, False, False, True)
    assert att.needs_tokens and att.seeded and not att.takes_config and att.takes_options and not att.on_states
    assert ridge.fit_seeds((3, 4, 5)) == (3,) and mlp.fit_seeds((3, 4, 5)) == (3, 4, 5)
    from wmprobe.probes.ridge import VERSION
    assert ridge.cache_version() == {"ridge": VERSION} and mlp.cache_version() == {}


def test_a_control_is_its_base_probe_on_clean_features_only():
    s = probe_spec("ridge-shuffled")
    assert s.is_control and s.control == "shuffled" and s.base == "ridge" and s.name == "ridge-shuffled"
    assert not s.seeded and not s.on_states and not s.on_imagined        # never on states or imagined latents
    assert s.cache_version() == probe_spec("ridge").cache_version()
    assert probe_spec("mlp-single").study_options({"steps": 5}) == {"steps": 5}
    assert set(known_probe_names()) >= {f"{p}-{c}" for p in ("mlp", "ridge", "attentive") for c in CONTROLS}


@pytest.mark.parametrize("bad", ["mlpp", "mlp-shufled", "", "ridge-"])
def test_unknown_names_are_one_probe_error_naming_the_choices(bad):
    with pytest.raises(ProbeError, match="unknown probe.*choose one of attentive, mlp, ridge"):
        probe_spec(bad)


def test_did_you_mean():
    with pytest.raises(ProbeError, match=r"did you mean mlp-shuffled[,?]"):
        probe_spec("mlp-shufled")


class MeanProbe:
    """Predicts the train mean of every target: R2 <= 0 on test by construction."""

    def __init__(self, seeds=(0,), **options):
        self.seeds, self.options = list(seeds), options

    def fit(self, train):
        self.mean = train.y.mean(0)
        return self

    def predict(self, data):
        return np.repeat(self.mean[None, None], len(self.seeds), 0).repeat(len(data), 1)

    def config(self):
        return {"probe": "mean", **self.options}


@pytest.fixture
def mean_probe(monkeypatch):
    monkeypatch.setattr(PROBES, "_runtime", {})
    register_probe(ProbeSpec("mean", f"{__name__}:MeanProbe", "train mean", seeded=False, takes_options=False))
    yield


def test_a_probe_registered_once_runs_with_its_controls(mean_probe, store_dir):
    from wmprobe.data.store import EpisodeStore
    from wmprobe.probes.api import probe
    store = EpisodeStore.load(store_dir)
    z = np.random.default_rng(0).normal(size=(store.n_frames, 6)).astype(np.float32)
    rows = probe(z, store, probe=["mean", "mean-shuffled", "mean-single"], k=1, seeds=(0, 1), n_boot=20,
                 headline_groups=["translation"], steps=99)
    assert [r["probe"] for r in rows] == ["mean", "mean-shuffled", "mean-single"]   # unseeded: one row each
    assert all(r["seed"] == 0 and r["r2"] <= 1e-6 for r in rows)
    assert all('"steps"' not in r["probe_config"] for r in rows)                      # takes_options=False
    assert "mean" in known_probe_names() and "mean-single" in known_probe_names()


def test_register_probe_rejects_a_name_with_a_dash():
    with pytest.raises(ValueError, match="without '-'"):
        register_probe(ProbeSpec("my-probe", "x:y"))


# ---- a built-in probe is one module that declares itself ------------------------------------------------------
def test_the_builtins_are_found_in_their_modules_without_importing_them_or_torch():
    code = ("import sys; from wmprobe.probes.spec import PROBES, probe_spec; probe_spec('attentive-single'); "
            "print(PROBES.names(), sorted(m for m in ('torch', 'wmprobe.probes.mlp', 'wmprobe.probes.ridge', "
            "'wmprobe.probes.attentive') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "['mlp', 'ridge', 'attentive'] []", r.stdout + r.stderr


def test_importing_a_builtin_module_registers_the_spec_it_was_found_with():
    before = {n: e.meta["spec"] for n, e in PROBES.builtins().items()}
    from wmprobe.probes import attentive, mlp, ridge                     # noqa: F401  (their register_probe runs)
    assert {n: e.meta["spec"] for n, e in PROBES.builtins().items()} == before
    assert PROBES.get("mlp") is mlp.MLPProbe and PROBES.builtins()["ridge"].source == "builtin"
    with pytest.raises(ValueError, match="registered twice"):             # two modules, one name: refused
        register_probe(ProbeSpec("ridge", "wmprobe.probes.mlp:MLPProbe"), runtime=False)


def _package(tmp_path, name, body):
    pkg = tmp_path / "acme_probes"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / f"{name}.py").write_text(textwrap.dedent(body))
    return pkg


def test_a_new_module_is_a_new_probe_in_order_with_its_controls(tmp_path, monkeypatch):
    pkg = _package(tmp_path, "median", '''\
        """A probe in one file."""
        import numpy as np
        from wmprobe.probes.spec import ProbeSpec, register_probe

        register_probe(ProbeSpec(
            "median", "acme_probes.median:MedianProbe",
            "train median of every target "
            "(deterministic)", seeded=False, order=0), runtime=False)

        class MedianProbe:
            def __init__(self, seeds=(0,), **options):
                self.seeds = list(seeds)

            def fit(self, train):
                self.median = np.median(train.y, 0)
                return self

            def predict(self, data):
                return np.repeat(self.median[None, None], len(self.seeds), 0).repeat(len(data), 1)

            def config(self):
                return {"probe": "median"}
        ''')
    _package(tmp_path, "helpers", "def not_a_probe():\n    return 1\n")
    (spec,) = declared_probes(pkg, "acme_probes")
    assert (spec.name, spec.description, spec.seeded, spec.order) == (
        "median", "train median of every target (deterministic)", False, 0)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(PROBES, "_builtin", dict(PROBES.builtins()))   # its import registers it in PROBES too
    reg: Registry = Registry("probe", discover=lambda r: [r.add(s.name, s.target, spec=s)
                                                          for s in declared_probes(pkg, "acme_probes")])
    assert reg.names() == ["median"] and "acme_probes.median" not in sys.modules
    assert reg.get("median").__name__ == "MedianProbe" and probe_spec("median-single").base == "median"
    sys.modules.pop("acme_probes.median", None)
    sys.modules.pop("acme_probes", None)


@pytest.mark.parametrize("line, message", [
    ('register_probe(ProbeSpec("x", TARGET), runtime=False)', "literal arguments"),
    ('register_probe(ProbeSpec("x", "acme_probes.x:X"))', "literal arguments"),
    ('register_probe(ProbeSpec("x", "acme_probes.x:X", colour=1), runtime=False)', "literal arguments"),
    ('register_probe(ProbeSpec("x", "other.mod:X"), runtime=False)', "outside its module acme_probes.x"),
    ('register_probe(ProbeSpec("x-y", "acme_probes.x:X"), runtime=False)', "without '-'"),
])
def test_a_declaration_the_registry_cannot_read_is_one_error_naming_file_and_line(tmp_path, line, message):
    pkg = _package(tmp_path, "x", f"import os\n\n{line}\n")
    with pytest.raises(ProbeError, match=f"acme_probes/x.py:3: .*{message}"):
        declared_probes(pkg, "acme_probes")
