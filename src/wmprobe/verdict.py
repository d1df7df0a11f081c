"""What a study's records can and cannot say: CI-separated tiers, +ID per family, the controls, the paper's
Table 1 as found, and the data's own limits (the action-space audit, the leakage check).

Everything here reads ``analysis.summary_table``-style rows of ONE dataset's headline cell (columns ``label``,
``encoder``, ``family``, ``id_weight``, ``r2``, ``r2_ci_low``, ``r2_ci_high``; optional ``shuffled_r2``,
``single_r2``) plus the records and config.yaml, and returns plain data (dicts / DataFrames) that the report
renders and findings.json stores.

- Two encoders are **CI-separated** when their 95% CIs (episode bootstrap, mean over seeds) do not overlap;
  a missing CI never counts as separated.
- **Tiers** (``tiers``): sort by R2 (descending; ties by label); the first encoder opens tier 1; an encoder
  whose CI high lies below the CI low of its tier's top encoder opens the next tier (and becomes its top),
  otherwise it joins the current tier. Every encoder of tier j+1 is thus CI-separated from the top of tier j;
  members of one tier are not claimed to differ.
- The **floors** are ``analysis.FLOOR_FAMILIES`` (pixels, random-init); an encoder is above the floors when its
  CI low is above every floor's CI high, below them when its CI high is below the best floor's CI low.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from wmprobe import analysis as A

SMALL_TEST_EPISODES = 20   # fewer test episodes than this: the report warns to read the CIs before the ranks
REFERENCES = A.FLOOR_FAMILIES + (A.CEILING, A.STATE)

# The paper's Table 1 as reported (LIBERO task-OOD R2, frozen -> +ID; docs/paper.md)
PAPER_TABLE1 = {"V-JEPA 2 L": (0.40, 0.85), "V-JEPA 2.1 B": (0.44, 0.82), "VideoMAE L": (0.46, 0.75),
                "LAPA latent-action": (0.41, 0.51), "pixel diffusion": (0.43, 0.57), "Web-DINO L": (-0.01, 0.16),
                "SigLIP 2 L": (0.05, 0.17), "SDXL VAE": (-0.55, -0.41), "Cosmos tokenizer": (-0.36, -0.29),
                "shortcut-forcing dynamics": (-0.04, -0.04)}
# the paper's model that a family stands for (zoo families and real checkpoints); unlisted families are not compared
PAPER_COUNTERPART = {"vjepa": "V-JEPA 2 L", "vjepa2": "V-JEPA 2 L", "video-jepa": "V-JEPA 2 L",
                     "videomae": "VideoMAE L", "video-mae": "VideoMAE L", "diffusion": "pixel diffusion",
                     "image-ssl": "Web-DINO L", "webdino": "Web-DINO L", "web-dino": "Web-DINO L",
                     "dinov2": "Web-DINO L", "dinov3": "Web-DINO L", "siglip": "SigLIP 2 L", "siglip2": "SigLIP 2 L",
                     "vae": "SDXL VAE", "dynamics": "shortcut-forcing dynamics"}
PAPER_UNCHANGED = 0.01     # a paper frozen -> +ID change smaller than this counts as "no change"


def ci_separated(a_lo: float, a_hi: float, b_lo: float, b_hi: float) -> bool:
    """True when the intervals [a_lo, a_hi] and [b_lo, b_hi] do not overlap (False when any bound is NaN)."""
    v = np.array([a_lo, a_hi, b_lo, b_hi], float)
    return bool(np.isfinite(v).all() and (v[0] > v[3] or v[2] > v[1]))


def _ci(r: pd.Series) -> tuple[float, float]:
    return float(r.get("r2_ci_low", np.nan)), float(r.get("r2_ci_high", np.nan))


def ranked(s: pd.DataFrame) -> pd.DataFrame:
    """``s`` sorted by R2 descending, ties by label: the order tiers and adjacent pairs use."""
    return s.assign(_neg=-s["r2"].astype(float)).sort_values(["_neg", "label"], kind="stable").drop(columns="_neg")


def tiers(s: pd.DataFrame, *, references: bool = False) -> pd.Series:
    """Tier number (1 = best) per row of ``s`` (index kept), by the rule in the module doc, over the encoders
    under study; the floors, the ceiling and the state rows get NaN unless ``references``."""
    out, tier, top_low = {}, 0, np.nan
    cand = s if references else s[roles(s) == "encoder"]
    for idx, r in ranked(cand).iterrows():
        lo, hi = _ci(r)
        if tier == 0 or (np.isfinite(hi) and np.isfinite(top_low) and hi < top_low):
            tier, top_low = tier + 1, lo
        out[idx] = tier
    return pd.Series(out, dtype=float).reindex(s.index)


def adjacent_pairs(s: pd.DataFrame) -> list[dict[str, Any]]:
    """Each encoder against the next one down the ranking: R2 difference and whether the CIs separate them."""
    r = ranked(s).reset_index(drop=True)
    return [{"a": r.loc[i, "label"], "b": r.loc[i + 1, "label"], "diff": float(r.loc[i, "r2"] - r.loc[i + 1, "r2"]),
             "separated": ci_separated(*_ci(r.loc[i]), *_ci(r.loc[i + 1]))} for i in range(len(r) - 1)]


def roles(s: pd.DataFrame) -> pd.Series:
    """'floor', 'ceiling', 'state' or 'encoder' per row."""
    role = pd.Series("encoder", index=s.index)
    for name, fams in (("floor", A.FLOOR_FAMILIES), ("ceiling", A.CEILING), ("state", A.STATE)):
        role[A.is_family(s, fams)] = name
    return role


def against_floors(s: pd.DataFrame) -> dict[str, list[str]]:
    """The encoders (not floors, ceilings or state) above the floors, not separated from them, or below."""
    role = roles(s)
    floors, enc = s[role == "floor"], ranked(s[role == "encoder"])
    if floors.empty:
        return {}
    top = floors.sort_values("r2", ascending=False).iloc[0]
    fl_hi = float(floors["r2_ci_high"].max()) if "r2_ci_high" in floors else np.nan
    out: dict[str, list[str]] = {"above": [], "not_separated": [], "below": []}
    for _, r in enc.iterrows():
        lo, hi = _ci(r)
        if np.isfinite(lo) and np.isfinite(fl_hi) and lo > fl_hi:
            out["above"].append(r["label"])
        elif np.isfinite(hi) and hi < float(top.get("r2_ci_low", np.nan)):
            out["below"].append(r["label"])
        else:
            out["not_separated"].append(r["label"])
    return out


def id_effects(s: pd.DataFrame) -> pd.DataFrame:
    """One row per +ID encoder whose frozen twin (same ``encoder``, ``id_weight`` 0) was measured: both R2 and
    CIs, ``gain``, ``raised`` (gain > 0) and ``separated`` (the two CIs do not overlap)."""
    frozen = s[s["id_weight"] == 0].set_index("encoder")
    rows = []
    for _, r in s[s["id_weight"] > 0].iterrows():
        if r["encoder"] not in frozen.index:
            continue
        f = frozen.loc[r["encoder"]]
        rows.append({"encoder": r["encoder"], "family": r.get("family", ""), "id_weight": float(r["id_weight"]),
                     "frozen_r2": float(f["r2"]), "frozen_ci": list(_ci(f)), "id_r2": float(r["r2"]),
                     "id_ci": list(_ci(r)), "gain": float(r["r2"] - f["r2"]), "raised": bool(r["r2"] > f["r2"]),
                     "separated": ci_separated(*_ci(f), *_ci(r))})
    return pd.DataFrame(rows)


def paper_table1(effects: pd.DataFrame) -> dict[str, Any]:
    """This study's frozen -> +ID per family beside the paper's Table 1 as reported (``PAPER_COUNTERPART``).

    Per matched family: the paper's numbers and direction (``raised`` / ``lowered``, ``unchanged`` for a change
    under ``PAPER_UNCHANGED``), ours (direction by sign, ``separated``: the CIs do not overlap) and
    ``agreement``: ``agrees`` (same direction and CI-separated, or the paper unchanged and ours not separated),
    ``same direction, not CI-separated``, or ``disagrees``. ``kendall_tau_frozen``: Kendall tau between the
    paper's frozen R2 and ours over the matched families (with >= 3 distinct paper models)."""
    from scipy.stats import kendalltau
    rows = []
    for _, e in effects.iterrows() if not effects.empty else ():
        model = PAPER_COUNTERPART.get(str(e["family"]))
        if model is None:
            continue
        pf, pi = PAPER_TABLE1[model]
        paper_dir = "unchanged" if abs(pi - pf) < PAPER_UNCHANGED else ("raised" if pi > pf else "lowered")
        here = "raised" if e["raised"] else "lowered"
        sep = bool(e["separated"])
        if (here == paper_dir and sep) or (paper_dir == "unchanged" and not sep):
            agreement = "agrees"
        elif here == paper_dir:
            agreement = "same direction, not CI-separated"
        else:
            agreement = "disagrees"
        rows.append({"family": e["family"], "encoder": e["encoder"], "paper_model": model, "paper_frozen": pf,
                     "paper_id": pi, "paper": paper_dir, "frozen_r2": e["frozen_r2"], "id_r2": e["id_r2"],
                     "here": here, "separated": sep, "agreement": agreement})
    out: dict[str, Any] = {"families": rows}
    if len({r["paper_model"] for r in rows}) >= 3:
        tau = kendalltau([r["paper_frozen"] for r in rows], [r["frozen_r2"] for r in rows]).statistic
        out["kendall_tau_frozen"] = float(tau) if np.isfinite(tau) else None
    return out


