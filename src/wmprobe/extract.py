"""Extraction: run a frozen encoder over an EpisodeStore and keep per-step features.

One forward pass per window gives every requested layer. Alignment is explicit: each latent step carries
``step_frame``, the global store row of the FIRST frame it covers, and ``step_episode``; probes pair steps
through these indices, never by position, so per-frame and tubelet encoders share one pairing rule.

Windowing (docs/protocol.md, "Extraction"):
- per-frame encoders (``frames_per_step == 1``, no ``clip_len``, no ``extra['window']``): frames are batched
  ``batch_size`` at a time, each frame encoded alone;
- video encoders: an episode is cut into non-overlapping windows of ``clip_len`` frames (fixed-length models
  such as VideoMAE) or ``extra['window']`` frames (any-length models such as V-JEPA 2, default 16). The last
  window is padded by repeating the episode's last frame; latent steps that start on a padded frame are
  dropped. Frames left over when an episode's length is not a multiple of ``frames_per_step`` produce no
  step.
- corruptions are applied to a whole episode at once with seed ``(corruption_seed, episode)``, before
  windowing, so the corrupted pixels never depend on batch size or window length.

Shapes: ``pooled[layer]: (S, D) float32``; ``tokens[layer]: (S, N, D) float32`` (only with keep_tokens,
optionally average-pooled over a square token grid by ``token_pool``); ``step_frame, step_episode: (S,) int64``.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from wmprobe._fs import drop_pages
from wmprobe._progress import progress_bar
from wmprobe.data.store import EpisodeStore
from wmprobe.encoders.base import Encoder
from wmprobe.errors import EncoderError, StoreError

DEFAULT_WINDOW = 16


@dataclass
class StepFeatures:
    pooled: dict[str, np.ndarray]
    step_frame: np.ndarray
    step_episode: np.ndarray
    tokens: dict[str, np.ndarray] = field(default_factory=dict)
    spec: dict[str, Any] = field(default_factory=dict)

    @property
    def n_steps(self) -> int:
        return int(self.step_frame.shape[0])

    @property
    def layers(self) -> list[str]:
        return list(self.pooled)

    def select(self, rows: np.ndarray) -> "StepFeatures":
        return StepFeatures({l: np.asarray(v[rows]) for l, v in self.pooled.items()}, self.step_frame[rows],
                            self.step_episode[rows], {l: np.asarray(v[rows]) for l, v in self.tokens.items()},
                            self.spec)

    @staticmethod
    def concat(parts: Sequence["StepFeatures"]) -> "StepFeatures":
        if not parts:
            raise EncoderError("no feature shards to concatenate")
        cat = lambda key, l: np.concatenate([getattr(p, key)[l] for p in parts])  # noqa: E731
        return StepFeatures({l: cat("pooled", l) for l in parts[0].pooled},
                            np.concatenate([p.step_frame for p in parts]),
                            np.concatenate([p.step_episode for p in parts]),
                            {l: cat("tokens", l) for l in parts[0].tokens}, parts[0].spec)

    # ---- io: plain .npy + meta.json, memory-mapped on read ------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        out = {"step_frame": self.step_frame, "step_episode": self.step_episode}
        out.update({f"pooled.{l}": v for l, v in self.pooled.items()})
        out.update({f"tokens.{l}": v for l, v in self.tokens.items()})
        return out

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for name, arr in self.arrays().items():
            _save_npy(os.path.join(path, f"{name}.npy"), np.ascontiguousarray(arr))
        meta = {"layers": self.layers, "token_layers": list(self.tokens), "spec": self.spec}
        (path / "features.json").write_text(json.dumps(meta, sort_keys=True, default=str))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = True) -> "StepFeatures":
        path = Path(path)
        try:
            meta = json.loads((path / "features.json").read_text())
            load = lambda n: np.load(path / f"{n}.npy", mmap_mode="r" if mmap else None,  # noqa: E731
                                     allow_pickle=False)
            return cls({l: load(f"pooled.{l}") for l in meta["layers"]}, np.asarray(load("step_frame")),
                       np.asarray(load("step_episode")), {l: load(f"tokens.{l}") for l in meta["token_layers"]},
                       meta["spec"])
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            raise StoreError(f"feature shard {path} is missing or corrupt: {exc}") from None


def _save_npy(path: str, arr: np.ndarray) -> None:
    """``np.save(path, arr)`` for a C-contiguous numeric array, the same bytes: the header numpy writes, then the
    data, in two ``write`` calls (``np.save``'s ``tofile`` costs a ``dup``, ``fdopen`` and seeks per file)."""
    header = io.BytesIO()
    try:
        if arr.dtype.hasobject or not arr.flags.c_contiguous:
            raise ValueError("not a plain array")
        np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(arr))
    except ValueError:                                               # a header too long for format 1.0
        np.save(path, arr, allow_pickle=False)
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        for chunk in (memoryview(header.getvalue()), arr.reshape(-1).view(np.uint8).data):
            while chunk:
                chunk = chunk[os.write(fd, chunk):]
    finally:
        os.close(fd)


