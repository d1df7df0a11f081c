"""What a worker runs: one task in, its result in the cache, a small JSON-able value out.

``run_task(task, cache_root)`` is the only entry point executors call, in-process (local), in a SLURM job
(submitit) or in a Ray worker. Workers rebuild encoders from their registry name + options (never from a
pickled model) and read data and latents from the shared cache directory, so tasks are cheap to ship and
idempotent: a task whose result is already cached returns at once.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Any, Callable, Iterator

import numpy as np

from wmprobe._fs import drop_pages
from wmprobe.records import Source, row
from wmprobe.study.cache import Cache
from wmprobe.study.plan import ExtractTask, FidelityTask, ProbeTask, StateTask, TrainTask
from wmprobe.study.worker import cell_rows, load_encoder_ref, load_store
from wmprobe.study.worker import jsonable as _jsonable
from wmprobe.study.worker import locked_cell as _locked_cell
from wmprobe.study.worker import shards as _shards

def run_task(task: Any, cache_root: str, threads: int | None = None) -> Any:
    """Run one task; the value is what the driver needs (shard key, checkpoint path or rows).

    ``threads``: torch CPU threads and BLAS threads (numpy's OpenBLAS/MKL, through threadpoolctl) while the
    task runs (restored after). Studies fix it (default 1) so that results do not depend on how many threads or
    worker processes an executor used: a BLAS reduction split over a different number of threads sums in a
    different order (Ray workers, for one, start with OMP_NUM_THREADS=1 while a local process uses every core).
    """
    from threadpoolctl import threadpool_limits

    from wmprobe._threads import torch_threads
    cache = Cache(cache_root)
    with torch_threads(threads), \
            threadpool_limits(limits=int(threads), user_api="blas") if threads else contextlib.nullcontext():
        return _dispatch(task, cache)


def _dispatch(task: Any, cache: Cache) -> Any:
    from wmprobe.study.control import ControlTask, run_control
    runners: tuple[tuple[type, Callable[[Any, Cache], Any]], ...] = (
        (ExtractTask, run_extract), (ProbeTask, run_probe), (FidelityTask, run_fidelity), (TrainTask, run_train),
        (StateTask, run_state), (ControlTask, run_control))
    for kind, run in runners:
        if isinstance(task, kind):
            return run(task, cache)
    raise TypeError(f"not a wmprobe study task: {type(task).__name__}")


def run_train(task: TrainTask, cache: Cache) -> str:
    from wmprobe import zoo
    store = load_store(task.pool_path)
    ckpt = zoo.train(task.family, store, train_episodes=list(range(store.n_episodes)), preset=task.preset,
                     id_weight=task.id_weight, objective=task.objective, seed=task.seed, cache_dir=cache.zoo_dir,
                     progress=False, device=task.device, id_groups=task.id_groups)
    return str(ckpt)


def run_extract(task: ExtractTask, cache: Cache) -> str:
    from wmprobe.extract import extract
    # resized clean frames are shared by every encoder of the same resize (wmprobe.frames_cache); corrupted
    # ones are not kept: one copy per corruption spec would multiply the cache's disk use by the specs
    frames_cache = cache.frames_dir if task.corruption in ("clean", None) else None

    def compute():
        enc = load_encoder_ref(task.encoder, task.device)
        store = load_store(task.dataset.path)
        return extract(enc, store, layers=task.encoder.layers, episodes=task.episodes,
                       corruption=task.corruption, corruption_seed=task.corruption_seed,
                       keep_tokens=task.keep_tokens, frames_cache=frames_cache)
    info = {"encoder": task.encoder.label, "encoder_key": task.encoder.key, "dataset": task.dataset.name,
            "dataset_fingerprint": task.dataset.fingerprint, "episodes": [task.episodes[0], task.episodes[-1]],
            "corruption": task.corruption, "host": os.uname().nodename}
    cache.latents(task.key, compute, info)
    return task.key


def _with_corrupted_test(clean, corrupted, test_episodes: tuple[int, ...]):
    """Clean features for train episodes, corrupted ones for test episodes, in step order."""
    from wmprobe.extract import StepFeatures
    keep = ~np.isin(clean.step_episode, np.asarray(test_episodes, np.int64))
    train = clean.select(np.flatnonzero(keep))
    if set(train.tokens) != set(corrupted.tokens):  # clean shards may carry tokens for fidelity only
        train = StepFeatures(train.pooled, train.step_frame, train.step_episode, {}, train.spec)
        corrupted = StepFeatures(corrupted.pooled, corrupted.step_frame, corrupted.step_episode, {}, corrupted.spec)
    merged = StepFeatures.concat([train, corrupted])
    order = np.argsort(merged.step_frame, kind="stable")
    return merged.select(order)


def _probe_inputs(task: ProbeTask, cache: Cache, tokens: bool, test_episodes: tuple[int, ...]):
    """``(features the probe is fit on, test_sets)`` for ``probe_features``.

    Paper protocol: clean features of every episode, and per scored corruption the clean train rows with that
    corruption's test rows (None for clean itself). Augmented (``task.train_corruption`` = c): the train and test
    shards under c in step order, scored on their own test rows: ``[(c, None)]``."""
    if task.augmented:
        (corr, test_keys), = task.tests
        both = _shards(cache, task.train_shards + test_keys, tokens)
        return both.select(np.argsort(both.step_frame, kind="stable")), [(corr, None)]
    clean = _shards(cache, task.clean_shards, tokens)
    return clean, [(corr, _with_corrupted_test(clean, _shards(cache, keys, tokens), test_episodes) if keys else None)
                   for corr, keys in task.tests]


def run_probe(task: ProbeTask, cache: Cache) -> list[dict[str, Any]]:
    return _locked_cell(cache, task.key, lambda: _compute_probe(task, cache))


def _imagined_rows(task: ProbeTask, cache: Cache, store: Any, split: Any) -> list[dict[str, Any]]:
    """Rows of an imagined-latents cell: the probe on ``(z_t, encoder.imagine(z_t, true actions))`` from the
    clean tokens of every frame (``wmprobe.probes.imagined``)."""
    from wmprobe.probes.imagined import probe_imagined
    feats = _shards(cache, task.clean_shards, tokens=True)
    tok = feats.tokens[task.layer]
    tokens = np.zeros((store.n_frames, *tok.shape[1:]), np.float32)
    tokens[feats.step_frame] = tok
    return probe_imagined(load_encoder_ref(task.encoder), store, split, ks=[task.k], probes=[task.probe],
                          seeds=task.seeds, tokens=tokens, layer=task.layer, real=False, n_boot=task.n_boot,
                          encoder_name=task.encoder.label, headline=task.dataset.headline or None,
                          **dict(task.probe_cfg))


def _compute_probe(task: ProbeTask, cache: Cache) -> list[dict[str, Any]]:
    from wmprobe.data.splits import Split
    from wmprobe.pipeline import probe_features
    t0 = time.perf_counter()
    store = load_store(task.dataset.path)
    split = Split(task.dataset.split_kind, task.dataset.train, task.dataset.test)
    if task.latents == "imagined":
        rows = [row(r, id_weight=task.encoder.id_weight, encoder_key=task.encoder.key)
                for r in _imagined_rows(task, cache, store, split)]
        return _store_cell(task, cache, rows, t0)
    from wmprobe.probes.spec import probe_spec
    tokens = probe_spec(task.probe).needs_tokens   # other probes read pooled features only
    feats, test_sets = _probe_inputs(task, cache, tokens, split.test)
    source = Source(task.encoder.label, task.encoder.family, task.dataset.name, split.kind, task.encoder.id_weight,
                    task.encoder.key, task.dataset.fingerprint)
    # only augmented rows carry train_corruption: default records stay as they were
    base = row(source, train_corruption=task.train_corruption) if task.augmented else source
    rows = probe_features(feats, store, split, probes=[task.probe], ks=[task.k], seeds=task.seeds,
                          layers=[task.layer], n_boot=task.n_boot, probe_cfg=dict(task.probe_cfg),
                          base=base, test_sets=test_sets, headline=task.dataset.headline or None)
    return _store_cell(task, cache, rows, t0)


def _store_cell(task: ProbeTask, cache: Cache, rows: list[dict[str, Any]], t0: float) -> list[dict[str, Any]]:
    rows = cell_rows(rows)
    cache.put_cell(task.key, rows, {"encoder": task.encoder.label, "dataset": task.dataset.name,
                                    "seconds": round(time.perf_counter() - t0, 3)})
    return rows


STATE = "state"   # encoder, family and layer of the state-ceiling rows


def run_state(task: StateTask, cache: Cache) -> list[dict[str, Any]]:
    """The state ceiling: ``task.probe`` on the store's per-frame state features ``(N, S)`` (no encoder
    forward), paired and split like any encoder's latents; rows ``encoder = family = layer = state``."""
    rows = cache.load_cell(task.key)
    if rows is not None:
        return rows
    from wmprobe.data.audit import state_features
    from wmprobe.data.splits import Split
    from wmprobe.errors import StoreError
    from wmprobe.extract import StepFeatures
    from wmprobe.pipeline import probe_features
    t0 = time.perf_counter()
    store = load_store(task.dataset.path)
    feats = state_features(store)
    if feats is None:
        raise StoreError(f"dataset {task.dataset.name} ({task.dataset.path}) has no proprioceptive states; "
                         "a state ceiling needs them")
    steps = StepFeatures({STATE: np.asarray(feats, np.float32)}, np.arange(store.n_frames, dtype=np.int64),
                         store.episode_of_frame())
    split = Split(task.dataset.split_kind, task.dataset.train, task.dataset.test)
    base = row(Source(STATE, STATE, task.dataset.name, split.kind, 0.0, STATE, task.dataset.fingerprint),
               corruption="clean")
    rows = probe_features(steps, store, split, probes=[task.probe], ks=[task.k], seeds=task.seeds, layers=[STATE],
                          n_boot=task.n_boot, probe_cfg=dict(task.probe_cfg), base=base,
                          headline=task.dataset.headline or None)
    rows = cell_rows(rows)
    cache.put_cell(task.key, rows, {"encoder": STATE, "dataset": task.dataset.name,
                                    "seconds": round(time.perf_counter() - t0, 3)})
    return rows


