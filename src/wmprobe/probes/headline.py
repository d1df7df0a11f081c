"""Which action groups the headline ``r2`` averages, and why (docs/protocol.md, "Headline groups").

No silent choice: the groups come from, in this order,

1. the user: a study's ``headline_groups:`` (a list for every dataset, or ``{dataset: [groups]}``),
   ``wmprobe probe --headline-groups``, ``wmprobe.probe(headline_groups=...)``;
2. the action-space audit of the dataset under the study's split at the headline k (``wmprobe.data.audit``:
   its ``headline_groups``, the groups the images and the state can show);
3. every group the dataset declares.

``resolve`` returns ``{"headline_groups": [...], "source": "config" | "audit" | "all", "rule": sentence,
"left_out": {group: reason}, "k": k}``: every declared group that is not in the headline is named with the
reason it was left out. It goes into config.yaml (``headline: {dataset: ...}``, beside the full audit under
``audit: {dataset: ...}``), and every row's ``headline_groups`` column says what its ``r2`` averaged.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from wmprobe.probes.core import checked_headline, ordered_groups

SOURCES = ("config", "audit", "all")


def declared(groups: Mapping[str, Sequence[int]]) -> list[str]:
    """The groups with at least one dim, in canonical order (translation, rotation, gripper, others)."""
    return ordered_groups([g for g, idx in groups.items() if len(idx)])


def headline_k(ks: Sequence[int]) -> int:
    """The k the headline is read at: 4 when measured, else the smallest measured k (as the report)."""
    from wmprobe.analysis import headline_k as _k
    return _k(ks)


def _audit_reason(audit: Mapping[str, Any], group: str) -> str:
    """Why the audit left ``group`` out: its own words where it gives them, else its rule."""
    ev = (audit.get("groups") or {}).get(group)
    if isinstance(ev, Mapping):
        if ev.get("reasons"):
            return "; ".join(map(str, ev["reasons"]))
        for key in ("reason", "why"):
            if ev.get(key):
                return str(ev[key])
    rule = audit.get("rule")
    return f"not identifiable by the audit's rule ({rule})" if rule else "left out by the action-space audit"


def resolve(groups: Mapping[str, Sequence[int]], explicit: Sequence[str] | None = None,
            audit: Mapping[str, Any] | None = None, *, k: int | None = None, what: str = "dataset",
            explicit_from: str = "the study's headline_groups") -> dict[str, Any]:
    """The headline groups of one dataset with ``groups`` (its action groups) and where they came from.

    ``explicit``: the user's choice (ProbeError naming ``what`` and the groups it has when one is not a group
    of it); ``audit``: the audit's result for this dataset (its ``headline_groups`` are used when the user named
    none; groups the dataset lacks are dropped with a reason)."""
    have = declared(groups)
    if explicit is not None:
        chosen, source, rule = checked_headline(explicit, have, what, of="it"), "config", f"named in {explicit_from}"
        why: Callable[[str], str] = lambda g: f"not named in {explicit_from}"  # noqa: E731
    elif audit is not None and [g for g in audit.get("headline_groups") or () if g in have]:
        chosen, source = ordered_groups([g for g in audit["headline_groups"] if g in have]), "audit"
        rule = "the action-space audit: " + str(audit.get("fallback_reason") if audit.get("fallback")
                                                else audit.get("rule") or "its rule")
        why = lambda g: _audit_reason(audit, g)  # noqa: E731
    else:
        chosen, source = have, "all"
        rule = "every group of the dataset (no audit choice)" if have else "every target dim (no groups)"
        why = lambda g: ""  # noqa: E731
    return {"headline_groups": chosen, "source": source, "rule": rule,
            "left_out": {g: why(g) for g in have if g not in chosen}, **({"k": int(k)} if k is not None else {})}


def run_audit(store: Any, split: Any, k: int, explicit: Sequence[str] | None = None) -> dict[str, Any]:
    """The action-space audit of ``store`` under ``split`` at ``k`` (``wmprobe.data.audit.audit``)."""
    from wmprobe.data.audit import audit
    return audit(store, split, k=k, headline=list(explicit) if explicit is not None else None)


def describe(name: str, res: Mapping[str, Any]) -> str:
    """One line for the user: ``dyn: headline r2 averages translation, gripper (audit); left out: rotation
    (reason)``."""
    how = {"config": "as named", "audit": "chosen by the action-space audit",
           "all": "every group of the dataset"}[res["source"]]
    line = f"{name}: headline r2 averages {', '.join(res['headline_groups']) or 'every target dim'} ({how})"
    if res["left_out"]:
        line += "; left out: " + "; ".join(f"{g} ({r})" if r else g for g, r in res["left_out"].items())
    return line


def for_dataset(value: Any, dataset: str) -> tuple[str, ...] | None:
    """The user's headline groups for ``dataset`` from a checked ``headline_groups`` value (None: not named)."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return tuple(value[dataset]) if dataset in value else None
    return tuple(value)


def for_study(cfg: Any, datasets: Mapping[str, tuple[Any, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``({dataset: headline}, {dataset: audit})`` of a resolved study (``datasets``: name -> (store, split)):
    the audit of every dataset under its split at the study's headline k, and the groups from the config's
    ``headline_groups``, else the audit, else every group (``resolve``)."""
    k = headline_k(cfg.ks)
    heads, audits = {}, {}
    for name, (store, split) in datasets.items():
        explicit = for_dataset(cfg.headline_groups, name)
        audits[name] = run_audit(store, split, k, explicit)
        heads[name] = resolve(store.action_groups, explicit, audits[name], k=k, what=f"dataset '{name}'")
    return heads, audits
