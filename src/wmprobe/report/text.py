"""The report's sentences: the verdict paragraph and the findings list, each over numbers computed by
``wmprobe.analysis`` / ``wmprobe.verdict`` (findings.json holds the same numbers); nothing is written in
advance. Every value is HTML-escaped here."""
from __future__ import annotations

from typing import Any

import numpy as np

from wmprobe import analysis as A
from wmprobe.report.html import esc
from wmprobe.verdict import SMALL_TEST_EPISODES

SHUFFLED_LIMIT = 0.05   # a shuffled-pairs control above this means the probe is leaking (docs/protocol.md)
SPLITS = {"task": "held-out tasks (task-OOD split)", "episode": "held-out episodes of the training tasks"}
PAPER_CORRUPTIONS_SHOWN = "clean / noise 0.15 / blur 11"


def _n(x: Any, d: int = 2) -> str:
    try:
        return f"{float(x):.{d}f}" if np.isfinite(float(x)) else "n/a"
    except (TypeError, ValueError):
        return "n/a"


def _ci(ci: Any) -> str:
    return f"[{_n(ci[0])}, {_n(ci[1])}]" if ci else ""


def _list(xs: list[str], empty: str = "none") -> str:
    return ", ".join(esc(x) for x in xs) if xs else empty


def _groups(h: dict[str, Any]) -> str:
    g = [x for x in h.get("headline_groups") or [] if x]
    if not g:
        return "R2 averages every action dim (these records name no headline groups)"
    if g == ["all-dims"]:
        return "R2 averages every action dim (the data name no axis groups)"
    return "R2 is the mean over the headline group(s) " + esc(", ".join(x.replace("+", ", ") for x in g))


def _checked(c: dict[str, Any]) -> str:
    """What the leakage check compared, in words (``study.leakage`` counts)."""
    parts = []
    if c.get("test_episodes") is not None:
        parts.append(f"{c['test_episodes']} test episodes")
    names = c.get("test_task_names")
    if isinstance(names, (list, tuple)) and names:
        parts.append("held-out tasks " + ", ".join(map(str, names)))
    pool = c.get("pool")
    if isinstance(pool, dict) and pool.get("episodes") is not None:
        parts.append(f"against the {pool['episodes']}-episode pretraining pool")
    if c.get("zoo_checkpoints"):
        parts.append(f"{c['zoo_checkpoints']} zoo checkpoints")
    return esc("; ".join(parts))


def small_data_sentence(n_test: int | None) -> str:
    """The warning for small test sets (fewer than ``SMALL_TEST_EPISODES`` episodes), else ''."""
    if n_test is None or n_test >= SMALL_TEST_EPISODES:
        return ""
    return (f"With only {n_test} test episodes (fewer than {SMALL_TEST_EPISODES}), the CIs are wide: "
            f"read the CIs before the ranks.")