def run_fidelity(task: FidelityTask, cache: Cache) -> list[dict[str, Any]]:
    return _locked_cell(cache, task.key, lambda: _compute_fidelity(task, cache))


def _compute_fidelity(task: FidelityTask, cache: Cache) -> list[dict[str, Any]]:
    from wmprobe.data.splits import Split
    store = load_store(task.dataset.path)
    split = Split(task.dataset.split_kind, task.dataset.train, task.dataset.test)
    fid = _decoder_probe(cache, task, store, split.test)
    fid.update(_own_fidelity(task, store, split.test))
    rows = json.loads(json.dumps([_jsonable({"encoder": task.encoder.label, "id_weight": task.encoder.id_weight,
                                             "dataset": task.dataset.name, **fid})], default=str))
    cache.put_cell(task.key, rows, {"encoder": task.encoder.label, "dataset": task.dataset.name,
                                    "kind": "fidelity"})
    return rows


def _own_fidelity(task: FidelityTask, store: Any, test_episodes: tuple[int, ...]) -> dict[str, Any]:
    """``psnr_own`` / ``ssim_own`` (+ CIs) of the encoder's own decoder (VAE-like zoo models, diffusers
    AutoencoderKL) on the test episodes (at most FIDELITY_MAX_TEST frames, whole episodes in a seeded order);
    {} for encoders without one."""
    from wmprobe.fidelity import own_decoder_fidelity_clips
    if not task.encoder.own_decoder:   # decided when the study resolved its encoders: no model load here
        return {}
    enc = load_encoder_ref(task.encoder)
    order = np.random.default_rng(task.seed).permutation(np.asarray(test_episodes, np.int64))
    eps, n = [], 0
    for e in order:
        sl = store.episode_slice(int(e))
        if n and n + (sl.stop - sl.start) > FIDELITY_MAX_TEST:
            break
        eps.append(int(e))
        n += sl.stop - sl.start

    def clips() -> Iterator[np.ndarray]:  # one episode in memory at a time
        for e in eps:
            clip = np.array(store.frames[store.episode_slice(e)])
            drop_pages(store.frames)
            yield clip
    own = own_decoder_fidelity_clips(enc, clips(), eps, seed=task.seed)
    return {f"{m}_own{suffix}": own[f"{m}{suffix}"] for m in ("psnr", "ssim") for suffix in ("", "_ci_low", "_ci_high")}


