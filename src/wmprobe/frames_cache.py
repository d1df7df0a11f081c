"""Content-addressed cache of preprocessed frames: resized ones shared by every encoder with the same resize, and
(on CPU) normalised ones per normalisation, read back zero-copy.

Extraction's per-frame work besides the model is reading the store, corrupting, resizing and normalising; for a
small model these cost as much as the forward pass. ``FramesCache`` keeps, per episode:

- **resized** entries: the output of ``Encoder.resize_frames``, ``(T, 3, h, w)`` (uint8 where the adapter resizes
  in uint8, float32 in [0, 1] otherwise), under a key of everything it depends on: store fingerprint, episode,
  corruption (canonical spec, version, seed), and the encoder's ``resize_key()``: the resize implementation,
  input size, interpolation, short-side rule and device type. Encoders that share an input size and
  interpolation but not a normalisation (V-JEPA 2 and VideoMAE at 224, DINOv2 and SigLIP at 224 with a bicubic
  resize) share these, so they resize once.
- **normalised** entries (``normalised=True``, the default on CPU; ``$WMPROBE_FRAMES_NORMALISED=0`` or
  ``extract(..., frames_normalised=False)`` turns them off): ``Encoder.normalise`` of the resized entry, float32,
  in the memory layout (strides) ``normalise`` gives, i.e. exactly what the encoder's forward takes, under
  sha256 of ``{"source": the resized entry's key, "normalise": Encoder.normalise_key() (implementation, mean,
  std, device) + float32, torch's version and CPU kernel level}``. A hit maps the file (``mmap``, copy-on-write,
  its pages populated in one ``madvise`` call) and hands the pages to the model without a copy: extraction is
  then read + forward + pool + write. They cost 4x the resized entry's disk (float32 against uint8), per
  normalisation: a 64 px episode of 32 frames is 0.4 MB resized, 1.6 MB normalised. They are made from the
  resized entry, which is written first and kept (two normalisations of one resize still resize once).

The latents are bit-identical to extraction without the cache in every case (same float ops on the same values
in the same layout; tests/test_frames_cache.py). Corrupted frames have their own entries (the corruption is in
the resized key, and so in the normalised one): a corrupted run never reads clean frames.

Layout: ``ROOT/KEY/frames.npy`` (or ``frames_nhwc.npy``: the frames as ``(T, h, w, 3)`` where the resize gave
channels-last strides, kept so the model sees the same layout), or ``ROOT/KEY/normalised.npy`` (the frames in the
dimension order in which they are dense, ``order`` in the record), + ``entry.json`` (what the key hashes, for
``wmprobe cache ls``, and the file's BLAKE2b checksum, size and mtime), written atomically (temp dir + rename),
``used`` touched on every hit (``wmprobe cache gc`` drops entries unused for ``--keep-days``, both kinds alike;
there is no size cap). A hit checks the file's size and mtime against the record and re-hashes it only when they
changed (the store's rule): hashing every read cost a tiny model ~10% of its forward pass; the parsed
``entry.json`` is kept in the process while its inode, size and mtime stay the same (a hit then costs a ``stat`` of
it, not a read and parse); a normalised hit stats only its data file, checked against its record and ``.npy``
header once per file version (inode, size, mtime). A missing, partial, edited or unreadable entry is recomputed and
rewritten (never used); a read-only cache is used as far as it goes. Entries are only ever replaced whole (a
rename), never written in place: a mapped file edited in place by something else while in use is outside this rule.
Frames that need no resize (store frames already at the input size) are not cached: reading the store is as cheap
as reading the cache. An encoder that replaces ``Encoder.encode`` (on its class or the instance) is not cached
either: extraction must call its own ``encode``; one whose ``normalise_key()`` is None (its ``normalise`` patched
on the instance, or an adapter that says so) gets resized entries only.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import torch

from wmprobe._fs import atomic_dir, mark_used
from wmprobe.frames_files import (NORMALISED, RECORDS_MAX, _dim_order, _intact, _map, _read,  # noqa: F401
                                  _record, _write_entry)

FORMAT = 1
_SLOT = "\x00episode\x00"
SWITCH = "WMPROBE_FRAMES_NORMALISED"                # "0" (or false / no / off): keep resized frames only


class FramesCache:
    """Resized frames of ``store``'s episodes for ``encoder`` under ``root`` (see the module doc)."""

    def __init__(self, root: str | os.PathLike, encoder: Any, store: Any, corruption: Any = None,
                 corruption_seed: int = 0, normalised: bool | None = None) -> None:
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

        # the key's JSON around the episode number, serialised once (a JSON int is ``str(int)``)
        parts = json.dumps({**self.base, "episode": _SLOT}, sort_keys=True, default=str).split(json.dumps(_SLOT))
        self._key_parts = tuple(parts) if len(parts) == 2 else None

        # normalised entries: on CPU (an accelerator normalises on the device), unless switched off
        if normalised is None:
            normalised = os.environ.get(SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")
        nkey = encoder.normalise_key() if self.enabled and normalised else None
        if nkey is not None and nkey.get("device") == "cpu":
            # the float ops' last bits may differ between torch versions and CPU kernel levels (FMA or not)
            self.normalise_spec: dict | None = {**nkey, "dtype": "float32", "torch": torch.__version__,
                                                "cpu": torch.backends.cpu.get_cpu_capability()}
        else:
            self.normalise_spec = None
        self.keeps_normalised = self.normalise_spec is not None
        self._nblob = json.dumps(self.normalise_spec, sort_keys=True, default=str)
        self._root = str(self.root)

    def key(self, episode: int) -> str:
        """sha256 of ``json.dumps({**base, "episode": episode}, sort_keys=True)``, first 32 hex digits."""
        episode = int(episode)
        if self._key_parts is None:
            blob = json.dumps({**self.base, "episode": episode}, sort_keys=True, default=str)
            return hashlib.sha256(blob.encode()).hexdigest()[:32]
        memo = (self._key_parts, episode)                     # every extract call builds a FramesCache: the
        key = _KEYS.get(memo)                                 # keys of the episodes it has seen are kept
        if key is None:
            if len(_KEYS) >= RECORDS_MAX:
                _KEYS.clear()
            blob = f"{self._key_parts[0]}{episode}{self._key_parts[1]}"
            _KEYS[memo] = key = hashlib.sha256(blob.encode()).hexdigest()[:32]
        return key

    def episode(self, episode: int, frames: Callable[[], torch.Tensor]) -> torch.Tensor:
        """``(T, 3, h, w)`` resized frames of ``episode``: from the cache, else ``resize_frames(frames())``
        (``frames()`` gives the episode's, possibly corrupted, ``(T, H, W, 3) uint8`` frames), then stored."""
        entry = self.root / self.key(episode)
        record = _record(entry)
        for name, nhwc in (("frames.npy", False), ("frames_nhwc.npy", True)):
            if name in record.get("checksums", {}) or (not record and (entry / name).is_file()):
                try:
                    arr = _read(entry, name, record, nhwc)
                    if arr is None:                               # bit flips, truncation: recompute
                        break
                    mark_used(entry)
                    arr = torch.from_numpy(arr)
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
                _write_entry(tmp, "frames_nhwc.npy" if nhwc else "frames.npy",
                             x.permute(0, 2, 3, 1).numpy() if nhwc else x.numpy(),
                             {**self.base, "episode": int(episode), "shape": list(x.shape), "dtype": str(x.dtype)})
        return x

    def normalised_key(self, episode: int) -> str:
        """sha256 of ``json.dumps({"normalise": normalise_spec, "source": key(episode)}, sort_keys=True)``, first
        32 hex digits: the resized entry's key (store, episode, corruption, resize) and the normalisation
        (``Encoder.normalise_key()``: implementation, mean, std, device; float32, torch version, CPU level)."""
        source = self.key(episode)
        memo = (source, self._nblob)
        key = _NKEYS.get(memo)
        if key is None:
            if len(_NKEYS) >= RECORDS_MAX:
                _NKEYS.clear()
            blob = json.dumps({"normalise": self.normalise_spec, "source": source}, sort_keys=True, default=str)
            _NKEYS[memo] = key = hashlib.sha256(blob.encode()).hexdigest()[:32]
        return key

    def normalised(self, episode: int, frames: Callable[[], torch.Tensor],
                   normalise: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """``normalise(self.episode(episode, frames))``: ``(T, 3, h, w)`` float32 with the strides ``normalise``
        gives, mapped from its entry (zero-copy: ``mmap`` of the ``.npy`` file, copy-on-write, its pages
        populated in one call) when it is intact, else computed from the resized entry (itself read or
        computed) and stored. Only with ``keeps_normalised``."""
        entry = os.path.join(self._root, self.normalised_key(episode))
        with contextlib.suppress(OSError, ValueError):        # missing, unreadable: recomputed below
            x = _map(entry)
            if x is not None:
                mark_used(entry)
                return x
        x = normalise(self.episode(episode, frames))
        order = _dim_order(x)
        if order is None or x.dtype != torch.float32 or x.device.type != "cpu":
            return x                                          # a layout a file cannot give back: not stored
        with contextlib.suppress(OSError):                    # a full or read-only disk only costs the reuse
            with atomic_dir(entry) as tmp:
                _write_entry(tmp, NORMALISED, x.permute(order).numpy(),
                             {**self.base, "episode": int(episode), "kind": "normalised", "source": self.key(episode),
                              "normalise": self.normalise_spec, "shape": list(x.shape), "order": order,
                              "dtype": "torch.float32"})
        return x


_NKEYS: dict[tuple[str, str], str] = {}          # (resized key, normalise_spec's JSON) -> normalised key
_KEYS: dict[tuple[tuple[str, ...], int], str] = {}   # (the key's JSON around the episode, episode) -> key