def window_plan(length: int, frames_per_step: int, window: int | None) -> list[tuple[int, int]]:
    """``[(start, n_real_frames), ...]`` windows covering an episode of ``length`` frames.

    ``window=None`` means per-frame (one window of all frames). Only full steps are kept.
    """
    usable = length - length % frames_per_step
    if usable <= 0:
        return []
    if window is None:
        return [(0, usable)]
    return [(s, min(window, usable - s)) for s in range(0, usable, window)]


def encoder_window(encoder: Encoder) -> int | None:
    spec = encoder.spec
    if spec.clip_len is not None:
        return int(spec.clip_len)
    if spec.frames_per_step > 1 or "window" in spec.extra:
        w = int(spec.extra.get("window", DEFAULT_WINDOW))
        return w - w % spec.frames_per_step
    return None


def _pool_tokens(tokens: torch.Tensor, pool: int | None) -> torch.Tensor:
    """``(S, N, D)`` -> ``(S, N / pool^2, D)`` by average pooling over a square grid."""
    if not pool or pool == 1:
        return tokens
    s, n, d = tokens.shape
    g = math.isqrt(n)
    if g * g != n or g % pool:
        raise EncoderError(f"token_pool={pool} needs a square token grid divisible by it; got {n} tokens")
    grid = tokens.transpose(1, 2).reshape(s, d, g, g)
    return F.avg_pool2d(grid, pool).flatten(2).transpose(1, 2)


def _episode_frames(store: EpisodeStore, e: int, corruption: Any, seed: int) -> torch.Tensor:
    frames = torch.from_numpy(np.array(store.frames[store.episode_slice(e)]))  # a writable copy
    drop_pages(store.frames)  # the mapped pages just read would otherwise stay in RSS: it grew with the store
    if corruption is not None:
        frames = corruption.apply_clips(frames[None], [seed * 1_000_003 + e])[0]
    return frames