# the decoder probe trains on at most this many frames (its step budget sees ~10k samples anyway) and scores
# at most this many test frames: memory stays flat as datasets grow, and every encoder gets the same sample
FIDELITY_MAX_TRAIN, FIDELITY_MAX_TEST = 8192, 2048


def _decoder_probe(cache: Cache, task: FidelityTask, store: Any, test_episodes: tuple[int, ...]) -> dict[str, Any]:
    """The decoder probe on a capped, seeded sample of the shards' rows, gathered a minibatch at a time from the
    memory-mapped shards and store (``RowGather``): memory stays flat as datasets grow."""
    from wmprobe.fidelity import RowGather, decoder_fidelity
    parts = [cache.load_latents(k) for k in task.shards]
    if any(p is None for p in parts):
        _shards(cache, task.shards)  # raises the clear "missing shard" error
    layer = parts[0].layers[0]
    tokens = [p.tokens[layer] if layer in p.tokens else p.pooled[layer][:, None, :] for p in parts]
    episode = np.concatenate([p.step_episode for p in parts])
    step_frame = np.concatenate([p.step_frame for p in parts])
    is_test = np.isin(episode, np.asarray(test_episodes, np.int64))
    rng = np.random.default_rng(task.seed)
    picked = []
    for mask, cap in ((~is_test, FIDELITY_MAX_TRAIN), (is_test, FIDELITY_MAX_TEST)):
        rows = np.flatnonzero(mask)
        picked.append(np.sort(rng.choice(rows, cap, replace=False)) if len(rows) > cap else rows)
    tr, te = picked
    return decoder_fidelity(RowGather(tokens, tr), RowGather([store.frames], step_frame[tr]),
                            RowGather(tokens, te), RowGather([store.frames], step_frame[te]), episode[te],
                            seed=task.seed, preset=task.preset, threads=1)
