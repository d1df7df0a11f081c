"""Rank stability across data seeds (wmprobe.stability, `wmprobe stability`) on hand-made records tables."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from wmprobe.errors import ProbeError
from wmprobe.records import write_records
from wmprobe.stability import format_stability, kendall_tau, stability, stability_from_dirs, to_json

FAMILIES = ["vae", "vjepa", "videomae", "diffusion", "image-ssl"]


def run(r2: dict[str, float], *, plus_id: dict[str, float] | None = None, ci: float = 0.05) -> pd.DataFrame:
    """One run's records: each zoo family frozen (and +ID) at the given clean R2, two probe seeds (+-0.005),
    the pixel floor at 0.3, the ceiling and the state reference (which stability leaves out)."""
    rows = []
    cells = [(f"zoo:{f}", f, 0.0, v) for f, v in r2.items()]
    cells += [(f"zoo:{f}", f, 1.0, v) for f, v in (plus_id or {}).items()]
    cells += [("pixels", "pixels", 0.0, 0.3), ("ceiling", "ceiling", 0.0, 0.9), ("state", "state", 0.0, 0.99)]
    for enc, fam, idw, v in cells:
        for seed, j in ((0, -0.005), (1, 0.005)):
            rows.append(dict(encoder=enc, family=fam, id_weight=idw, dataset="dynamic", split="task", layer="out",
                             k=4, seed=seed, error="", corruption="clean", probe="mlp", r2=v + j,
                             r2_ci_low=v + j - ci, r2_ci_high=v + j + ci))
    return pd.DataFrame(rows)


def test_kendall_tau_is_scipys_and_nan_for_a_constant_vector():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=9), rng.normal(size=9)
    assert kendall_tau(a, b) == pytest.approx(stats.kendalltau(a, b).statistic)
    assert np.isnan(kendall_tau(np.ones(4), b[:4]))


def test_identical_orderings_give_tau_one_and_every_pair_ordered_alike():
    base = dict(zip(FAMILIES, [0.5, 0.6, 0.7, 0.8, 0.4]))
    res = stability({"a": run(base), "b": run({f: v + 0.02 for f, v in base.items()})})
    g = res["datasets"]["dynamic"]["groups"]
    assert g["frozen"]["tau_mean"] == pytest.approx(1.0) and g["frozen"]["n_encoders"] == 5
    assert g["all"]["n_encoders"] == 6          # the floor is in `all`; the ceiling and state never are
    assert g["frozen"]["concordant_pairs"] == 1.0
    # CIs of +-0.05 around values 0.1 apart: adjacent pairs overlap, pairs 0.2+ apart do not
    assert 0 < g["frozen"]["separated_pairs"] < 1
    table = res["datasets"]["dynamic"]["table"]
    assert list(table.index[:2]) == ["zoo:diffusion", "zoo:videomae"] and "ceiling" not in table.index
    assert table.loc["zoo:vae", "r2_data_seed_sd"] == pytest.approx(np.std([0.5, 0.52], ddof=1))


def test_a_reversed_ordering_gives_tau_minus_one_and_no_stable_pair():
    base = dict(zip(FAMILIES, [0.5, 0.6, 0.7, 0.8, 0.4]))
    rev = dict(zip(FAMILIES, [0.7, 0.6, 0.5, 0.4, 0.8]))
    g = stability({"a": run(base), "b": run(rev)})["datasets"]["dynamic"]["groups"]["frozen"]
    assert g["tau_mean"] == pytest.approx(stats.kendalltau([0.5, 0.6, 0.7, 0.8, 0.4],
                                                           [0.7, 0.6, 0.5, 0.4, 0.8]).statistic)
    assert g["concordant_pairs"] < 0.5


def test_three_runs_give_every_pair_and_groups_only_where_three_encoders_are_shared():
    a = dict(zip(FAMILIES, [0.5, 0.6, 0.7, 0.8, 0.4]))
    b = dict(zip(FAMILIES, [0.6, 0.5, 0.7, 0.8, 0.4]))    # one swap
    ids = {f: v + 0.3 for f, v in a.items()}
    res = stability({"s1": run(a, plus_id=ids), "s2": run(b, plus_id=ids), "s3": run(a)})
    g = res["datasets"]["dynamic"]["groups"]
    assert [(p["a"], p["b"]) for p in g["frozen"]["pairs"]] == [("s1", "s2"), ("s1", "s3"), ("s2", "s3")]
    assert g["frozen"]["tau_min"] == pytest.approx(0.8) and g["frozen"]["tau_mean"] == pytest.approx(0.8667, abs=1e-3)
    assert [(p["a"], p["b"]) for p in g["+ID"]["pairs"]] == [("s1", "s2")]    # s3 has no +ID models
    assert g["zoo"]["n_encoders"] == 10
    table = res["datasets"]["dynamic"]["table"]
    assert np.isnan(table.loc["zoo:vae +ID", "rank_mean"]) and table.loc["zoo:vae +ID", "runs"] == 2


def test_fewer_than_two_runs_or_nothing_comparable_is_one_clear_error():
    with pytest.raises(ProbeError, match=">= 2 runs"):
        stability({"a": run({"vae": 0.5})})
    with pytest.raises(ProbeError, match="no dataset has >= 3 encoders"):
        stability({"a": run({"vae": 0.5}), "b": run({"vae": 0.6})})


def test_the_cli_reads_results_directories_names_runs_by_seed_and_writes_json(tmp_path, capsys):
    from wmprobe.cli import main
    dirs = []
    for seed, shift in ((11, 0.0), (12, 0.03)):
        d = tmp_path / f"run{seed}"
        write_records(run({f: v + shift for f, v in zip(FAMILIES, [0.5, 0.6, 0.7, 0.8, 0.4])}).to_dict("records"), d)
        (d / "config.yaml").write_text(f"config:\n  command: run\n  study:\n    name: x\n    seed: {seed}\n")
        dirs.append(str(d))
    out = tmp_path / "st.json"
    assert main(["stability", *dirs, "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "seed 11/seed 12 1.00" in text and "zoo:diffusion" in text
    doc = json.loads(out.read_text())
    assert doc["runs"] == ["seed 11", "seed 12"]
    assert doc["datasets"]["dynamic"]["groups"]["frozen"]["tau_mean"] == pytest.approx(1.0)
    assert format_stability(stability_from_dirs(dirs)) in text
    assert to_json(stability_from_dirs(dirs)) == doc


def test_held_out_tasks_of_each_run_are_read_and_a_changed_task_set_is_said(tmp_path):
    """Runs whose seed drew other test tasks: each pair says how many held-out tasks it shares, and the text
    warns that tau then mixes the task choice with noise; runs that name the same tasks say so instead."""
    def make(name, seed, tasks):
        d = tmp_path / name
        write_records(run({f: v for f, v in zip(FAMILIES, [0.5, 0.6, 0.7, 0.8, 0.4])}).to_dict("records"), d)
        split = "".join(f"\n          - {t}" for t in tasks)
        (d / "config.yaml").write_text(f"config:\n  study:\n    seed: {seed}\n  datasets:\n    dynamic:\n"
                                       f"      split:\n        test_task_names:{split}\n")
        return d
    a, b, c = make("a", 1, ["push", "lift"]), make("b", 2, ["lift", "stack"]), make("c", 3, ["push", "lift"])
    res = stability_from_dirs([a, b])
    d = res["datasets"]["dynamic"]
    assert d["test_tasks"] == {"seed 1": ["lift", "push"], "seed 2": ["lift", "stack"]}
    assert d["groups"]["zoo"]["pairs"][0]["shared_tasks"] == 1
    text = format_stability(res)
    assert "[1 shared]" in text and "the runs test different tasks" in text
    same = format_stability(stability_from_dirs([a, c]))
    assert "the same in every run: lift, push" in same and "different tasks" not in same
    assert to_json(res)["datasets"]["dynamic"]["test_tasks"] == d["test_tasks"]


def _replicated(reps: list[dict[str, float]]) -> pd.DataFrame:
    """One run whose zoo trained ``len(reps)`` training seeds: replicate r > 0 labelled ``zoo:FAMILY#r``."""
    parts = []
    for r, r2 in enumerate(reps):
        d = run(r2)
        if r:
            d = d[d["encoder"].str.startswith("zoo:")].assign(encoder=lambda x: x["encoder"] + f"#{r}")
        parts.append(d)
    return pd.concat(parts, ignore_index=True)