def extract(encoder: Encoder, store: EpisodeStore, *, layers: Sequence[str] | None = None,
            episodes: Sequence[int] | None = None, corruption: Any = None, corruption_seed: int = 0,
            keep_tokens: bool = False, token_pool: int | None = None, batch_size: int = 32,
            progress: bool = False, frames_cache: str | os.PathLike | None = None,
            frames_normalised: bool | None = None) -> StepFeatures:
    """Encode ``episodes`` (default: all) of ``store``; see the module doc for windowing and alignment.

    ``frames_cache``: a directory for ``wmprobe.frames_cache.FramesCache``; each episode's resized frames are
    then read from it (or computed once and stored), so encoders sharing a resize resize once, and (on CPU)
    its frames already normalised, mapped zero-copy, so a hit costs no normalisation either.
    ``frames_normalised=False`` keeps the resized frames only (a quarter of the disk; default: on unless
    ``$WMPROBE_FRAMES_NORMALISED`` is ``0``). The features are identical bit for bit in every case."""
    layers = tuple(layers) if layers else (encoder.spec.default_layer,)
    episodes = list(range(store.n_episodes)) if episodes is None else [int(e) for e in episodes]
    bad = [e for e in episodes if not 0 <= e < store.n_episodes]
    if bad:
        raise StoreError(f"{store.name}: episode(s) {bad[:5]} out of range 0..{store.n_episodes - 1}")
    if isinstance(corruption, str):
        from wmprobe.data.corruptions import parse_corruption
        corruption = None if corruption == "clean" else parse_corruption(corruption)
    fps, window = encoder.spec.frames_per_step, encoder_window(encoder)
    pooled: dict[str, list[np.ndarray]] = {l: [] for l in layers}
    toks: dict[str, list[np.ndarray]] = {l: [] for l in layers} if keep_tokens else {}
    step_frame, step_episode = [], []

    def emit(out: dict[str, torch.Tensor], first_frames: np.ndarray, ep: int) -> None:
        for l in layers:
            t = out[l]                                                       # (S, N, D)
            pooled[l].append(t.mean(dim=1).numpy())
            if keep_tokens:
                toks[l].append(_pool_tokens(t, token_pool).numpy())
        step_frame.append(first_frames)
        step_episode.append(np.full(len(first_frames), ep, np.int64))

    cache = None
    if frames_cache is not None:
        from wmprobe.frames_cache import FramesCache
        cache = FramesCache(frames_cache, encoder, store, corruption, corruption_seed, frames_normalised)
        cache = cache if cache.enabled else None
    encode = encoder.encode if cache is None else encoder.encode_normalised
    normalise = _EpisodeNormaliser(encoder)              # used with the cache only; its buffer comes on use
    bar = progress_bar(len(episodes), f"extract {encoder.spec.name}", progress, unit="ep", dynamic_ncols=True)
    starts = store.episode_starts                       # a property that builds the array: once, not per episode
    # the loop's own tensor ops (slices, pads, token means) without autograd's bookkeeping: an adapter on
    # Encoder.encode runs in inference mode anyway; one with its own encode (a plugin) is left as it is
    with contextlib.nullcontext() if _own_encode(encoder) else torch.inference_mode():
        for e in episodes:
            start = int(starts[e])
            if cache is None:       # (T, H, W, 3) uint8
                frames = _episode_frames(store, e, corruption, corruption_seed)
            elif cache.keeps_normalised:    # (T, 3, h, w) normalised, mapped from the cache (or made and stored)
                frames = cache.normalised(e, lambda: _episode_frames(store, e, corruption, corruption_seed), normalise)
            else:                   # (T, 3, h, w) resized, then normalised: windows and padding act on dim 0 alike
                frames = normalise(cache.episode(e, lambda: _episode_frames(store, e, corruption, corruption_seed)))
            for w0, n_real in window_plan(frames.shape[0], fps, window):
                if window is None:  # per-frame encoder: batches of single frames
                    for b0 in range(0, n_real, batch_size):
                        chunk = frames[w0 + b0: w0 + min(n_real, b0 + batch_size)]
                        lat = encode(chunk[:, None], layers)
                        first = start + w0 + b0
                        emit({l: lat.tokens[l][:, 0] for l in layers},
                             np.arange(first, first + len(chunk), dtype=np.int64), e)
                    continue
                clip = frames[w0: w0 + n_real]
                if n_real < window:  # pad by repeating the last frame; padded steps dropped below
                    clip = torch.cat([clip, clip[-1:].expand(window - n_real, *clip.shape[1:])])
                lat = encode(clip[None], layers)
                index = lat.frame_index.numpy()
                keep = _kept(index, n_real)
                sel = keep if isinstance(keep, slice) else torch.from_numpy(keep)
                emit({l: lat.tokens[l][0][sel] for l in layers}, np.add(index[keep], start + w0, dtype=np.int64), e)
            bar.update(1)
    bar.close()
    if not step_frame:
        raise StoreError(f"{store.name}: no latent steps extracted (episodes shorter than "
                         f"{fps} frames per step?)")
    spec_dict = encoder.spec.to_dict()
    spec = dict(spec_dict, key=encoder.spec.key(spec_dict), window=window,
                corruption=getattr(corruption, "spec", "clean"), token_pool=token_pool)
    return StepFeatures({l: np.concatenate(v).astype(np.float32, copy=False) for l, v in pooled.items()},
                        np.concatenate(step_frame), np.concatenate(step_episode),
                        {l: np.concatenate(v).astype(np.float32, copy=False) for l, v in toks.items()}, spec)


def _kept(index: np.ndarray, n_real: int) -> slice | np.ndarray:
    """The latent steps of a window that start on a real (not padded) frame: ``index < n_real``, as a slice
    when they are a leading run (always, for ``frame_index = arange * frames_per_step``): a view, where a
    boolean mask copied the tokens; the same values."""
    keep = index < n_real
    if keep.all():
        return slice(None)
    k = int(keep.argmin())                                            # the first padded step
    return keep if keep[k:].any() else slice(0, k)


def _own_encode(encoder: Encoder) -> bool:
    """Whether ``encoder`` replaces ``Encoder.encode`` (on its class or the instance)."""
    return "encode" in vars(encoder) or getattr(type(encoder), "encode", None) is not Encoder.encode


@functools.lru_cache(maxsize=32)
def _takes_out(fn: Any) -> bool:
    """Whether an adapter's ``normalise`` takes ``out=`` (looked up once per function)."""
    try:
        return "out" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


class _EpisodeNormaliser:
    """``encoder.normalise`` of a cached episode's resized frames ``(T, 3, h, w)``, once per episode, into one
    float32 buffer reused for every episode of an ``extract`` call (adapters whose ``normalise`` takes ``out``;
    others allocate). Elementwise, so each window's values and strides are those ``encode_resized`` would give
    it; the buffer is overwritten only after the previous episode's windows are encoded."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder, self.buffer = encoder, None
        self.takes_out = _takes_out(encoder.normalise.__func__ if inspect.ismethod(encoder.normalise)
                                    else encoder.normalise)

    def __call__(self, resized: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            x = resized.to(self.encoder.device)
            if not self.takes_out:
                return self.encoder.normalise(x)
            if self.buffer is None or self.buffer.numel() < x.numel() or self.buffer.device != x.device:
                self.buffer = torch.empty(x.numel(), dtype=torch.float32, device=x.device)
            return self.encoder.normalise(x, out=self.buffer)
