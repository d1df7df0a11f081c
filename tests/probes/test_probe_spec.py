"""What each probe is (ProbeSpec) is declared once and asked by every stage: a probe registered in one place
runs through `wmprobe.probe`, its controls included, and the study plan treats it by its spec."""
import numpy as np
import pytest

from wmprobe.errors import ProbeError
from wmprobe.probes import PROBES, probe_spec
from wmprobe.probes.spec import CONTROLS, ProbeSpec, known_probe_names, register_probe


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
