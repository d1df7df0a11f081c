"""Fidelity of an encoder's own decoder (zoo VAE, SD VAE): encode, ``decode_latents``, score against the frames.

``own_decoder_fidelity(encoder, frames, episode)`` for encoders with ``decode_latents``; the record fields are
those of ``fidelity.metrics.summarise`` with ``decoder="own"``.
"""
from __future__ import annotations

import time
from typing import Any, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from wmprobe.errors import ProbeError
from wmprobe.fidelity.metrics import Scores, summarise


def own_decoder_fidelity(encoder: Any, frames: Any, episode: Any, *, layer: str | None = None,
                         n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """``frames: (B, T, H, W, 3) uint8``, ``episode: (B,)`` (or ``(B, T)``) -> the same dict, ``decoder="own"``.

    Encodes with ``encoder.encode`` and decodes with ``encoder.decode_latents(tokens (B, T', N, D))``; when the
    decoder's output size differs from the frames, the frames are resized (antialiased bilinear) to it.
    """
    t0 = time.perf_counter()
    x = torch.as_tensor(np.asarray(frames))
    pred, target = _own_decode(encoder, x, layer)
    b, t = x.shape[:2]
    ep = np.asarray(episode)
    ep = np.repeat(ep.reshape(b), t) if ep.size == b else ep.reshape(-1)
    return summarise(pred, target, ep, decoder="own", params=_own_params(encoder),
                     seconds=time.perf_counter() - t0, n_boot=n_boot, seed=seed)


def own_decoder_fidelity_clips(encoder: Any, clips: Iterable[Any], episodes: Iterable[int], *,
                               layer: str | None = None, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """``own_decoder_fidelity`` over clips of different lengths (e.g. one per test episode): each clip
    ``(T, H, W, 3) uint8`` is encoded, decoded and scored on its own (``clips`` may be a generator: one clip
    in memory at a time), the metrics pooled, CIs over ``episodes``."""
    t0 = time.perf_counter()
    scores = Scores()
    for clip, e in zip(clips, episodes):
        p, t = _own_decode(encoder, torch.from_numpy(np.array(clip, dtype=np.uint8))[None], layer)
        scores.add(p, t, np.full(len(p), int(e)))
    if not scores.psnr:
        raise ProbeError("fidelity: no clips to decode")
    return scores.summary(decoder="own", params=_own_params(encoder), seconds=time.perf_counter() - t0,
                          n_boot=n_boot, seed=seed)


def has_own_decoder(encoder: Any) -> bool:
    """Whether ``encoder`` decodes its own latents (has a callable ``decode_latents``)."""
    return callable(getattr(encoder, "decode_latents", None))


def _own_params(encoder: Any) -> int:
    dec = getattr(encoder, "decoder_params", None)
    return int(dec) if dec is not None else -1


def _own_decode(encoder: Any, x: torch.Tensor, layer: str | None) -> tuple[np.ndarray, np.ndarray]:
    """``x: (B, T, H, W, 3) uint8`` -> ``(pred, target)``, both ``(B*T, H', W', 3) uint8`` at the decoder's size."""
    if not has_own_decoder(encoder):
        name = getattr(getattr(encoder, "spec", None), "name", type(encoder).__name__)
        raise ProbeError(f"fidelity: encoder {name} has no decode_latents(); use decoder_fidelity instead")
    if x.ndim != 5 or x.dtype != torch.uint8 or x.shape[-1] != 3:
        raise ProbeError(f"fidelity: frames must be (B, T, H, W, 3) uint8, got {x.dtype} {tuple(x.shape)}")
    b, t = x.shape[:2]
    layer = layer or encoder.spec.default_layer
    out = torch.as_tensor(encoder.decode_latents(encoder.encode(x, [layer]).tokens[layer]))
    if out.shape[:2] != (b, t) or out.dtype != torch.uint8:
        raise ProbeError(f"fidelity: decode_latents returned {out.dtype} {tuple(out.shape)}, expected "
                         f"({b}, {t}, H, W, 3) uint8")
    target = x.reshape(b * t, *x.shape[2:])
    if tuple(out.shape[2:4]) != tuple(x.shape[2:4]):
        f = F.interpolate(target.permute(0, 3, 1, 2).float(), size=tuple(out.shape[2:4]), mode="bilinear",
                          antialias=True, align_corners=False)
        target = f.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    return out.reshape(b * t, *out.shape[2:]).numpy(), target.numpy()
