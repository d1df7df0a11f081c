"""Does the probe predict control? The findings' rank correlations (wmprobe.analysis_control) and the report's
control figure and sentence, on synthetic records (no simulator)."""
import json
import re

import numpy as np
import pandas as pd
import pytest

from wmprobe import analysis_control as AC
from wmprobe.records import write_records
from wmprobe.report import build_report
from wmprobe.report.control import control_sentence

FAMILIES = ("pixels", "random", "vae", "vjepa", "image-ssl", "dynamics", "videomae", "diffusion", "autoencoder",
            "ceiling")
# a fixed order of 10 success levels against R2 rank 0..9 whose Spearman rho is -0.018 (no link)
NO_LINK = (3, 8, 0, 6, 9, 1, 4, 7, 2, 5)


def records(n=10, order=None, n_rollouts=16, psnr=None, success=None, seeds=2, splits=("train", "test")):
    """``n`` encoders (the last frozen one also +ID) with a clean headline mlp cell (R2 rising with the index,
    CI +-0.03, per-seed jitter), a decoder PSNR, and bc-policy rows: per seed and task split ``n_rollouts /
    seeds`` rollouts whose success follows ``order`` (success level ``order[i]`` for encoder i; default the R2
    order) or the given ``success`` rates."""
    rng = np.random.default_rng(0)
    order = list(range(n)) if order is None else list(order)
    r2s = np.linspace(-0.2, 0.8, n)
    psnr = np.linspace(30, 15, n) if psnr is None else np.asarray(psnr, float)
    per_seed = n_rollouts // seeds
    rows = []
    for i in range(n):
        enc, fam, idw = (f"zoo:{FAMILIES[i % len(FAMILIES)]}", FAMILIES[i % len(FAMILIES)], 0.0)
        if i == n - 1 and n > 2:
            enc, fam, idw = f"zoo:{FAMILIES[(i - 1) % len(FAMILIES)]}", FAMILIES[(i - 1) % len(FAMILIES)], 0.1
        rate = success[i] if success is not None else order[i] / max(n - 1, 1) * 0.9
        base = dict(encoder=enc, family=fam, id_weight=idw, dataset="dynamic", split="task", corruption="clean",
                    layer="l1", dataset_fingerprint="fp")
        for s in range(seeds):
            r2 = r2s[i] + rng.normal(0, 0.005)
            rows.append(dict(base, probe="mlp", k=4, seed=s, r2=r2, r2_ci_low=r2 - 0.03, r2_ci_high=r2 + 0.03,
                             psnr=psnr[i], psnr_ci_low=psnr[i] - 0.3, psnr_ci_high=psnr[i] + 0.3, ssim=0.5,
                             n_test_episodes=24))
            for sp in splits:
                k = int(round(rate * per_seed))
                rows.append(dict(base, probe="bc-policy", k=0, seed=s, task_split=sp, task="all",
                                 success=k / per_seed, success_ci_low=0.0, success_ci_high=1.0, n_rollouts=per_seed))
                rows.append(dict(base, probe="bc-policy", k=0, seed=s, task_split=sp, task="reach-red",
                                 success=1.0, n_rollouts=1))      # per-task rows: not the pooled ones
    return pd.DataFrame(rows)


def test_success_pools_the_seeds_rollouts_with_a_wilson_interval():
    from wmprobe.control.rollout import wilson
    s = AC.control_success(records(n=5, n_rollouts=16))
    assert len(s) == 5 * 2 and set(s["task_split"]) == {"train", "test"}
    assert (s["n_rollouts"] == 16).all() and (s["seeds"] == 2).all()
    r = s.iloc[0]
    assert (r["success_ci_low"], r["success_ci_high"]) == pytest.approx(wilson(int(r["successes"]), 16))
    assert "zoo:vjepa +ID" in set(s["label"])


def test_success_that_follows_r2_gives_rho_near_one_with_a_ci_above_zero():
    f = AC.control_findings(records())
    for sp in ("train", "test"):
        e = f["dynamic"][sp]
        assert e["n_encoders"] == 10 and e["r2"]["status"] == "ok"
        assert e["rho_r2_success"] > 0.95 and e["rho_r2_success_ci"][0] > 0.3
        assert e["rho_psnr_success"] < -0.95 and e["rho_psnr_success_ci"][1] < -0.3   # PSNR falls as R2 rises
        assert e["difference"]["ci"][0] > 0
        assert len(e["encoders"]) == 10 and {"label", "success", "r2", "psnr"} <= set(e["encoders"][0])


