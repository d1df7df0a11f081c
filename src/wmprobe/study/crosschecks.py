"""The checks of a study config that relate two or more keys, all here, run after every section's own checks.

Each takes the checker, the (merged) YAML mapping and the ``Facts`` the datasets and encoders sections found,
and reports with ``c.bad`` at the key a user would change:

- ``encoders``: at least one encoder or zoo family;
- ``split`` / ``test_frac``: when every dataset is a store on disk, the study's split made as the run will;
- ``corrupt_datasets`` / ``fidelity_datasets``: names of the study's datasets;
- ``corrupt_train``: something to fit on (a corruption other than clean, on some dataset);
- ``ks``: shorter than the longest episode of each dataset;
- ``layers``: layers every encoder without its own ``layers`` has (where knowable without a model);
- ``device``: available here, unless a cluster executor runs the study elsewhere;
- ``headline_groups``: groups each dataset declares (docs/protocol.md, "Headline groups");
- ``zoo.replicate_weights``: id_weights of the zoo (a weight it does not train would replicate nothing);
- ``control.datasets``: names of the study's datasets (the section's own keys are declared in study/schema.py);
  ``control.replan`` at most ``control.chunk``.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from wmprobe.study.checker import Checker, get
from wmprobe.study.checks import check_device, check_store_splits, study_layers_apply
from wmprobe.study.fields import is_int, is_num
from wmprobe.study.schema import StudyConfig, ZooCfg
from wmprobe.study.sections import Facts

#: keys whose problems do not stop the store split from being tried (opening every store is slow, so with a
#: problem in any other key, the datasets, encoders and zoo among them, the split waits for the next check)
_SPLIT_INDEPENDENT = {"corruptions", "corrupt_datasets", "corrupt_train", "layers", "probes", "ks", "seeds", "probe",
                      "n_boot", "fidelity", "fidelity_preset", "fidelity_datasets", "shard_episodes", "device",
                      "threads", "executor", "control", "headline_groups"}


def _top(where: str) -> str:
    return where.split("[")[0].split(".")[0]


def cross_check(c: Checker, doc: dict[str, Any], facts: Facts) -> dict[str, Any] | None:
    """Run every cross-field check; returns the resolved ``control`` section (None when off)."""
    names = [d.name for d in facts.datasets]
    check_encoders_or_zoo(c, doc)
    check_replicate_weights(c, doc)
    if facts.stores and all(facts.stores.values()) \
            and all(_top(p.where) in _SPLIT_INDEPENDENT for p in c.problems):
        stores = {w: s for w, s in facts.stores.items() if s is not None}
        check_store_splits(c.bad, stores, get(doc, "split", StudyConfig), get(doc, "test_frac", StudyConfig),
                           get(doc, "seed", StudyConfig), get(doc, "test_tasks", StudyConfig))
    check_named_tasks(c, doc, facts)
    check_dataset_names(c, doc, names)
    check_corrupt_train(c, doc)
    check_ks(c, doc, facts.lengths)
    layers = doc.get("layers")
    if isinstance(layers, list):
        study_layers_apply(c.bad, [e.name for e in facts.encoders if e.layers is None], tuple(map(str, layers)))
    executor = doc.get("executor")
    kind = executor.get("kind") if isinstance(executor, dict) else None
    check_device(c.bad, get(doc, "device", StudyConfig), here=kind in (None, "local"))  # cluster nodes have their own
    check_headline_groups(c, doc.get("headline_groups"), facts.groups_of)
    check_control_datasets(c, doc.get("control"), names)
    check_control_replan(c, doc.get("control"))
    from wmprobe.study.control import resolved
    return resolved(doc.get("control"))


def check_control_datasets(c: Checker, control: Any, names: list[str]) -> None:
    """``control.datasets`` (once a list of names) names datasets of the study."""
    datasets = control.get("datasets") if isinstance(control, dict) else None
    if not (isinstance(datasets, list) and datasets and all(isinstance(d, str) for d in datasets)):
        return
    unknown = [d for d in datasets if d not in names]
    if unknown:
        c.bad("control.datasets", f"{unknown} are not datasets of this study ({list(names)})")


def check_control_replan(c: Checker, control: Any) -> None:
    """``control.replan`` (once an integer >= 1) is at most ``control.chunk``: a query returns ``chunk`` actions."""
    if not isinstance(control, dict) or "replan" not in control:
        return
    from wmprobe.study.control import FIELDS
    replan, chunk = control["replan"], control.get("chunk", FIELDS["chunk"])
    if is_int(replan) and is_int(chunk) and 1 <= chunk < replan:
        c.bad("control.replan", f"{replan} is more than control.chunk ({chunk}): each policy query returns chunk "
                                "actions, so replan must be between 1 and chunk")


def check_encoders_or_zoo(c: Checker, doc: dict[str, Any]) -> None:
    zoo = doc.get("zoo") or {}
    if not doc.get("encoders") and not (isinstance(zoo, dict) and zoo.get("families")):
        c.bad("encoders", "name at least one encoder (or zoo families)")


def check_replicate_weights(c: Checker, doc: dict[str, Any]) -> None:
    """``zoo.replicate_weights`` (once a list of numbers) names id_weights that the zoo trains."""
    zoo = doc.get("zoo")
    chosen = zoo.get("replicate_weights") if isinstance(zoo, dict) else None
    weights = get(zoo, "id_weights", ZooCfg)
    if not (isinstance(chosen, list) and isinstance(weights, (list, tuple))):
        return
    known = {float(w) for w in weights if is_num(w)}
    for i, w in enumerate(chosen):
        if is_num(w) and float(w) not in known:
            c.bad(f"zoo.replicate_weights[{i}]", f"{w} is not one of zoo.id_weights {list(weights)}: only "
                                                 "models the zoo trains can have replicates")


def check_dataset_names(c: Checker, doc: dict[str, Any], names: list[str]) -> None:
    """``corrupt_datasets`` and ``fidelity_datasets`` name datasets of the study."""
    for key in ("corrupt_datasets", "fidelity_datasets"):
        val = doc.get(key)
        if isinstance(val, list):
            for i, n in enumerate(val):
                if n not in names:
                    c.bad(f"{key}[{i}]", f"'{n}' is not one of the study's datasets")


def check_corrupt_train(c: Checker, doc: dict[str, Any]) -> None:
    """With ``corrupt_train: true`` there is a corruption other than clean on some dataset."""
    if doc.get("corrupt_train") is not True:
        return
    corruptions = get(doc, "corruptions", StudyConfig)
    if isinstance(corruptions, (list, tuple)) and all(str(s) == "clean" for s in corruptions):
        c.bad("corrupt_train", "is true but `corruptions` names only clean: there is nothing to fit the probe "
                               "on (add a corruption such as noise:0.15, or drop corrupt_train)")
    elif doc.get("corrupt_datasets") == []:
        c.bad("corrupt_train", "is true but `corrupt_datasets` is empty: no dataset is corrupted, so there is "
                               "nothing to fit the probe on")


def check_ks(c: Checker, doc: dict[str, Any], lengths: dict[str, int | None]) -> None:
    """Each k leaves a pair in the longest episode of every dataset whose length is known."""
    ks = get(doc, "ks", StudyConfig)
    if not isinstance(ks, (list, tuple)):
        return
    for i, k in enumerate(ks):
        if not (isinstance(k, int) and not isinstance(k, bool) and k >= 1):
            continue
        for name, longest in lengths.items():
            if longest is not None and k >= longest:
                c.bad(f"ks[{i}]", f"k={k} needs episodes longer than {k} steps, but the longest "
                                  f"episode of dataset '{name}' has {longest}")


def check_headline_groups(c: Checker, value: Any, groups_of: Mapping[str, list[str] | None]) -> None:
    """A study's ``headline_groups:``: a list of group names (for every dataset) or a mapping ``{dataset:
    [groups]}``, each group declared by its dataset(s). ``groups_of``: dataset -> its groups (None when not
    knowable before the run; then the run checks them)."""
    if value is None:
        return

    def check_list(names: Any, where: str, datasets: Sequence[str]) -> None:
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            c.bad(where, f"expected a non-empty list of action group names, got {names!r}")
            return
        for i, n in enumerate(names):
            if n in names[:i]:
                c.bad(f"{where}[{i}]", f"'{n}' is listed twice")
            lacking = [f"dataset '{d}' (it has {', '.join(groups_of[d] or []) or 'no groups'})" for d in datasets
                       if groups_of.get(d) is not None and n not in (groups_of[d] or [])]
            if lacking:
                c.bad(f"{where}[{i}]", f"'{n}' is not an action group of {' nor of '.join(lacking)}")

    if isinstance(value, dict):
        for d, names in value.items():
            if d not in groups_of:
                c.bad(f"headline_groups.{d}", f"'{d}' is not one of the study's datasets "
                                              f"({', '.join(groups_of)})")
            else:
                check_list(names, f"headline_groups.{d}", [d])
    else:
        check_list(value, "headline_groups", list(groups_of))


def check_named_tasks(c: Checker, doc: dict[str, Any], facts: Facts) -> None:
    """``test_tasks`` when every dataset is a pybullet suite of the embedded simulator: each name must be a task
    of some dataset's suite (stores on disk are checked by ``check_store_splits`` as the run splits them;
    Meta-World's task names when its tasks are resolved)."""
    named = doc.get("test_tasks")
    suites = [d.sim for d in facts.datasets if d.sim in ("static", "dynamic") and not d.path]
    if not isinstance(named, list) or not facts.datasets or len(suites) != len(facts.datasets):
        return
    from wmprobe.data.sim.tasks import suite_tasks
    known = sorted({t.name for sim in suites if sim for t in suite_tasks(sim)})
    missing = [t for t in named if t not in known]
    if missing:
        c.bad("test_tasks", f"{missing} are not tasks of any dataset's suite "
                            f"({', '.join(sorted({str(d.sim) for d in facts.datasets}))}: {', '.join(known)})")