def verdict_sentences(v: dict[str, Any], ds: str) -> list[str]:
    """The verdict for one dataset (``verdict.dataset_verdict`` output), as sentences of HTML."""
    h, out = v.get("headline", {}), []
    if h:
        split = SPLITS.get(h.get("split", ""), esc(h.get("split", "")) or "an unnamed split")
        eps = (f"{h['test_episodes']} test episodes" if h.get("test_episodes")
               else "an unrecorded number of test episodes")
        out.append(f"<b>{esc(ds)}</b>, tested on {split}: headline k = {h['k']}, probe {esc(h['probe'])}, {eps}, "
                   f"{h['seeds']} seed(s); {_groups(h)}.")
    refs = v.get("references", {})
    floors = refs.get("floor", [])
    fl = v.get("against_floors", {})
    if floors:
        shown = ", ".join(f"{esc(f['label'])} {_n(f['r2'])} {_ci(f['ci'])}" for f in floors)
        out.append(f"Above the floors ({shown}) with CIs that do not overlap: {_list(fl.get('above', []))}; "
                   f"not separated from them: {_list(fl.get('not_separated', []))}"
                   + (f"; below them: {_list(fl['below'])}" if fl.get("below") else "") + ".")
    else:
        out.append("No floor (pixels, random-init) was measured: no encoder can be said to clear one.")
    for name, what in (("ceiling", "The ceiling (the trunk trained on inverse dynamics alone)"),
                       ("state", "The state ceiling (the same probe on the robot's own state)")):
        for c in refs.get(name, []):
            out.append(f"{what} reaches {_n(c['r2'])} {_ci(c['ci'])}.")
    if not refs.get("ceiling"):
        out.append("No ceiling was measured, so r2_norm is undefined.")
    elif floors and max(c["r2"] for c in refs["ceiling"]) - max(f["r2"] for f in floors) < A.MIN_SPAN:
        out.append(f"The ceiling does not clear the best floor by {A.MIN_SPAN} R2, so r2_norm is undefined: a trunk "
                   f"trained for this very probe reads no more than the floors here.")
    elif v.get("r2_norm"):
        best, val = next(iter(v["r2_norm"].items()))
        out.append(f"The best encoder, {esc(best)}, covers {val:.0%} of the way from the best floor to the "
                   f"ceiling (r2_norm {val:.2f})." if val <= 1 else
                   f"The best encoder, {esc(best)}, scores above the ceiling (r2_norm {val:.2f}): the ceiling, "
                   f"trained at this budget, is not an upper bound here.")
    tiers = [t for t in v.get("tiers", []) if t]
    if len(tiers) > 1:
        shown = " &gt; ".join("{" + _list(t) + "}" for t in tiers)
        out.append(f"{len(tiers)} tiers whose tops are CI-separated: {shown}; within a tier the order is not "
                   f"established.")
    elif tiers and len(tiers[0]) > 1:
        out.append("No encoder's CI separates it from the best one: these data do not establish a ranking.")
    ids = v.get("id", [])
    if ids:
        up = [e for e in ids if e["raised"]]
        down = [e for e in ids if not e["raised"]]
        sep = lambda es: [f"{e['encoder']} {e['gain']:+.2f}" for e in es if e["separated"]]  # noqa: E731
        parts = [f"raised R2 for {len(up)} (CI-separated: {_list(sep(up))})" if up else "",
                 f"lowered {'it' if up else 'R2'} for {len(down)} (CI-separated: {_list(sep(down))})" if down else ""]
        out.append(f"Of {len(ids)} famil{'y' if len(ids) == 1 else 'ies'} measured frozen and +ID, +ID "
                   + " and ".join(p for p in parts if p) + ".")
    c = v.get("controls", {})
    if "shuffled" in c:
        sh = c["shuffled"]
        bad = sh["max"] > SHUFFLED_LIMIT
        out.append(f"<span class='{'bad' if bad else 'good'}'>The shuffled-pairs control is at most {_n(sh['max'])} "
                   f"({esc(sh['label'])}): " + ("above 0.05, the probe may be leaking" if bad else
                                                "no sign that the probe reads the action from one frame's cues")
                   + ".</span>")
    if "single" in c:
        out.append(f"A single frame predicts at most R2 {_n(c['single']['max'])} ({esc(c['single']['label'])}).")
    lim = v.get("limits", {})
    if "audit" in lim:
        a = lim["audit"]
        left, kept = a.get("left_out") or {}, a.get("kept_unidentifiable") or {}
        by = {"audit": " by the action-space audit", "config": " by the study's headline_groups"}.get(
            a.get("source") or "", "")
        if left:
            out.append(f"What the data cannot tell: left out of the headline{by}: "
                       + "; ".join(f"{esc(g)} ({esc(r) or 'no reason recorded'})" for g, r in left.items()) + ".")
        elif not kept:
            out.append("Every axis group is in the headline" + (" (the audit judged each identifiable)"
                                                                 if a.get("groups") else "") + ".")
        if kept:
            out.append("<span class='bad'>In the headline although the audit found it unidentifiable: "
                       + "; ".join(f"{esc(g)} ({esc(r)})" for g, r in kept.items())
                       + (f" ({esc(a['fallback_reason'])})" if a.get("fallback_reason") else "") + ".</span>")
    else:
        out.append("No action-space audit was recorded: whether every scored axis can be seen is not known.")
    if "leakage" in lim:
        lk = lim["leakage"]
        what = _checked(lk.get("checked") or {})
        out.append(("The leakage check found no test task or test episode in any training data"
                    + (f" ({what})" if what else "") + ".") if lk["ok"] else
                   "<span class='bad'>The leakage check FAILED: " + esc("; ".join(lk["problems"])) + ".</span>")
    else:
        out.append("No leakage check was recorded.")
    if "convergence" in lim:
        out.append(convergence_sentence(lim["convergence"]))
    small = small_data_sentence(h.get("test_episodes"))
    if small:
        out.append(esc(small))
    return out