def test_unrelated_success_gives_a_ci_that_covers_zero():
    e = AC.control_findings(records(order=NO_LINK))["dynamic"]["train"]
    assert abs(e["rho_r2_success"]) < 0.2
    lo, hi = e["rho_r2_success_ci"]
    assert lo < 0 < hi and hi - lo > 0.6


def test_fewer_than_four_encoders_say_so_instead_of_a_number():
    e = AC.control_findings(records(n=3))["dynamic"]["train"]
    for key in ("r2", "psnr", "difference"):
        assert e[key]["status"] == "not enough encoders", key
        assert e[key]["ci"] is None and ">= 4" in e[key]["reason"]
    assert e["rho_r2_success"] is None and e["rho_psnr_success"] is None


def test_a_constant_success_is_reported_not_correlated():
    e = AC.control_findings(records(n=6, success=[0.0] * 6))["dynamic"]["test"]
    assert e["r2"]["status"] == "constant" and "success is the same" in e["r2"]["reason"]
    assert e["rho_r2_success"] is None
    no_psnr = AC.control_findings(records(n=6, psnr=[np.nan] * 6))["dynamic"]["train"]
    assert no_psnr["r2"]["status"] == "ok" and no_psnr["psnr"]["status"] == "not enough encoders"
    assert all(e["psnr"] is None for e in no_psnr["encoders"])        # null in findings.json, never NaN


def test_the_ci_reflects_rollout_noise_and_is_deterministic():
    few = AC.control_findings(records(n_rollouts=20))["dynamic"]["train"]           # success 0.0, 0.1, ... 0.9
    many = AC.control_findings(records(n_rollouts=2000))["dynamic"]["train"]        # the same rates
    assert [e["success"] for e in few["encoders"]] == pytest.approx([e["success"] for e in many["encoders"]])
    assert few["rho_r2_success"] == pytest.approx(many["rho_r2_success"])
    assert few["r2"]["ci"][0] < many["r2"]["ci"][0] - 0.05     # fewer rollouts: a wider CI, towards 0
    df = records(order=NO_LINK)
    assert AC.control_findings(df, seed=3) == AC.control_findings(df, seed=3)
    assert AC.control_findings(df, seed=3)["dynamic"]["train"]["r2"]["ci"] != \
        AC.control_findings(df, seed=4)["dynamic"]["train"]["r2"]["ci"]


def test_bootstrap_rho_is_scipys_spearman_per_replicate():
    from scipy.stats import spearmanr
    rng = np.random.default_rng(1)
    a = rng.integers(0, 4, size=(20, 7)).astype(float)       # ties on purpose
    b = rng.normal(size=(20, 7))
    got = AC._rho_rows(a, b)
    for i in range(20):
        want = spearmanr(a[i], b[i]).statistic if np.ptp(a[i]) > 0 else np.nan
        np.testing.assert_allclose(got[i], want, atol=1e-12)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("control-report")
    write_records(records().to_dict("records"), out, {"preset": "test"})
    return build_report(out)


def test_the_report_shows_success_against_r2_and_says_which_predicts_better(report):
    out = report.parent
    assert (out / "figures" / "control.png").stat().st_size > 5000 and (out / "figures" / "control.svg").exists()
    f = json.loads((out / "findings.json").read_text())["control"]["dynamic"]
    assert set(f) == {"train", "test"} and f["train"]["rho_r2_success"] > 0.95
    table = pd.read_csv(out / "tables" / "control.csv")
    assert len(table) == 20 and {"success_ci_low", "r2_ci_high", "psnr"} <= set(table.columns)
    html = report.read_text()
    verdict = re.sub(r"<[^>]+>", "", re.search(r'<p id="verdict".*?</p>', html, re.S).group(0))
    e = f["train"]
    assert (f"Spearman rho of success with action R2 {e['rho_r2_success']:.2f} "
            f"[{e['rho_r2_success_ci'][0]:.2f}, {e['rho_r2_success_ci'][1]:.2f}] over 10 encoders") in verdict
    assert "In this setting action R2 predicts control better than fidelity does" in verdict
    assert "the CIs do not overlap" in verdict and "With 10 encoders" in verdict
    assert "cannot say more" in verdict and verdict.count("Closed loop on") == 2
    assert "Closed-loop control</h2>" in html and "Probe vs control on dynamic" in html


