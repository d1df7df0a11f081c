"""A study's inputs, resolved: every dataset generated or opened and split, the zoo's pretraining pool, every
encoder opened once for its spec key (weights hash + preprocessing, which enters every cache key).

``resolve_datasets`` -> ``{name: (EpisodeStore, Split)}``; ``pretraining_pool`` -> one EpisodeStore of the
train episodes of every dataset; ``resolve_encoders`` -> one ``EncoderRef`` per encoder (and zoo model);
``dataset_ref`` -> the ``DatasetRef`` the planner reads.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from wmprobe._fs import mark_used
from wmprobe.errors import ConfigError, EncoderError
from wmprobe.study.cache import Cache, content_key
from wmprobe.study.config import StudyConfig
from wmprobe.study.plan import DatasetRef, EncoderRef

if TYPE_CHECKING:
    from wmprobe.study.zoo_train import ZooModel


def resolve_datasets(cfg: StudyConfig, cache: Cache, progress: bool = True) -> dict[str, tuple[Any, Any]]:
    """name -> (EpisodeStore, Split)."""
    from wmprobe.data.sim import cached_generate
    from wmprobe.data.splits import study_splits
    from wmprobe.data.store import EpisodeStore
    stores = {}
    for d in cfg.datasets:
        if d.sim:
            stores[d.name] = cached_generate(d.sim, cache.data_dir, episodes=d.episodes, steps=d.steps, size=d.size,
                                             seed=cfg.seed, camera=d.camera, tasks=d.tasks, wrist=d.wrist,
                                             progress=progress)
        else:
            stores[d.name] = EpisodeStore.load(str(d.path), allow_symlinks_out=d.allow_symlinks_out)
        if d.action_groups is not None:
            from wmprobe.data.formats.groups import regroup
            stores[d.name] = regroup(stores[d.name], d.action_groups, cache.data_dir)
    # task-OOD: the same held-out task names in every dataset (chosen once from the names they share)
    splits = study_splits(stores, kind=cfg.split, test_frac=cfg.test_frac, seed=cfg.seed,
                          test_tasks=cfg.test_tasks)
    return {n: (stores[n], splits[n]) for n in stores}


def pretraining_pool(datasets: dict[str, tuple[Any, Any]], cache: Cache) -> Any:
    """The zoo's pretraining corpus: the TRAIN episodes of every dataset in one store, written once into the
    cache (workers read it from there). Test episodes never enter, and no episode of a task that ANY
    dataset holds out (by task name: the pool mixes datasets) enters either; ``leakage.check_leakage``
    verifies both before any training."""
    from wmprobe.data.splits import task_names_of
    from wmprobe.data.store import EpisodeStore, from_episodes, open_cached
    stores = {n: s for n, (s, _) in datasets.items()}
    dims = {s.action_dim for s in stores.values()}
    if len(dims) > 1:
        raise ConfigError(f"zoo training pools the train episodes of every dataset, but their action dims "
                          f"differ ({sorted(dims)}); run one study per action space")
    held = {str(t) for _, sp in datasets.values() for t in getattr(sp, "test_task_names", ()) or ()}
    keep = {}
    for n, (s, sp) in datasets.items():
        names, test = task_names_of(s), set(map(int, sp.test))
        keep[n] = [int(e) for e in sp.train if int(e) not in test and names[int(s.tasks[int(e)])] not in held]
    key = content_key({"pool": [[n, s.fingerprint, keep[n]] for n, s in stores.items()]})
    path = cache.data_dir / f"pool-{key}"
    if open_cached(path) is not None:   # a corrupt pool is moved aside with a warning and rebuilt
        mark_used(path)
        return EpisodeStore.load(path)
    with cache.lock(f"pool-{key}"):
        if open_cached(path) is None:
            eps, tasks, names = [], [], []
            for name, (store, split) in datasets.items():
                offset = len(names)
                names += [f"{name}/{t}" for t in store.meta["task_names"]]
                for e in keep[name]:
                    sl = store.episode_slice(e)
                    eps.append((np.asarray(store.frames[sl]), np.asarray(store.actions[sl])))
                    tasks.append(offset + int(store.tasks[e]))
            first = next(iter(stores.values()))
            pool = from_episodes(eps, tasks, fps=first.meta["fps"], action_names=first.meta["action_names"],
                                 action_groups=first.meta["action_groups"], task_names=names,
                                 source={"kind": "pretraining-pool",
                                         "datasets": {n: s.fingerprint for n, s in stores.items()}},
                                 name="pretrain-pool")
            pool.save(path)  # write_store is atomic: meta.json appears last
    return EpisodeStore.load(path)



def resolve_encoders(cfg: StudyConfig, zoo_models: list[ZooModel]) -> list[EncoderRef]:
    from wmprobe.encoders.registry import load_encoder
    entries = [(e.name, e.shown, dict(e.options), e.layers, e.id_weight) for e in cfg.encoders]
    entries += [(f"zoo:{m.checkpoint}", m.label, {}, None, m.id_weight) for m in zoo_models if m.error is None]
    refs = []
    for name, label, options, layers, id_weight in entries:
        enc = load_encoder(name, device=cfg.device, **options)
        spec = enc.spec
        want = tuple(layers or cfg.layers or (spec.default_layer,))
        missing = [l for l in want if l not in spec.layers]
        if missing:
            raise EncoderError(f"encoder {label}: no layer(s) {missing}; it has {list(spec.layers)}")
        from wmprobe.fidelity import has_own_decoder
        from wmprobe.zoo.imagine import can_imagine
        refs.append(EncoderRef(label, name, tuple(sorted(options.items())), want, spec.family, id_weight,
                               spec.key(), spec.frames_per_step, has_own_decoder(enc), can_imagine(enc)))
        del enc
    return refs


def dataset_ref(name: str, store: Any, split: Any, headline: Any = ()) -> DatasetRef:
    return DatasetRef(name, str(store.path), store.fingerprint, store.n_episodes, split.kind,
                      tuple(int(e) for e in split.train), tuple(int(e) for e in split.test), tuple(headline),
                      store.states is not None)

