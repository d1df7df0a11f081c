"""Features -> probe cells -> rows: the step shared by study tasks (wmprobe.study.tasks) and `wmprobe probe`.

A cell is (encoder, dataset, split, corruption, layer, probe, k); each probe returns one row per seed.
Rows carry everything ``records.RECORD_COLUMNS`` names. Fidelity (decoder probe PSNR/SSIM) is measured once
per (encoder, dataset) on clean frames by the study's fidelity task and attached to that encoder's clean rows.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from wmprobe.data.splits import Split, make_split
from wmprobe.data.store import EpisodeStore
from wmprobe.extract import StepFeatures
from wmprobe.records import Source, row


def probe_features(feats: StepFeatures, store: EpisodeStore, split: Split, *, probes: Sequence[str],
                   ks: Sequence[int], seeds: Sequence[int], layers: Sequence[str] | None = None,
                   n_boot: int = 1000, probe_cfg: dict[str, Any] | None = None,
                   base: Source | Mapping[str, Any] | None = None, test_feats: StepFeatures | None = None,
                   test_sets: Sequence[tuple[str, StepFeatures | None]] | None = None,
                   headline: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Every (layer, k, probe) cell on one set of features; one row per seed.

    ``headline``: the action groups whose R2 the ``r2`` column averages (default: every group of the store).
    ``base``: what every row starts from (``records.row``): a ``records.Source`` or a row of columns.

    ``test_feats`` (same steps, e.g. extracted from corrupted frames) replaces the TEST side only: the probe is
    fit on ``feats`` (clean) and scored on ``test_feats``: test-time corruption, as in the paper.
    ``test_sets``: ``[(corruption, features or None for feats itself), ...]``: each probe is fit ONCE and
    scored on every set; each row's ``corruption`` column names its set (controls: the clean set only)."""
    from wmprobe.errors import ProbeError
    from wmprobe.probes.core import evaluate_many
    from wmprobe.probes.data import build_probe_data
    from wmprobe.probes.spec import probe_spec
    base = base if base is not None else {}
    if test_sets is None:
        test_sets = [((base.columns() if isinstance(base, Source) else base).get("corruption", "clean"), test_feats)]
    rows: list[dict[str, Any]] = []
    for layer in layers or feats.layers:
        for k in ks:
            def data(kind: str):
                src = getattr(feats, kind)
                train, test, groups = build_probe_data(src[layer], feats.step_frame, feats.step_episode, store,
                                                       split, k=k)
                tests = {}
                for name, tf in test_sets:
                    tests[name] = test if tf is None else build_probe_data(
                        getattr(tf, kind)[layer], tf.step_frame, tf.step_episode, store, split, k=k)[1]
                return train, tests, groups

            pooled = data("pooled")
            tokens: Any = None
            for probe in probes:
                spec = probe_spec(probe)
                if spec.needs_tokens:  # un-pooled patch tokens of both steps
                    if layer not in feats.tokens:
                        raise ProbeError(f"probe {probe} needs patch tokens: extract with keep_tokens=True "
                                         "(`wmprobe extract --tokens`)")
                    tokens = tokens or data("tokens")
                train, tests, groups = tokens if spec.needs_tokens else pooled
                if spec.is_control:   # controls (shuffled / single pairs) are measured on clean features only
                    tests = {n: t for (n, tf), t in zip(test_sets, tests.values()) if tf is None} or tests
                cfg = spec.study_options(probe_cfg)
                res = evaluate_many(probe, train, tests, groups, seeds=tuple(seeds), n_boot=n_boot,
                                    headline=headline, **cfg)
                for name, rs in res.items():
                    rows.extend(row(base, r, corruption=name, layer=layer, k=int(k)) for r in rs)
    return rows


def probe_features_dir(features: str | os.PathLike, store_path: str | os.PathLike, *, probes: Sequence[str],
                       ks: Sequence[int], split: str = "task", seeds: Sequence[int] = (0, 1, 2),
                       out: str | os.PathLike, progress: bool = True,
                       probe_cfg: dict[str, Any] | None = None,
                       headline_groups: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """`wmprobe probe FEATURES STORE`: probe features saved by `wmprobe extract`, write records to ``out``.
    ``probe_cfg``: MLP probe options (e.g. ``{"steps": 500}``), as a study's ``probe:`` block;
    ``headline_groups`` as ``wmprobe.probe`` (default: the action-space audit's, else every group)."""
    from wmprobe.probes.api import cell_bar, check_ks, headline_choice
    from wmprobe.data import load_dataset
    from wmprobe.errors import ProbeError
    from wmprobe.records import write_records
    feats = StepFeatures.load(features)
    store = load_dataset(store_path)
    fp = feats.spec.get("dataset_fingerprint")
    if fp and fp != store.fingerprint:
        raise ProbeError(f"features in {features} were extracted from dataset {fp}, not from {store_path} "
                         f"({store.fingerprint}); extract them again from this store")
    sp = make_split(store, kind=split, seed=0)
    base = row(Source(str(feats.spec.get("encoder", feats.spec.get("name")) or ""), str(feats.spec.get("family") or ""),
                      store.name, sp.kind, encoder_key=str(feats.spec.get("key") or ""),
                      dataset_fingerprint=store.fingerprint),
               corruption=feats.spec.get("corruption", "clean"))
    check_ks(feats.step_episode, ks, store.name)
    head, audit = headline_choice(store, sp, ks, headline_groups, "--headline-groups / headline_groups")
    cells = [(layer, k, p) for layer in feats.layers for k in ks for p in probes]
    bar = cell_bar(len(cells), f"probe {feats.spec.get('encoder', 'features')}", progress)
    rows = []
    try:
        for layer, k, p in cells:  # one cell at a time, so the bar moves and its ETA means something
            if bar is not None:
                bar.set_postfix_str(f"{layer} {p} k={k}")
            rows += probe_features(feats, store, sp, probes=[p], ks=[k], seeds=seeds, layers=[layer], base=base,
                                   probe_cfg=probe_cfg, headline=head["headline_groups"] or None)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    write_records(rows, out, {"command": "probe", "features": str(features), "store": str(store_path),
                              "probes": list(probes), "ks": list(ks), "split": split, "seeds": list(seeds),
                              "probe_cfg": dict(probe_cfg or {}), "headline": {store.name: head},
                              "audit": {store.name: audit}})
    return rows
