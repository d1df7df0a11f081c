"""The planner: a resolved study -> idempotent tasks, each named by the content key of what it computes.

- ``ExtractTask``: one (encoder, dataset shard, corruption) -> a latent shard in the cache. Clean shards cover
  every episode; corrupted shards cover only the test episodes (corruption is applied at test time: the probe
  is fit on clean train features and scored on corrupted test features, as in the paper). With
  ``corrupt_train: true`` corrupted shards of the train episodes are extracted too.
- ``ProbeTask``: one cell (encoder, dataset, split, corruption, layer, probe, k) with all its seeds -> rows.
  With ``corrupt_train``, one more task per (cell, corruption c != clean) fits on the train latents under c
  and scores the test latents under c (rows with ``train_corruption = c``).
  For zoo world models (``IMAGINING_FAMILIES``) and encoders with an ``imagine`` method one more task per (layer, k,
  mlp | ridge) probes
  ``g(z_t, z_hat_t+k)`` with the model's own k-step rollout from the clean tokens (rows with
  ``latents = imagined``; ``wmprobe.probes.imagined``).
- ``FidelityTask``: the decoder probe of one (encoder, dataset) on clean tokens -> PSNR/SSIM.
- ``StateTask``: the state ceiling of one (dataset, probe, k): the same probe on the dataset's proprioceptive
  state of each frame (no encoder), rows ``encoder = family = layer = state``, clean only. Planned for every
  dataset with states and every ``mlp`` / ``ridge`` probe of the study.

A task's key hashes its inputs (encoder spec key incl. weights, dataset fingerprint, episodes, corruption,
layers, probe config, code version), so re-running a study recomputes nothing that is in the cache, and a
killed run resumes with only the unfinished tasks. ``describe_study`` prints the plan without running it.

The task types are in task_types.py, the dry run (``estimate``, ``describe_study``) in dry_run.py; both are
re-exported here.
"""
from __future__ import annotations

from typing import Any, Sequence

from wmprobe import presets
from wmprobe.probes.spec import ProbeSpec, probe_spec
from wmprobe.study.cache import content_key
from wmprobe.study.dry_run import describe_study, estimate
from wmprobe.study.task_types import (IMAGINING_FAMILIES, TASK_VERSION, DatasetRef, EncoderRef, ExtractTask,
                                      FidelityTask, Plan, ProbeTask, StateTask, TrainTask)

__all__ = ["IMAGINING_FAMILIES", "TASK_VERSION", "DatasetRef", "EncoderRef", "ExtractTask", "FidelityTask", "Plan",
           "ProbeTask", "StateTask", "TrainTask", "describe_study", "estimate", "extract_key", "plan_study",
           "shards"]


def shards(episodes: Sequence[int], size: int) -> list[tuple[int, ...]]:
    eps = list(episodes)
    return [tuple(eps[i:i + size]) for i in range(0, len(eps), size)]


def extract_key(enc: EncoderRef, ds: DatasetRef, episodes: Sequence[int], corruption: str, keep_tokens: bool,
                corruption_seed: int = 0) -> str:
    from wmprobe.data.corruptions import parse_corruption
    key = {"task": "extract", "v": TASK_VERSION, "encoder": enc.key, "layers": list(enc.layers),
           "dataset": ds.fingerprint, "episodes": list(episodes), "corruption": corruption,
           "corruption_seed": corruption_seed, "tokens": keep_tokens}
    version = parse_corruption(corruption).version
    if version > 1:   # only a changed corruption changes its keys: every other shard stays valid
        key["corruption_version"] = version
    return content_key(key)


def _imagines(enc: EncoderRef) -> bool:
    """Whether ``enc`` gets imagined-latent probe cells: a zoo world model, or an encoder with ``imagine``."""
    return (enc.family in IMAGINING_FAMILIES or enc.imagines) and enc.frames_per_step == 1


def _extract_shards(plan: Plan, cfg: Any, enc: EncoderRef, ds: DatasetRef, episodes: Sequence[int],
                    corruption: str, tokens: bool) -> tuple[str, ...]:
    """Append one ExtractTask per shard of ``episodes`` under ``corruption``; returns the shards' keys."""
    keys = []
    for eps in shards(episodes, cfg.shard_episodes):
        key = extract_key(enc, ds, eps, corruption, tokens)
        plan.extract.append(ExtractTask(key, enc, ds, eps, corruption, tokens, cfg.device))
        keys.append(key)
    return tuple(keys)


def _probe_key(cfg: Any, enc: EncoderRef, ds: DatasetRef, layer: str, k: int, probe: str,
               pcfg: tuple, fit: dict[str, Any], scored: Sequence[tuple[str, tuple[str, ...]]]) -> str:
    """Content key of one probe task; ``fit``: what it is fit on (``{"clean": keys}`` for the paper's protocol,
    whose keys predate ``corrupt_train`` and must not change)."""
    return content_key({"task": "probe", "v": TASK_VERSION, **fit,
                        "tests": [[c, list(t)] for c, t in scored], "layer": layer, "k": k,
                        "probe": probe, "seeds": list(cfg.seeds), "cfg": list(pcfg), "n_boot": cfg.n_boot,
                        "split": [ds.split_kind, list(ds.train), list(ds.test)],
                        "headline": list(ds.headline) or "every-group",   # r2 = mean of these groups' R2
                        **probe_spec(probe).cache_version(),
                        "label": [enc.label, enc.family, enc.id_weight, ds.name]})


def _options(cfg: Any, spec: ProbeSpec) -> tuple[tuple[str, Any], ...]:
    """The probe's options from the study config block its spec names (``probe:`` for mlp), sorted; () when it
    takes none. They enter the probe's cache key."""
    if spec.config_section is None:
        return ()
    return tuple(sorted(getattr(cfg, spec.config_section).items()))