def controls(s: pd.DataFrame) -> dict[str, Any]:
    """The largest shuffled-pairs and single-frame control R2 over encoders (with the encoder)."""
    out: dict[str, Any] = {}
    for col, key in (("shuffled_r2", "shuffled"), ("single_r2", "single")):
        if col in s and s[col].notna().any():
            r = s.loc[s[col].astype(float).idxmax()]
            out[key] = {"max": float(r[col]), "label": r["label"]}
    return out


def _reasons(ev: Any) -> str:
    """A group's reasons in an audit's evidence (``reasons`` list, or one ``reason`` / ``why``)."""
    if not isinstance(ev, dict):
        return ""
    r = ev.get("reasons")
    if isinstance(r, (list, tuple)):
        return "; ".join(map(str, r))
    return str(ev.get("reason") or ev.get("why") or "")


def _left_out(a: dict) -> dict[str, str]:
    """Left-out groups with their reasons from a headline / audit entry, whatever of the usual shapes it has."""
    out: dict[str, str] = {}
    for key in ("left_out", "excluded"):
        v = a.get(key)
        if isinstance(v, dict):
            out.update({str(g): str(r or "") for g, r in v.items()})
        elif isinstance(v, list):
            for x in v:
                if isinstance(x, dict) and "group" in x:
                    out[str(x["group"])] = str(x.get("reason", ""))
                elif isinstance(x, str):
                    out.setdefault(x, "")
    heads = set(a.get("headline_groups") or [])
    for g, ev in (a.get("groups") or {}).items() if isinstance(a.get("groups"), dict) else ():
        if heads and g not in heads:
            out.setdefault(str(g), _reasons(ev))
    return out


