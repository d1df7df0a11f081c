"""What the records can and cannot say (wmprobe.verdict) on hand-made summary rows with constructed CIs."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wmprobe import verdict as V


def rows(spec: dict[str, tuple[float, float, float]], families: dict[str, str] | None = None) -> pd.DataFrame:
    """label -> (r2, ci_low, ci_high); the encoder is the label without ' +ID'."""
    out = []
    for label, (r2, lo, hi) in spec.items():
        enc = label.removesuffix(" +ID")
        fam = (families or {}).get(label, enc.split(":")[-1])
        out.append(dict(label=label, encoder=enc, family=fam, id_weight=1.0 if label.endswith("+ID") else 0.0,
                        r2=r2, r2_ci_low=lo, r2_ci_high=hi))
    return pd.DataFrame(out)


def test_tiers_start_when_a_ci_falls_below_the_tier_tops_ci():
    s = rows({"a": (0.80, 0.75, 0.85), "b": (0.74, 0.70, 0.78),    # overlaps a: tier 1
              "c": (0.66, 0.60, 0.72),                                # below a's low (0.75): tier 2, c is its top
              "d": (0.62, 0.59, 0.65),                                # overlaps c (low 0.60): tier 2
              "e": (0.50, 0.40, 0.59),                                # 0.59 < 0.60: tier 3
              "f": (0.55, 0.20, 0.90)})                               # a wide CI: never separated from its top
    t = V.tiers(s).set_axis(s["label"])
    assert t.to_dict() == {"a": 1, "b": 1, "c": 2, "d": 2, "e": 3, "f": 2}
    shuffled = s.sample(frac=1.0, random_state=3)                      # deterministic whatever the input order
    assert V.tiers(shuffled).set_axis(shuffled["label"]).to_dict() == t.to_dict()
    pairs = V.adjacent_pairs(s)
    assert [(p["a"], p["b"], p["separated"]) for p in pairs] == [
        ("a", "b", False), ("b", "c", False), ("c", "d", False), ("d", "f", False), ("f", "e", False)]
    nan_ci = rows({"a": (0.8, 0.75, 0.85), "b": (0.2, np.nan, np.nan)})
    assert V.tiers(nan_ci).tolist() == [1, 1]                          # a missing CI separates nothing


def test_references_are_not_tiered_and_floors_split_encoders():
    fam = {"pixels:8": "pixels", "random-conv": "random", "ceiling": "ceiling", "state": "state"}
    s = rows({"ceiling": (0.9, 0.85, 0.95), "state": (0.95, 0.9, 1.0), "pixels:8": (0.3, 0.25, 0.35),
              "random-conv": (0.2, 0.1, 0.38), "zoo:vjepa": (0.6, 0.5, 0.7), "zoo:vae": (0.4, 0.36, 0.45),
              "zoo:dyn": (0.1, 0.05, 0.2)}, fam)
    t = V.tiers(s).set_axis(s["label"])
    assert t[["ceiling", "state", "pixels:8", "random-conv"]].isna().all()
    assert V.against_floors(s) == {"above": ["zoo:vjepa"], "not_separated": ["zoo:vae"], "below": ["zoo:dyn"]}
    # zoo:vae's CI low 0.36 clears the best floor's CI high (0.35) but not random-conv's (0.38): not separated


def test_id_effects_and_the_papers_table1_as_found():
    s = rows({"zoo:vjepa": (0.5, 0.45, 0.55), "zoo:vjepa +ID": (0.8, 0.75, 0.85),      # raised, separated
              "zoo:vae": (0.3, 0.2, 0.4), "zoo:vae +ID": (0.35, 0.25, 0.45),           # raised, not separated
              "zoo:dynamics": (0.2, 0.15, 0.25), "zoo:dynamics +ID": (0.19, 0.14, 0.24),
              "zoo:diffusion": (0.4, 0.35, 0.45), "zoo:diffusion +ID": (0.2, 0.15, 0.25)})   # lowered, separated
    e = V.id_effects(s).set_index("encoder")
    assert e.loc["zoo:vjepa", "separated"] and e.loc["zoo:vjepa", "gain"] == pytest.approx(0.3)
    assert e.loc["zoo:vae", "raised"] and not e.loc["zoo:vae", "separated"]
    t1 = {r["family"]: r for r in V.paper_table1(V.id_effects(s))["families"]}
    assert t1["vjepa"]["paper_model"] == "V-JEPA 2 L" and t1["vjepa"]["agreement"] == "agrees"
    assert t1["vae"]["agreement"] == "same direction, not CI-separated"
    assert t1["dynamics"]["paper"] == "unchanged" and t1["dynamics"]["agreement"] == "agrees"
    assert t1["diffusion"]["agreement"] == "disagrees"
    assert -1 <= V.paper_table1(V.id_effects(s))["kendall_tau_frozen"] <= 1


def test_data_limits_read_the_audit_and_the_leakage_check():
    cfg = {"config": {"audit": {"dynamic": {"headline_groups": ["translation"], "rule": "r",
                                            "left_out": [{"group": "gripper", "reason": "constant on test"}]}},
                      "leakage": {"ok": False, "problems": ["task reach-red in the pool"]}}}
    lim = V.data_limits(cfg, "dynamic")
    assert lim["audit"]["left_out"] == {"gripper": "constant on test"} and lim["audit"]["rule"] == "r"
    assert lim["leakage"] == {"ok": False, "problems": ["task reach-red in the pool"], "checked": {}}
    assert V.data_limits({}, "dynamic") == {}                        # old records: nothing claimed
    shaped = {"audit": {"d": {"headline_groups": ["translation"],
                              "groups": {"translation": {"reason": ""}, "rotation": {"reason": "unseen"}}}}}
    assert V.data_limits(shaped, "d")["audit"]["left_out"] == {"rotation": "unseen"}


def test_data_limits_say_which_zoo_losses_had_not_flattened():
    from wmprobe.report.text import convergence_sentence
    flat = {"tail_share": 0.01, "plateaued": True, "trend": "flat"}
    plateau = {"zoo:vae": flat, "zoo:vae +ID1": {**flat, "id": {"tail_share": 0.2, "plateaued": False,
                                                                 "trend": "falling"}},
               "zoo:vjepa": {"tail_share": -0.3, "plateaued": False, "trend": "rising"}, "ceiling": flat}
    cv = V.data_limits({"config": {"run": {"zoo": {"plateau": plateau}}}}, "d")["convergence"]
    assert cv["models"] == 4 and cv["flat"] == 2
    assert cv["not_flat"] == [{"model": "zoo:vae +ID1", "loss": "+ID", "tail_share": 0.2, "trend": "falling"},
                              {"model": "zoo:vjepa", "loss": "family", "tail_share": -0.3, "trend": "rising"}]
    text = convergence_sentence(cv)
    assert "2 of 4 models flattened" in text and "zoo:vae +ID1 (+ID loss falling: 0.20" in text
    assert "zoo:vjepa (family loss rising: -0.30" in text
    all_flat = V.data_limits({"config": {"run": {"zoo": {"plateau": {"zoo:vae": flat}}}}}, "d")["convergence"]
    assert convergence_sentence(all_flat).startswith("Zoo training: the model's losses flattened")
    assert "all 2 models flattened" in convergence_sentence({"models": 2, "flat": 2, "not_flat": []})
    assert "convergence" not in V.data_limits({"config": {"run": {}}}, "d")     # no zoo: nothing claimed


def test_data_limits_combine_the_studys_choice_with_the_audits_evidence():
    groups = {"translation": {"axes": ["x", "y", "z"], "identifiable": True, "reasons": []},
              "rotation": {"axes": ["yaw"], "identifiable": False, "reasons": ["state ceiling R2 0.130 < 0.5"]},
              "gripper": {"axes": ["g"], "identifiable": False, "reasons": ["constant on all 8 test episodes"]}}
    audit = {"d": {"headline_groups": ["translation"], "rule": "the rule", "groups": groups}}
    # the user named translation + gripper: rotation is left out by the config (and the audit agrees),
    # gripper is kept although the audit found it unidentifiable
    head = {"d": {"headline_groups": ["translation", "gripper"], "source": "config",
                  "left_out": {"rotation": "not named in the study's headline_groups"}}}
    a = V.data_limits({"config": {"audit": audit, "headline": head}}, "d")["audit"]
    assert a["source"] == "config" and a["headline_groups"] == ["translation", "gripper"]
    assert a["left_out"] == {"rotation": "not named in the study's headline_groups; the audit also found: "
                                         "state ceiling R2 0.130 < 0.5"}
    assert a["kept_unidentifiable"] == {"gripper": "constant on all 8 test episodes"}
    assert [r["group"] for r in a["groups"]] == ["translation", "rotation", "gripper"]
    assert [r["headline"] for r in a["groups"]] == [True, False, True]       # what the headline averages
    # the audit's choice: its specific reasons, not the resolution's generic sentence
    head = {"d": {"headline_groups": ["translation"], "source": "audit",
                  "left_out": {"rotation": "not identifiable by the audit's rule (the rule)",
                               "gripper": "not identifiable by the audit's rule (the rule)"}}}
    a = V.data_limits({"config": {"audit": audit, "headline": head}}, "d")["audit"]
    assert a["left_out"] == {"rotation": "state ceiling R2 0.130 < 0.5", "gripper": "constant on all 8 test episodes"}
    assert a["kept_unidentifiable"] == {}


def test_verdict_sentences_say_only_what_the_numbers_hold():
    from wmprobe.report.text import verdict_sentences
    base = {"headline": {"k": 4, "probe": "mlp", "split": "task", "test_episodes": 40, "seeds": 3,
                         "headline_groups": ["translation"]},
            "references": {"floor": [{"label": "pixels:8", "r2": 0.5, "ci": [0.45, 0.55]}]},
            "against_floors": {"above": [], "not_separated": ["zoo:vae"], "below": []}, "tiers": [["zoo:vae"]],
            "id": [{"encoder": "zoo:vae", "raised": False, "separated": False, "gain": -0.01}]}
    text = " ".join(verdict_sentences(base, "d"))
    assert "No ceiling was measured" in text and "read the CIs" not in text          # 40 test episodes
    assert "Of 1 family measured frozen and +ID, +ID lowered R2 for 1 (CI-separated: none)" in text
    assert "ranking" not in text                                                      # one encoder: no ranking claim
    low = dict(base, references={**base["references"], "ceiling": [{"label": "ceiling", "r2": 0.52, "ci": [0, 1]}]})
    assert "does not clear the best floor" in " ".join(verdict_sentences(low, "d"))
    ok = dict(base, references={**base["references"], "ceiling": [{"label": "ceiling", "r2": 0.9, "ci": [0, 1]}]},
              r2_norm={"zoo:vae": 0.25})
    assert "covers 25% of the way from the best floor to the ceiling" in " ".join(verdict_sentences(ok, "d"))