def convergence_sentence(cv: dict[str, Any]) -> str:
    """The zoo's convergence (``verdict.zoo_convergence``) in words: which losses still changed at the end."""
    n, flat, bad = cv.get("models", 0), cv.get("flat", 0), cv.get("not_flat") or []
    if not bad:
        return (f"Zoo training: the losses of all {n} models flattened by the end of their budget." if n != 1 else
                "Zoo training: the model's losses flattened by the end of its budget.")
    what = "; ".join(f"{esc(x['model'])} ({esc(x['loss'])} loss {esc(x.get('trend') or 'not flat')}: "
                     f"{_n(x.get('tail_share'))} of its drop came in the last 20 % of steps)" for x in bad)
    who = "That model is" if len({x["model"] for x in bad}) == 1 else "Those models are"
    return (f"<span class='bad'>Zoo training: the losses of {flat} of {n} models flattened; not yet: {what}. "
            f"{who} measured at this budget, not at what their family can reach.</span>")


def _yes(v: Any) -> str:
    return "" if v is None else ("yes" if v else "no")


def audit_html(lim: dict[str, Any]) -> str:
    """The action-space audit of one dataset: one row per axis group with its evidence, then the rule."""
    a = lim.get("audit") or {}
    if not a.get("groups"):
        return ""
    from wmprobe.report.html import table_html
    cols = ["group", "in headline", "axes", "test/train variance", "constant on test", "state ceiling R2",
            "image px over k", "identifiable", "reasons"]
    rows = [[r["group"], _yes(r["headline"]), r["axes"], _n(r["var_share"]), _yes(r["constant_on_test"]),
             _n(r["state_ceiling_r2"]), _n(r["image_px_per_k"]), _yes(r["identifiable"]), r["reasons"]]
            for r in a["groups"]]
    src = {"audit": "chosen by the audit's rule", "config": "named in the study's config (headline_groups)",
           "all": "every group (no audit choice)"}.get(a.get("source") or "", "")
    return ("<h3>Action-space audit</h3>" + table_html(cols, rows, [False] * len(cols), css_class="plain")
            + f"<p class='note'>Headline groups: {esc(', '.join(a.get('headline_groups') or []))}"
            + (f" ({esc(src)})" if src else "") + (f". Rule: {esc(a['rule'])}" if a.get("rule") else "")
            + ". Variance: the test episodes' target variance over the train episodes' (R2 is unstable below "
              "0.25).</p>")


def verdict_html(per_dataset: dict[str, dict[str, Any]], main: str, control: list[str] | tuple = ()) -> str:
    """``<p id="verdict">``: the main dataset's verdict in full, one sentence for each other dataset, then the
    ``control`` sentences (HTML, ``report.control``: does action R2 predict closed-loop success?)."""
    v = per_dataset.get(main, {}).get("verdict", {})
    parts = verdict_sentences(v, main) if v else ["Too few cells for a verdict."]
    for ds, d in per_dataset.items():
        o = d.get("verdict", {})
        if ds == main or not o:
            continue
        fl, tiers = o.get("against_floors", {}), o.get("tiers", [])
        best = tiers[0][0] if tiers and tiers[0] else "n/a"
        parts.append(f"On <b>{esc(ds)}</b>: best {esc(best)}; {len(fl.get('above', []))} encoder(s) above the "
                     f"floors with non-overlapping CIs; {len(tiers)} tier(s)."
                     + (" " + esc(small_data_sentence(o.get("headline", {}).get("test_episodes")))
                        if o.get("small_data") and esc(small_data_sentence(o.get("headline", {}).get(
                            "test_episodes"))) not in " ".join(parts) else ""))
    parts.extend(control)
    return "<p id=\"verdict\" class=\"verdict\">" + " ".join(parts) + "</p>"


