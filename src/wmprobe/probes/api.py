"""From latents + store to probe records: ``probe`` (bring your own latents).

``build_probe_data`` (features + store -> paired train/test data) lives in ``probes.data`` and is re-exported
here.

``probe(latents, store, ...)`` takes latents aligned row by row with the store's frames
(``(N, D)`` pooled or ``(N, T, D)`` tokens; with ``frames_per_step = f > 1`` one row per f frames of each
episode), runs every requested probe and k, and returns (and optionally writes) one record per seed.
``load_latents(path)`` opens such latents from a ``.npy`` file (memory-mapped), as `wmprobe probe --latents`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from wmprobe.data.splits import Split, make_split
from wmprobe.data.store import EpisodeStore
from wmprobe.errors import ProbeError
from wmprobe.probes.data import build_probe_data
from wmprobe.probes.pairs import tubelet_steps


def cell_bar(total: int, desc: str, enabled: bool) -> Any:
    """A bar over probe cells (with elapsed time and ETA) on stderr (``wmprobe._progress``: a no-op when quiet)."""
    from wmprobe._progress import progress_bar
    return progress_bar(total, desc, enabled, unit="cell", leave=True, mininterval=1.0,
                        bar_format="{desc}: {n}/{total} cells [{elapsed}<{remaining}] {postfix}")


def latent_steps(latents: np.ndarray, store: EpisodeStore, frames_per_step: int = 1,
                 what: str = "latents") -> tuple[np.ndarray, np.ndarray]:
    """``(step_frame, step_episode)``, each ``(N,)``, of ``latents: (N, ...)`` aligned with the store;
    ProbeError naming ``what`` and both row counts on a mismatch."""
    step_frame, step_episode = tubelet_steps(store.episode_ends, frames_per_step)
    if latents.shape[0] != len(step_frame):
        per = "frame" if frames_per_step == 1 else f"{frames_per_step} frames of each episode"
        raise ProbeError(f"{store.name}: {what} have {latents.shape[0]} rows but the store needs {len(step_frame)} "
                         f"(one per {per}; the store has {store.n_frames} frames in {store.n_episodes} episodes)")
    return step_frame, step_episode


def load_latents(path: str | os.PathLike[str]) -> np.ndarray:
    """``(N, D) | (N, T, D)`` latents from a ``.npy`` file, memory-mapped; ProbeError naming the file if it is
    missing, an ``.npz`` archive, corrupt, or not a real-valued numeric array."""
    path = Path(path)
    if not path.is_file():
        raise ProbeError(f"latents file {path} does not exist")
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if path.suffix == ".npz" or magic.startswith(b"PK"):
        raise ProbeError(f"latents file {path} is an .npz archive; save one array with np.save('Z.npy', Z)")
    if magic != b"\x93NUMPY":
        raise ProbeError(f"latents file {path} is corrupt or not a .npy array (no NumPy header)")
    try:
        z: np.ndarray = np.load(path, allow_pickle=False, mmap_mode="r")
    except (OSError, ValueError, EOFError) as exc:
        raise ProbeError(f"latents file {path} is corrupt or not a .npy array ({exc})") from None
    if not (np.issubdtype(z.dtype, np.integer) or np.issubdtype(z.dtype, np.floating)):
        raise ProbeError(f"latents file {path} holds {z.dtype} values; latents must be real numbers")
    return z


def _require_tokens(probes: Sequence[str], latents: np.ndarray, what: str) -> None:
    """Attentive probes read ``(N, T, D)`` tokens; ProbeError before any fit if ``latents`` are pooled."""
    from wmprobe.probes.spec import probe_spec
    for name in probes:
        if probe_spec(name).needs_tokens and latents.ndim != 3:
            raise ProbeError(f"probe {name} needs patch tokens (N, tokens, D) but {what} are pooled, shape "
                             f"{tuple(latents.shape)}; pass un-pooled tokens or use mlp / ridge")


def probe(latents: np.ndarray, store: EpisodeStore | str | os.PathLike[str], *, probe: str | Sequence[str] = "mlp",
          k: int | Sequence[int] = 1, split: str | Split = "task", out: str | os.PathLike[str] | None = None,
          seeds: Sequence[int] = (0, 1, 2), frames_per_step: int = 1, agg: str = "sum", n_boot: int = 1000,
          split_seed: int = 0, layer: str = "input", encoder: str = "latents", source: str | None = None,
          progress: bool = False, headline_groups: Sequence[str] | None = None,
          **probe_cfg: Any) -> list[dict[str, Any]]:
    """Probe ``latents: (N, D) | (N, T, D)`` against ``store``'s actions; one record per (probe, k, seed).

    If ``out`` is given, the records are also written there by ``wmprobe.records.write_records``
    (records.parquet, records.csv, config.yaml; rows of the same cell are replaced). ``encoder`` fills the
    records' encoder column; ``source`` (e.g. the latents' file) is named in errors and in config.yaml;
    ``progress`` shows a bar over the (k, probe) cells with an ETA.
    ``headline_groups``: the action groups ``r2`` averages (default: the action-space audit's choice for this
    store and split at the headline k, else every group; ``headline_choice`` says which and why)."""
    from wmprobe.probes.core import evaluate
    from wmprobe.probes.spec import probe_spec
    from wmprobe.records import row
    if not isinstance(store, EpisodeStore):
        store = EpisodeStore.load(store)
    what = "latents" if source is None else f"latents from {source}"
    latents = np.asarray(latents) if not isinstance(latents, np.memmap) else latents
    if latents.ndim not in (2, 3):
        raise ProbeError(f"{what} must be (N, D) pooled or (N, T, D) tokens, got shape {latents.shape}")
    if 0 in latents.shape[1:]:
        raise ProbeError(f"{what} have shape {tuple(latents.shape)}: every row needs at least one feature "
                         "(and one token)")
    probes = [probe] if isinstance(probe, str) else list(probe)
    ks = [k] if isinstance(k, (int, np.integer)) else list(k)
    _require_tokens(probes, latents, what)
    step_frame, step_episode = latent_steps(latents, store, frames_per_step, what)
    sp = split if isinstance(split, Split) else make_split(store, kind=split, seed=split_seed)
    check_ks(step_episode, ks, store.name)
    head, audit = headline_choice(store, sp, ks, headline_groups, "--headline-groups / headline_groups")
    rows: list[dict[str, Any]] = []
    bar = cell_bar(len(ks) * len(probes), f"probe {encoder}", progress)
    for kk in ks:
        train, test, groups = build_probe_data(latents, step_frame, step_episode, store, sp, int(kk), agg=agg,
                                               what=what)
        for name in probes:
            if bar is not None:
                bar.set_postfix_str(f"{name} k={kk}")
                bar.update(0)
            spec = probe_spec(name)
            tr, te = (train, test) if spec.needs_tokens or not train.is_tokens else (train.pooled(), test.pooled())
            cfg = spec.api_options(probe_cfg)
            for r in evaluate(name, tr, te, groups, seeds=seeds, n_boot=n_boot,
                              headline=head["headline_groups"] or None, **cfg):
                rows.append(row({"encoder": encoder, "dataset": store.name, "split": sp.kind, "corruption": "clean",
                                 "layer": layer, "k": int(kk), "frames_per_step": int(frames_per_step),
                                 "dataset_fingerprint": store.fingerprint}, r))
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    if out is not None:
        from wmprobe.records import write_records
        write_records(rows, out, {"command": "probe", "latents": source, "latents_shape": list(latents.shape),
                                  "store": str(store.path) if store.path else store.name, "probes": probes,
                                  "ks": [int(x) for x in ks], "split": sp.kind, "seeds": list(seeds),
                                  "frames_per_step": int(frames_per_step), "agg": agg,
                                  "headline": {store.name: head}, "audit": {store.name: audit},
                                  "probe_cfg": {c: np.asarray(v).tolist() if isinstance(v, np.ndarray) else v
                                                for c, v in probe_cfg.items()}})
    return rows


def probe_frame(latents: np.ndarray, store: EpisodeStore | str | os.PathLike[str], **kwargs: Any) -> Any:
    """``wmprobe.probe``: ``probe`` with the records as a pandas DataFrame with the records' columns (the same
    frame ``wmprobe.run`` and ``wmprobe.read_records`` return); keyword arguments as ``probe``."""
    from wmprobe.records import _frame
    return _frame(probe(latents, store, **kwargs))


def check_ks(step_episode: np.ndarray, ks: Sequence[int], dataset: str) -> None:
    """The probe's own ProbeError for a k longer than every episode (``pairs.episodes_too_short``), raised
    before the audit runs at the headline k (its warnings about short episodes come with the probes)."""
    import warnings
    from wmprobe.probes.pairs import episodes_too_short
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in ks:
            episodes_too_short(step_episode, int(k), dataset)


def headline_choice(store: EpisodeStore, split: Split, ks: Sequence[int], explicit: Sequence[str] | None,
                    named_by: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(headline, audit)`` for probing ``store`` under ``split`` at ``ks``: the action-space audit at the
    headline k, and the headline groups resolved from ``explicit`` (``named_by`` says where the user named
    them), else the audit, else every group (``wmprobe.probes.headline.resolve``)."""
    import wmprobe.probes.headline as H
    k = H.headline_k(ks)
    audit = H.run_audit(store, split, k, explicit)
    return H.resolve(store.action_groups, explicit, audit, k=k, what=store.name, explicit_from=named_by), audit
