"""Content-addressed cache of resized frames, shared by every encoder with the same resize.

Extraction's per-frame work besides the model is reading the store, corrupting and resizing; for a small
model the resize costs as much as the forward pass. ``FramesCache`` keeps the output of
``Encoder.resize_frames`` for one episode, ``(T, 3, h, w)`` (uint8 where the adapter resizes in uint8, float32
in [0, 1] otherwise), under a key of everything it depends on:

    store fingerprint, episode, corruption (canonical spec, version, seed), and the encoder's ``resize_key()``:
    the resize implementation, input size, interpolation, short-side rule and device type.

Normalisation (mean / std) is applied on read (one fused multiply-add), so encoders that share an input size
and interpolation but not a normalisation (V-JEPA 2 and VideoMAE at 224, DINOv2 and SigLIP at 224 with a
bicubic resize) share the entry too; the latents are bit-identical to extraction without the cache.

Layout: ``ROOT/KEY/frames.npy`` (or ``frames_nhwc.npy``: the frames as ``(T, h, w, 3)`` where the resize gave
channels-last strides, kept so the model sees the same layout) + ``entry.json`` (what the key hashes, for
``wmprobe cache ls``), written atomically (temp dir + rename), ``used`` touched on every hit (``wmprobe cache
gc`` keeps used entries). A missing, partial or unreadable entry is recomputed and rewritten; a read-only cache
is used as far as it goes.
Frames that need no resize (store frames already at the input size) are not cached: reading the store is as
cheap as reading the cache. An encoder that replaces ``Encoder.encode`` (on its class or the instance) is not
cached either: extraction must call its own ``encode``.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from wmprobe._fs import atomic_dir, mark_used
from wmprobe.data.store import file_digest

FORMAT = 1


class FramesCache:
    """Resized frames of ``store``'s episodes for ``encoder`` under ``root`` (see the module doc)."""

    def __init__(self, root: str | os.PathLike, encoder: Any, store: Any, corruption: Any = None,
                 corruption_seed: int = 0) -> None:
        self.root = Path(root)
        self.encoder = encoder
        key = encoder.resize_key()
        frame_hw = tuple(store.frames.shape[1:3])
        needs_resize = key is not None and (frame_hw != tuple(encoder.spec.input_size)
                                            or key.get("resize_short") is not None)
        # only where extraction's ``encode_resized`` computes what ``encode`` would: an encoder (a plugin) that
        # replaces ``encode`` itself must be called through it, or its own code would be skipped
        from wmprobe.encoders.base import Encoder
        own_encode = "encode" in vars(encoder) or getattr(type(encoder), "encode", None) is not Encoder.encode
        self.enabled = bool(needs_resize) and not own_encode
        self.base = {"format": FORMAT, "store": store.fingerprint, "frame_size": list(frame_hw), "resize": key,
                     "corruption": getattr(corruption, "spec", "clean"),
                     "corruption_version": getattr(corruption, "version", 0),
                     "corruption_seed": int(corruption_seed) if corruption is not None else 0}

    def key(self, episode: int) -> str:
        blob = json.dumps({**self.base, "episode": int(episode)}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    def episode(self, episode: int, frames: Callable[[], torch.Tensor]) -> torch.Tensor:
        """``(T, 3, h, w)`` resized frames of ``episode``: from the cache, else ``resize_frames(frames())``
        (``frames()`` gives the episode's, possibly corrupted, ``(T, H, W, 3) uint8`` frames), then stored."""
        entry = self.root / self.key(episode)
        for name, nhwc in (("frames.npy", False), ("frames_nhwc.npy", True)):
            if (entry / name).is_file():
                try:
                    if not _intact(entry, name):                  # bit flips, truncation: recompute
                        break
                    arr = torch.from_numpy(np.load(entry / name, allow_pickle=False))
                    mark_used(entry)
                    return arr.permute(0, 3, 1, 2) if nhwc else arr
                except (OSError, ValueError, EOFError):
                    break                                     # unreadable: recompute
        with torch.inference_mode():
            x = self.encoder.resize_frames(frames()[None])[0].cpu()
        # keep the memory layout resize_frames gave (torch's uint8 resize returns channels-last): the model sees
        # the same strides as without the cache, so its kernels (and last bits) are the same
        nhwc = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
        x = x if nhwc else x.contiguous()
        with contextlib.suppress(OSError):                    # a full or read-only disk only costs the reuse
            with atomic_dir(entry) as tmp:
                name = "frames_nhwc.npy" if nhwc else "frames.npy"
                np.save(tmp / name, x.permute(0, 2, 3, 1).numpy() if nhwc else x.numpy())
                (tmp / "entry.json").write_text(json.dumps({**self.base, "episode": int(episode),
                                                            "shape": list(x.shape), "dtype": str(x.dtype),
                                                            "checksums": {name: file_digest(tmp / name)}},
                                                           default=str))
        return x


def _intact(entry: Path, name: str) -> bool:
    """True when ``entry/name`` matches the BLAKE2b checksum in ``entry.json`` (False when it does not, or
    the entry has no readable record: then it is recomputed and rewritten)."""
    try:
        want = json.loads((entry / "entry.json").read_text())["checksums"][name]
        return file_digest(entry / name) == want
    except (OSError, ValueError, KeyError, TypeError):
        return False