def _find(cfg: dict, key: str) -> Any:
    """``key`` in config.yaml: under ``config`` (where studies write it) or at the top level."""
    inner: dict[Any, Any] = cfg["config"] if isinstance(cfg.get("config"), dict) else {}
    return inner.get(key, cfg.get(key))


def audit_table(a: dict, headline: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per group of an action-space audit (``wmprobe.data.audit``): its evidence and verdict, and
    whether the headline averages it (``headline``: the study's headline groups; default the audit's own)."""
    groups = a.get("groups") if isinstance(a, dict) else None
    heads = set(headline if headline is not None else (a.get("headline_groups") or []))
    rows = []
    for g, ev in (groups or {}).items():
        if not isinstance(ev, dict):
            continue
        rows.append({"group": g, "headline": g in heads, "axes": ", ".join(map(str, ev.get("axes") or [])),
                     "var_share": ev.get("var_share"), "constant_on_test": ev.get("constant_on_test"),
                     "state_ceiling_r2": ev.get("state_ceiling_r2"), "image_px_per_k": ev.get("image_px_per_k"),
                     "identifiable": ev.get("identifiable"), "reasons": _reasons(ev)})
    return rows


def data_limits(cfg: dict, dataset: str) -> dict[str, Any]:
    """What the data cannot tell, from config.yaml: the headline groups and where they came from (``headline``:
    the study's resolution; ``audit``: the action-space audit's evidence), every left-out group with its reason
    (the audit's own reasons where it judged the group, else the resolution's), the groups kept in the headline
    although the audit found them unidentifiable, the leakage check and the zoo's convergence
    (``zoo_convergence``; absent keys: not checked)."""
    out: dict[str, Any] = {}
    head, audit = _find(cfg, "headline"), _find(cfg, "audit")
    h = head.get(dataset) if isinstance(head, dict) else None
    a = audit.get(dataset) if isinstance(audit, dict) else None
    h = h if isinstance(h, dict) else None
    a = a if isinstance(a, dict) else None
    if h or a:
        heads = (h or a or {}).get("headline_groups")
        heads = list(heads) if isinstance(heads, (list, tuple)) else []
        groups: dict[Any, Any] = (a or {})["groups"] if isinstance((a or {}).get("groups"), dict) else {}
        source = (h or {}).get("source", "audit" if a else None)
        resolved, judged = (_left_out(h) if h else {}), (_left_out(a) if a else {})
        left = {}
        for g in list(resolved) + [g for g in judged if g not in resolved and g not in heads]:
            said = resolved.get(g) or judged.get(g, "")
            found = _reasons(groups.get(g)) if (groups.get(g) or {}).get("identifiable") is False else ""
            if found and said and source not in ("audit", None) and found not in said:
                left[g] = f"{said}; the audit also found: {found}"
            else:
                left[g] = found or said
        kept = {g: _reasons(groups[g]) for g in heads if isinstance(groups.get(g), dict)
                and groups[g].get("identifiable") is False}
        out["audit"] = {"headline_groups": heads, "source": source,
                        "rule": (a or {}).get("rule") or (h or {}).get("rule"), "left_out": left,
                        "kept_unidentifiable": kept, "fallback_reason": (a or {}).get("fallback_reason"),
                        "groups": audit_table(a, heads) if a else []}
    leak = _find(cfg, "leakage")
    if isinstance(leak, dict) and "ok" in leak:
        out["leakage"] = {"ok": bool(leak["ok"]), "problems": [str(p) for p in leak.get("problems") or []],
                          "checked": leak.get("checked", {})}
    run = _find(cfg, "run")
    zoo = run.get("zoo") if isinstance(run, dict) else None
    plateau = zoo.get("plateau") if isinstance(zoo, dict) else None
    if isinstance(plateau, dict) and plateau:
        out["convergence"] = zoo_convergence(plateau)
    return out


def zoo_convergence(plateau: dict) -> dict[str, Any]:
    """Did the zoo's training losses flatten? From config.yaml ``run.zoo.plateau`` (``{model: plateau of its
    loss, with "id": plateau of its +ID term}``, ``zoo.plateau``): ``models`` counted, ``flat`` (every loss
    of the model flattened) and ``not_flat``, one entry per loss that did not: ``model``, ``loss`` (``family``:
    the model's own loss, the ceiling's being its +ID loss; ``+ID``: the +ID term), ``tail_share``, ``trend``.
    A model whose loss still falls is measured at this budget, not at what its family can reach."""
    not_flat = []
    models = {str(m): e for m, e in plateau.items() if isinstance(e, dict)}
    for m, e in models.items():
        for loss, p in (("family", e), ("+ID", e.get("id"))):
            if isinstance(p, dict) and p.get("plateaued") is False:
                not_flat.append({"model": m, "loss": loss, "tail_share": p.get("tail_share"),
                                 "trend": p.get("trend")})
    return {"models": len(models), "flat": len(models) - len({x["model"] for x in not_flat}),
            "not_flat": not_flat}


def headline_facts(df: pd.DataFrame, dataset: str) -> dict[str, Any]:
    """The headline cell of ``dataset``: k, probe, split, number of test episodes and of seeds, headline groups."""
    d = A.headline_cells(df, dataset=dataset)
    if d.empty:
        return {}
    ep = d["n_test_episodes"].astype(float) if "n_test_episodes" in d else pd.Series(dtype=float)
    ep = ep[ep > 0]
    groups = sorted({g for g in d.get("headline_groups", pd.Series(dtype=str)).fillna("").astype(str) if g})
    return {"k": int(d["k"].iloc[0]), "probe": str(d["probe"].iloc[0]),
            "split": str(d["split"].iloc[0]) if "split" in d else "",
            "test_episodes": int(ep.max()) if not ep.empty else None, "seeds": int(d["seed"].nunique()),
            "headline_groups": groups}


def dataset_verdict(df: pd.DataFrame, s: pd.DataFrame, cfg: dict, dataset: str) -> dict[str, Any]:
    """Everything the verdict states for one dataset (``s``: its summary rows, with ``shuffled_r2`` /
    ``single_r2`` where measured); stored in findings.json under ``per_dataset[dataset]["verdict"]``."""
    if s.empty:
        return {}
    t = tiers(s)
    role = roles(s)
    t = t[role == "encoder"]
    refs: dict[str, Any] = {}
    for name in ("floor", "ceiling", "state"):
        for _, r in s[role == name].iterrows():
            refs.setdefault(name, []).append({"label": r["label"], "r2": float(r["r2"]), "ci": list(_ci(r))})
    effects = id_effects(s[role == "encoder"])
    facts = headline_facts(df, dataset)
    norm = {}
    if "r2_norm" in s:
        norm = {r["label"]: float(r["r2_norm"]) for _, r in ranked(s[role == "encoder"]).iterrows()
                if np.isfinite(r["r2_norm"])}
    return {"headline": facts,
            "small_data": bool(facts.get("test_episodes") is not None
                               and facts["test_episodes"] < SMALL_TEST_EPISODES),
            "references": refs, "r2_norm": norm, "against_floors": against_floors(s),
            "tiers": [ranked(s.loc[t.index[t == i]])["label"].tolist() for i in sorted(t.dropna().unique())],
            "adjacent": adjacent_pairs(s[role == "encoder"]), "id": effects.to_dict("records"),
            "paper_table1": paper_table1(effects), "controls": controls(s),
            "limits": data_limits(cfg, dataset)}