def findings_html(f: dict[str, Any]) -> str:
    """Plain sentences over the computed numbers; each states what was measured, none is written in advance."""
    items = []
    for ds, d in f.get("per_dataset", {}).items():
        v = d.get("verdict", {})
        if "best" in d:
            b = d["best"]
            s = f"<b>{esc(ds)}</b>: best {esc(b['label'])}, R2 {_n(b['r2'])} [{_n(b['ci'][0])}, {_n(b['ci'][1])}]"
            if "best_floor" in d:
                fl = d["best_floor"]
                s += (f"; best floor {esc(fl['label'])} {_n(fl['r2'])}; {len(d['above_floor'])} encoder(s) with a "
                      f"CI entirely above that floor's R2")
            items.append(s + ".")
        adj = v.get("adjacent", [])
        if adj:
            sep = [f"{esc(p['a'])} &gt; {esc(p['b'])}" for p in adj if p["separated"]]
            items.append(f"{esc(ds)}: of {len(adj)} neighbouring pairs in the ranking, {len(sep)} are CI-separated"
                         + (f" ({', '.join(sep)})" if sep else "") + "; the others are not.")
        if "fidelity" in d:
            fi = d["fidelity"]
            items.append(f"{esc(ds)}: fidelity vs action, Spearman rho(PSNR, R2) = {_n(fi['spearman_psnr_r2'])} "
                         f"over {fi['n']} encoders; highest PSNR: {esc(fi['highest_psnr'])} (rank "
                         f"{fi['highest_psnr_r2_rank']} by R2); Pareto frontier: {esc(', '.join(fi['on_front']))}.")
        if "id" in d:
            i = d["id"]
            s = (f"{esc(ds)}: +ID raised clean R2 for {i['raised']} of {i['families']} families (mean change "
                 f"{_n(i['mean_gain'], 3)})")
            if "mean_drop_frozen" in i:
                s += (f"; mean R2 drop under corruption {_n(i['mean_drop_frozen'])} frozen vs "
                      f"{_n(i['mean_drop_id'])} +ID")
            items.append(s + ".")
        for e in v.get("id", []):
            items.append(f"{esc(ds)}: {esc(e['encoder'])} frozen {_n(e['frozen_r2'])} {_ci(e['frozen_ci'])} -> "
                         f"+ID (id_weight {e['id_weight']:g}) {_n(e['id_r2'])} {_ci(e['id_ci'])}: "
                         f"{'raised' if e['raised'] else 'lowered'}, "
                         f"{'CI-separated' if e['separated'] else 'not CI-separated'}.")
        t1 = v.get("paper_table1", {})
        if t1.get("families"):
            rows = "; ".join(f"{esc(r['family'])} ~ {esc(r['paper_model'])}: paper {_n(r['paper_frozen'])} -> "
                             f"{_n(r['paper_id'])} ({r['paper']}), here {_n(r['frozen_r2'])} -> {_n(r['id_r2'])} "
                             f"({r['here']}{', CI-separated' if r['separated'] else ', not CI-separated'}): "
                             f"{r['agreement']}" for r in t1["families"])
            tau = (f" Kendall tau of the frozen R2, paper vs here: {_n(t1['kendall_tau_frozen'])}."
                   if t1.get("kendall_tau_frozen") is not None else "")
            items.append(f"{esc(ds)}: against the paper's Table 1 as reported (LIBERO task-OOD, frozen -> +ID): "
                         f"{rows}.{tau}")
        for p in d.get("paper_robustness", []):
            n, b = PAPER_CORRUPTIONS_SHOWN, A.PAPER_CORRUPTIONS
            fro = " / ".join(_n(p[f"frozen_{c}"]) for c in ("clean",) + b)
            idv = " / ".join(_n(p[f"id_{c}"]) for c in ("clean",) + b)
            ref = A.PAPER_VJEPA2_ROBUSTNESS
            items.append(f"{esc(ds)}: the paper's +ID robustness pattern on {esc(p['encoder'])} (R2 {n}): frozen "
                         f"{fro} vs +ID (id_weight {p['id_weight']:g}) {idv}; the paper's V-JEPA 2: frozen "
                         f"{' / '.join(f'{x:.2f}' for x in ref['frozen'])} vs +ID "
                         f"{' / '.join(f'{x:.2f}' for x in ref['+ID'])}. "
                         + ("Repeated: +ID loses less R2 under both corruptions." if p["repeats"] else
                            "Not repeated: +ID does not lose less R2 under both corruptions."))
        if "shuffled_max" in d:
            bad = d["shuffled_max"] > SHUFFLED_LIMIT
            items.append(f"<span class='{'bad' if bad else 'good'}'>{esc(ds)}: shuffled-pairs control at most "
                         f"{_n(d['shuffled_max'], 3)}{' (above 0.05: the probe may be leaking)' if bad else ''}"
                         f".</span>")
    for t in f.get("transfer", {}).values():
        items.append(f"Transfer {esc(t['dataset_a'])} vs {esc(t['dataset_b'])}: Spearman rho {_n(t['rho'])} "
                     f"[{_n(t['rho_ci_low'])}, {_n(t['rho_ci_high'])}] over {t['n_encoders']} encoders.")
    if "static_gap" in f:
        g = {r["dataset"]: r["gap"] for r in f["static_gap"]["table"]}
        items.append("Video minus image-SSL R2: " + ", ".join(f"{esc(k)} {_n(v, 3)}" for k, v in g.items()) + ".")
    if not items:
        return "<p>Too few cells for findings.</p>"
    return ("<ul class='findings'>" + "".join(f"<li>{s}</li>" for s in items) + "</ul>"
            "<p class='note'>Computed from the records below (findings.json holds the numbers). CI-separated: "
            "the two 95% CIs (bootstrap over test episodes) do not overlap.</p>")