def test_the_figure_has_a_panel_per_task_split_with_both_cis():
    from wmprobe.report.control import control_figure
    df = records(n=6)
    f = AC.control_findings(df)["dynamic"]
    tabs = {sp: AC.control_table(df, "dynamic", sp) for sp in f}
    fig = control_figure(tabs, f, "dynamic")
    axes = [ax for ax in fig.axes if ax.get_xlabel()]
    assert len(axes) == 2 and "rho(R2)" in axes[0].get_title()
    # every point carries an x and a y error bar: 2 LineCollections per encoder
    from matplotlib.collections import LineCollection
    assert sum(isinstance(c, LineCollection) for c in axes[0].collections) == 2 * 6
    one = control_figure({"train": tabs["train"]}, f, "dynamic")
    assert len([ax for ax in one.axes if ax.get_xlabel()]) == 1
    import matplotlib.pyplot as plt
    plt.close("all")


def test_a_policy_on_another_layer_than_the_headline_r2_is_named():
    from wmprobe.report.control import control_sentence
    df = records(n=5)
    probe = df[df["probe"] == "mlp"]
    df = pd.concat([df, probe.assign(layer="l0")], ignore_index=True)    # headline layer: l0; the policy read l1
    e = AC.control_findings(df)["dynamic"]["train"]
    assert len(e["policy_layer_differs"]) == 5 and {r["policy_layer"] for r in e["encoders"]} == {"l1"}
    assert "read another layer than the headline R2" in control_sentence(e, "dynamic", "train")
    assert AC.control_findings(records(n=5))["dynamic"]["train"]["policy_layer_differs"] == []


def test_too_few_encoders_in_the_report_is_a_sentence_not_a_number(tmp_path):
    from wmprobe.report.control import control_sentence
    e = AC.control_findings(records(n=3))["dynamic"]["test"]
    s = control_sentence(e, "dynamic", "test")
    assert "not enough encoders" in s and "nan" not in s.lower()


def test_policies_that_fail_alike_are_called_unreadable_not_correlated(tmp_path):
    # the demo zoo's first control run: 0 to 3 successes in 22 rollouts for every encoder. A rank correlation of
    # such rates reads rollout noise; the findings say that no pair of encoders separates, and the sentence
    # refuses to say which measure predicts control
    rates = [2 / 22 if i % 3 == 0 else 0.0 for i in range(10)]         # 1 success per seed of 11
    e = AC.control_findings(records(n_rollouts=22, success=rates))["dynamic"]["train"]
    assert e["success_separates"] is False and e["separated_pairs"] == 0
    assert e["success_max"] == pytest.approx(2 / 22) and e["rho_r2_success"] is not None   # rho kept, not hidden
    sentence = re.sub(r"<[^>]+>", "", control_sentence(e, "dynamic", "train"))
    assert "does not tell the 10 encoders apart" in sentence and "reads that noise" in sentence
    assert "predicts control better" not in sentence and "policies that solve the tasks" in sentence
    # the state policy solves the tasks: then the sentence blames the features, not the recipe
    solved = {**e, "state_ceiling": {"successes": 22, "n_rollouts": 22, "success": 1.0, "success_ci": [0.85, 1.0]}}
    sentence = re.sub(r"<[^>]+>", "", control_sentence(solved, "dynamic", "train"))
    assert "succeeded in 22 of 22 rollouts" in sentence and "). Closed-loop success does not tell" in sentence
    assert "the encoders' features, not the recipe, limit success" in sentence
    spread = AC.control_findings(records(n_rollouts=40))["dynamic"]["train"]            # 0.0 ... 0.9 of 40
    assert spread["success_separates"] is True and spread["separated_pairs"] > 10


def test_the_state_ceiling_is_reported_beside_the_correlation_not_in_it():
    """The privileged-state policy's rows (encoder = family = layer = state) give the entry's `state_ceiling`
    and the report's sentence; they are not an encoder of the correlation."""
    df = records(n=6)
    state = [dict(encoder="state", family="state", id_weight=0.0, dataset="dynamic", split="task",
                  corruption="clean", layer="state", dataset_fingerprint="fp", probe="bc-policy", k=0, seed=s,
                  task_split=sp, task="all", success=0.75, n_rollouts=8) for s in (0, 1) for sp in ("train", "test")]
    found = AC.control_findings(pd.concat([df, pd.DataFrame(state)], ignore_index=True), n_boot=50)
    e = found["dynamic"]["train"]
    assert e["state_ceiling"]["successes"] == 12 and e["state_ceiling"]["n_rollouts"] == 16
    assert e["n_encoders"] == 6 and "state" not in {x["label"] for x in e["encoders"]}
    assert "privileged simulator state" in control_sentence(e, "dynamic", "train")
    assert AC.control_findings(df, n_boot=50)["dynamic"]["train"]["state_ceiling"] is None