def test_training_seed_replicates_count_once_as_their_mean():
    """Two runs whose single replicates disagree but whose replicate means agree: stability ranks the means,
    and the table says how many replicates each row averaged."""
    from wmprobe.analysis import collapse_replicates, replicate_table, summary_table, train_sd_summary
    truth = dict(zip(FAMILIES, [0.5, 0.6, 0.7, 0.8, 0.4]))
    noise = dict(zip(FAMILIES, [0.1, -0.1, 0.1, -0.1, 0.1]))
    up = {f: v + noise[f] for f, v in truth.items()}
    down = {f: v - noise[f] for f, v in truth.items()}
    a, b = _replicated([up, down]), _replicated([down, up])
    single = stability({"a": run(up), "b": run(down)})["datasets"]["dynamic"]["groups"]["frozen"]["tau_mean"]
    res = stability({"a": a, "b": b})["datasets"]["dynamic"]
    assert single < 0.5 and res["groups"]["frozen"]["tau_mean"] == pytest.approx(1.0)
    assert res["groups"]["frozen"]["n_encoders"] == 5 and not any("#" in str(i) for i in res["table"].index)
    assert res["table"].loc["zoo:vae", "replicates"] == 2 and res["table"].loc["pixels", "replicates"] == 1
    s = collapse_replicates(summary_table(a))
    assert s.set_index("label").loc["zoo:vae", "r2"] == pytest.approx(0.5)
    assert s.set_index("label").loc["zoo:vae", "r2_train_sd"] == pytest.approx(np.std([0.6, 0.4], ddof=1))
    assert np.isnan(s.set_index("label").loc["pixels", "r2_train_sd"])
    t = replicate_table(a)
    assert list(t["label"]) == ["zoo:diffusion", "zoo:videomae", "zoo:vjepa", "zoo:vae", "zoo:image-ssl"]
    assert (t["replicates"] == 2).all() and t["r2_min"].lt(t["r2_max"]).all()
    assert train_sd_summary(t)["dynamic"] == pytest.approx(np.std([0.6, 0.4], ddof=1))
    assert replicate_table(run(truth)).empty
    mine = run(truth).assign(encoder=lambda d: d["encoder"].replace({"pixels": "pixels#2"}))   # a user's label
    assert "pixels#2" in set(collapse_replicates(summary_table(mine))["encoder"])
