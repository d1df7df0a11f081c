"""Dataset readers and writers: LeRobot (v2.1, v3.0), CALVIN, LIBERO and EpisodeStores -> EpisodeStore.

``import_dataset(src, dest)`` streams a source into an EpisodeStore in bounded memory (frames are written
into a preallocated memory-mapped array in a temp directory beside ``dest``, renamed into place at the end);
``dataset_info`` summarises a source or store; ``validate_dataset`` lists every problem; ``export_lerobot``
writes a store as a LeRobot v3.0 dataset. See docs/data.md ("Readers").
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from wmprobe.data.formats import groups as _groups
from wmprobe.data.formats._common import (Episode, FormatError, Source, StoreWriter, describe_resize,
                                          looks_like_store, prepare_dest, progress_bar)
from wmprobe.errors import StoreError
from wmprobe.registry import Registry

__all__ = ["FORMATS", "READERS", "WRITERS", "FormatError", "dataset_info", "detect_format", "export_lerobot",
           "import_dataset", "open_source", "validate_dataset"]

# the readers: name -> Source class (lazy "module:Class"); ``options``: the open_source options it takes beyond
# ``allow_symlinks_out``; plugins register under the entry-point group ``wmprobe.formats``
READERS: Registry[Callable[..., Source]] = Registry("dataset format", group="wmprobe.formats", error=StoreError)
READERS.add("lerobot", "wmprobe.data.formats.lerobot:LeRobotSource", description="LeRobot v2.1 / v3.0 datasets")
READERS.add("calvin", "wmprobe.data.formats.calvin:CalvinSource", description="CALVIN splits (training, validation)",
            options=("allow_pickle", "split"))
READERS.add("libero", "wmprobe.data.formats.libero:LiberoSource", description="LIBERO .hdf5 files")
READERS.add("store", "wmprobe.data.formats.storesrc:StoreSource", description="an EpisodeStore (re-imported)")
FORMATS = tuple(READERS.builtin_names())
# the writers: name -> ``fn(store, dest, data_files_size_in_mb=, video_files_size_in_mb=, chunks_size=) -> dest``
# (`wmprobe data export --format`)
WRITERS: Registry[Any] = Registry("export format", error=StoreError)
WRITERS.add("lerobot", "wmprobe.data.formats:export_lerobot", description="LeRobot v3.0 datasets")


def detect_format(path: str | os.PathLike) -> str:
    """``lerobot`` | ``calvin`` | ``libero`` | ``store``, from the files present (StoreError if none fits)."""
    p = Path(path)
    if not p.exists():
        raise StoreError(f"{p} does not exist")
    if p.is_file():
        if p.suffix.lower() in (".hdf5", ".h5"):
            return "libero"
        raise StoreError(f"{p}: cannot tell the dataset format of this file (expected a LIBERO .hdf5)")
    if (p / "meta.json").is_file() and (p / "frames.npy").exists():
        return "store"
    if (p / "meta" / "info.json").is_file():
        return "lerobot"
    if (p / "ep_start_end_ids.npy").is_file() or any((p / s / "ep_start_end_ids.npy").is_file()
                                                     for s in ("training", "validation")):
        return "calvin"
    if any(p.glob("*.hdf5")) or any(p.glob("*.h5")):
        return "libero"
    if looks_like_store(p) or any((p / f).exists() for f in ("meta.json", "frames.npy", "actions.npy",
                                                               "episode_ends.npy", "tasks.npy")):
        return "store"  # possibly an incomplete one: EpisodeStore.load says what is missing
    raise StoreError(f"{p}: cannot detect the dataset format (no meta/info.json, ep_start_end_ids.npy, *.hdf5 "
                     "or EpisodeStore meta.json); pass --format")


def open_source(path: str | os.PathLike, format: str = "auto", **options: Any) -> Source:
    """The reader of ``path``. ``options``: ``allow_pickle`` and ``split`` (CALVIN only: a ``split`` for
    another format is a StoreError), ``allow_symlinks_out`` (every format: follow symbolic links that lead out of
    the dataset; default ``$WMPROBE_ALLOW_SYMLINKS_OUT``, data/formats/_paths.py)."""
    fmt = detect_format(path) if format in (None, "auto") else format
    takes = READERS.entry(fmt).meta.get("options", ()) if fmt in READERS else ()
    if options.get("split") is not None and "split" not in takes:
        raise StoreError(f"{path}: a split ('{options['split']}') can be chosen only for CALVIN data, and this "
                         f"is {fmt} data")
    try:
        return _open(path, fmt, options)
    except ImportError as exc:
        raise StoreError(f"reading {fmt} data needs {exc.name or exc}: install the formats extra "
                         "(`pip install -c constraints.txt -e '.[formats]'`)") from None


def _open(path: str | os.PathLike, fmt: str, options: dict[str, Any]) -> Source:
    """``READERS[fmt](path, allow_symlinks_out=..., **the options the reader takes)``."""
    if fmt not in READERS:
        raise StoreError(f"unknown dataset format '{fmt}' (one of auto, {', '.join(READERS.names())})"
                         f"{READERS.did_you_mean(fmt)}")
    entry = READERS.entry(fmt)
    kwargs = {k: options.get(k) for k in entry.meta.get("options", ())}
    return READERS.load(entry)(path, allow_symlinks_out=options.get("allow_symlinks_out"), **kwargs)


def import_dataset(src, dest, *, format: str = "auto", camera: str | None = None, action_key: str | None = None,
                   size: int | None = None, max_episodes: int | None = None, progress: bool = True,
                   allow_pickle: bool | None = None, split: str | None = None, action_groups=None,
                   revision: str | None = None, allow_symlinks_out: bool | None = None) -> Path:
    """Convert ``src`` into an EpisodeStore at ``dest`` and return ``dest``.

    ``camera`` / ``action_key`` pick the image stream and the action feature (defaults per format, see
    docs/data.md); ``size`` centre-crops each frame to a square (aspect kept) and resizes it to
    ``size x size`` (None, the default, keeps the native size); ``action_groups`` (``"translation=0,1,2
    rotation=3,4,5 gripper=6"``, a mapping, or ``"none"``) overrides the groups, which otherwise come from
    the format's convention (CALVIN, LIBERO, a store) or the dataset's action names, and are never guessed from
    positions (an import without either raises FormatError saying so; data/formats/groups.py);
    ``max_episodes`` keeps the first episodes. ``allow_pickle`` (CALVIN only, default from
    ``$WMPROBE_ALLOW_PICKLE``) lets the reader unpickle ``lang_annotations/auto_lang_ann.npy`` for task
    labels: only for files you trust. ``split`` (CALVIN only) picks the split directory under a CALVIN root
    (``training``, the default, or ``validation``). ``src`` may be a hub dataset id (``lerobot/pusht``, at
    ``revision``), read from the Hugging Face cache (downloaded there only when the network is allowed;
    data/formats/hubsrc.py). ``allow_symlinks_out`` follows symbolic links that lead out of
    the source (refused by default; absolute paths and ``..`` in its metadata always are: docs/data.md). A bad
    source raises one ``FormatError`` naming file and episode, and ``dest`` is
    left untouched. ``dest`` must be missing, empty, or an EpisodeStore holding only wmprobe's files
    (docs/reliability.md).
    """
    from wmprobe.data.formats.hubsrc import resolve_source
    src, hub_info = resolve_source(src, revision)
    if hub_info:  # a hub snapshot's files are links into the cache's blobs/ (huggingface_hub's own layout)
        allow_symlinks_out = True
    dest = Path(dest)
    if size is not None and int(size) <= 0:
        raise StoreError(f"size must be positive, got {size}")
    if allow_pickle is None:
        allow_pickle = os.environ.get("WMPROBE_ALLOW_PICKLE", "") in ("1", "true", "yes")
    prepare_dest(dest, src)
    source = open_source(src, format, allow_pickle=allow_pickle, split=split, allow_symlinks_out=allow_symlinks_out)
    try:
        source.select(camera, action_key)
        action_dim = source.action_dim
        if action_dim is None:   # every reader sets it when it opens; a plugin reader that does not is named
            raise FormatError(f"{src}: the {source.format} reader gives no action dimension")
        eps = source.episodes()
        if max_episodes is not None:
            eps = eps[: max(0, int(max_episodes))]
        if not eps:
            raise FormatError(f"{src}: no episodes to import")
        names, groups, how = _groups.resolve(
            int(action_dim), source.action_names, convention=source.action_convention,
            convention_names=source.convention_names, override=action_groups,
            where=f"{src} ({source.format} action key '{source.action_key}')", fmt=source.format)
        if source.frame_shape is None:
            source.frame_shape = _peek_shape(source, eps[0])
        h, w = (int(size), int(size)) if size is not None else source.frame_shape
        task_names: list[str] = []
        for e in eps:
            if e.task not in task_names:
                task_names.append(e.task)
        n = sum(e.length for e in eps)
        bar = progress_bar(n, f"import {src.name}", progress)
        try:
            snames = source.state_names
            with StoreWriter(dest, n, h, w, int(action_dim), len(eps),
                             state_dim=len(snames) if snames else None) as wr:
                for e in eps:
                    acts = source.actions(e)
                    wr.add_episode(acts, source.frames(e), task_names.index(e.task), e.where, size, bar,
                                   states=source.states(e) if snames else None)
                meta = {"name": dest.name, "fps": float(source.fps), "action_names": names,
                        "action_groups": groups, "task_names": task_names,
                        **({"state_names": list(snames), "state_names_wanted": True} if snames else {}),
                        "source": {**source.source_meta(), "size": size, "episodes": len(eps),
                                   "native_shape": list(source.frame_shape),
                                   "resize": describe_resize(source.frame_shape, size),
                                   "action_groups_from": how, **({"hub": hub_info} if hub_info else {})}}
                return wr.finish(meta)
        finally:
            if bar is not None:
                bar.close()
    finally:
        source.close()


def _peek_shape(source: Source, ep: Episode) -> tuple[int, int]:
    for block in source.frames(ep):
        return int(block.shape[1]), int(block.shape[2])
    raise FormatError(f"{ep.where}: no frames")


def dataset_info(path: str | os.PathLike, format: str = "auto", split: str | None = None,
                 revision: str | None = None, allow_symlinks_out: bool | None = None) -> dict[str, Any]:
    """JSON-able summary of a source dataset or an EpisodeStore (format, version, episodes, frames, ...);
    ``split``: a CALVIN root's split to summarise (see ``import_dataset``); ``path`` may be a hub dataset id
    (at ``revision``); ``allow_symlinks_out`` as for ``import_dataset``."""
    from wmprobe.data.formats.hubsrc import resolve_source
    path, hub_info = resolve_source(path, revision)
    if hub_info:  # a hub snapshot's files are links into the cache's blobs/
        allow_symlinks_out = True
    source = open_source(path, format, split=split, allow_symlinks_out=allow_symlinks_out)
    try:
        info = source.info()
        if "action_groups" not in info:
            info["action_groups"] = _default_groups(source)
        if hub_info:
            info["hub"] = hub_info
        return info
    finally:
        source.close()


def _default_groups(source: Source) -> str:
    """What an import with the default action key would group, as ``"translation=0,1,2 ... (from ...)"``, or
    why it would refuse."""
    try:
        source.select(None, None)
        _, groups, how = _groups.resolve(int(source.action_dim or 0), source.action_names,
                                         convention=source.action_convention,
                                         convention_names=source.convention_names, fmt=source.format)
        return f"{_groups.format_groups(groups)} (from {how})"
    except StoreError:
        return "unknown: the import needs --action-groups (the action names do not say)"


def validate_dataset(path: str | os.PathLike, *, format: str = "auto", camera: str | None = None,
                     action_key: str | None = None, split: str | None = None,
                     revision: str | None = None, allow_symlinks_out: bool | None = None) -> list[str]:
    """Every problem found in a source or store (each naming file and episode); empty when it reads cleanly.

    A file or episode whose metadata is bad is reported and left out; the actions and frames of every other
    episode are then read (video is decoded), like an import that writes nothing. Only a problem that stops
    the whole source (no metadata at all, a missing camera or action key) ends the listing early.
    ``split``: a CALVIN root's split to check (see ``import_dataset``); ``path`` may be a hub dataset id.
    """
    from wmprobe.data.formats.hubsrc import resolve_source
    try:
        path, hub_info = resolve_source(path, revision)
    except StoreError as exc:
        return [str(exc)]
    if hub_info:  # a hub snapshot's files are links into the cache's blobs/
        allow_symlinks_out = True
    try:
        fmt = detect_format(path) if format in (None, "auto") else format
    except StoreError as exc:
        return [str(exc)]
    if fmt == "store" and split is None:
        from wmprobe.data.store import validate_store
        return validate_store(path, allow_symlinks_out=allow_symlinks_out)
    problems: list[str] = []
    try:
        source = open_source(path, fmt, split=split, allow_symlinks_out=allow_symlinks_out)
    except StoreError as exc:
        return [str(exc)]
    try:
        source.select(camera, action_key)
        eps = source.episodes(problems)
    except StoreError as exc:
        source.close()
        return [*problems, str(exc)]
    try:
        shape = None
        for e in eps:
            try:
                source.actions(e)
            except StoreError as exc:
                problems.append(str(exc))
            try:
                count = 0
                for block in source.frames(e):
                    if shape is None:
                        shape = block.shape[1:3]
                    elif block.shape[1:3] != shape:
                        raise FormatError(f"{e.where}: frames are {block.shape[1]}x{block.shape[2]}, the first "
                                          f"episode's are {shape[0]}x{shape[1]}")
                    count += len(block)
                if count != e.length:
                    raise FormatError(f"{e.where}: {count} frames but the metadata says {e.length}")
            except StoreError as exc:
                problems.append(str(exc))
                source.close()  # a broken reader state must not leak into the next episode
    finally:
        source.close()
    return list(dict.fromkeys(problems))


def export_lerobot(store, dest, *, data_files_size_in_mb: float = 100, video_files_size_in_mb: float = 500,
                   chunks_size: int = 1000) -> Path:
    """Write an EpisodeStore (path or object) as a LeRobot v3.0 dataset at ``dest``; returns ``dest``.

    A data parquet (video mp4) takes whole episodes until one brings it to ``data_files_size_in_mb``
    (``video_files_size_in_mb``); the next episode starts a new file, and every ``chunks_size`` files a new
    chunk directory. The three values are recorded in ``meta/info.json``.
    """
    from wmprobe.data.formats.export import export_lerobot as _export
    return _export(store, dest, data_files_size_in_mb=data_files_size_in_mb,
                   video_files_size_in_mb=video_files_size_in_mb, chunks_size=chunks_size)