def _probe_tasks(plan: Plan, cfg: Any, enc: EncoderRef, ds: DatasetRef, clean: tuple[str, ...],
                 tests: list[tuple[str, tuple[str, ...]]],
                 augment: list[tuple[str, tuple[str, ...], tuple[str, ...]]]) -> None:
    """Append the probe tasks of one (encoder, dataset): one clean fit per (layer, k, probe) scored on every
    ``tests`` entry, and per ``augment`` entry ``(corruption, train keys, test keys)`` one fit on the corrupted
    train latents scored on the corrupted test latents (never for the -shuffled / -single controls)."""
    for layer in enc.layers:
        for k in cfg.ks:
            for probe in cfg.probes:
                spec = probe_spec(probe)
                control = spec.is_control   # controls (shuffled/single pairs) are measured on clean features only
                scored = tuple(tests) if not control else (("clean", ()),)
                pcfg = _options(cfg, spec)
                key = _probe_key(cfg, enc, ds, layer, k, probe, pcfg, {"clean": list(clean)}, scored)
                plan.probe.append(ProbeTask(key, enc, ds, layer, probe, int(k), tuple(cfg.seeds), pcfg,
                                            cfg.n_boot, clean, scored))
                if _imagines(enc) and spec.on_imagined:   # imagined z_t+k, clean only
                    key = _probe_key(cfg, enc, ds, layer, k, probe, pcfg,
                                     {"clean": list(clean), "latents": "imagined"}, (("clean", ()),))
                    plan.probe.append(ProbeTask(key, enc, ds, layer, probe, int(k), tuple(cfg.seeds), pcfg,
                                                cfg.n_boot, clean, latents="imagined"))
                for corr, train_keys, test_keys in (augment if not control else ()):
                    one = ((corr, test_keys),)
                    key = _probe_key(cfg, enc, ds, layer, k, probe, pcfg,
                                     {"train_corruption": corr, "train": list(train_keys)}, one)
                    plan.probe.append(ProbeTask(key, enc, ds, layer, probe, int(k), tuple(cfg.seeds), pcfg,
                                                cfg.n_boot, (), one, corr, train_keys))


def _state_tasks(plan: Plan, cfg: Any, ds: DatasetRef) -> None:
    """Append the state-ceiling tasks of one dataset (none when it has no states)."""
    if not ds.has_states:
        return
    for k in cfg.ks:
        for probe in cfg.probes:
            spec = probe_spec(probe)
            if not spec.on_states:
                continue
            pcfg = _options(cfg, spec)
            key = content_key({"task": "state", "v": TASK_VERSION, "dataset": ds.fingerprint, "k": int(k),
                               "probe": probe, "seeds": list(cfg.seeds), "cfg": list(pcfg), "n_boot": cfg.n_boot,
                               "split": [ds.split_kind, list(ds.train), list(ds.test)],
                               "headline": list(ds.headline) or "every-group", "name": ds.name,
                               **spec.cache_version()})
            plan.state.append(StateTask(key, ds, probe, int(k), tuple(cfg.seeds), pcfg, cfg.n_boot))


def plan_study(cfg: Any, encoders: Sequence[EncoderRef], datasets: Sequence[DatasetRef]) -> Plan:
    """Expand a resolved study (see study/resolve.py) into its tasks, in a deterministic order."""
    plan = Plan()
    for ds in datasets:
        _state_tasks(plan, cfg, ds)
        if cfg.control:   # the privileged-state control ceiling (study.control)
            from wmprobe.study.control import plan_state_control
            st = plan_state_control(cfg, ds)
            if st is not None:
                plan.control.append(st)
    attentive = any(probe_spec(p).needs_tokens for p in cfg.probes)   # e.g. attentive probes read tokens
    corrupt_sets = set(cfg.corrupt_datasets) if cfg.corrupt_datasets is not None else {d.name for d in datasets}
    # a fidelity key holds the decoder's settings (width, blocks, steps, batch, lr), not only its preset's name:
    # editing a preset file retrains; read once, not per cell
    decoder = presets.read(cfg.fidelity_preset).get("decoder") if cfg.fidelity else None
    for ds in datasets:
        fidelity = cfg.fidelity and (cfg.fidelity_datasets is None or ds.name in cfg.fidelity_datasets)
        for enc in encoders:
            imagine = _imagines(enc)   # imagined probes roll out from the clean tokens
            clean = _extract_shards(plan, cfg, enc, ds, range(ds.n_episodes), "clean", fidelity or attentive or imagine)
            corruptions = cfg.corruptions if ds.name in corrupt_sets else ("clean",)
            tests = [(corr, _extract_shards(plan, cfg, enc, ds, ds.test, corr, attentive) if corr != "clean" else ())
                     for corr in dict.fromkeys(("clean", *corruptions))]
            augment = [(corr, _extract_shards(plan, cfg, enc, ds, ds.train, corr, attentive), keys)
                       for corr, keys in tests if corr != "clean" and cfg.corrupt_train]
            _probe_tasks(plan, cfg, enc, ds, clean, tests, augment)
            if fidelity:
                key = content_key({"task": "fidelity", "v": TASK_VERSION, "clean": list(clean),
                                   "preset": cfg.fidelity_preset, "decoder": decoder, "split": list(ds.test),
                                   "seed": 0})
                plan.fidelity.append(FidelityTask(key, enc, ds, clean, cfg.fidelity_preset))
            if cfg.control:
                from wmprobe.study.control import plan_control
                ct = plan_control(cfg, enc, ds, clean)
                if ct is not None:
                    plan.control.append(ct)
    return plan
