"""The decoder probe: how much of the frames a frozen latent keeps (same size and budget for every encoder).

``decoder_fidelity(train_tokens, train_frames, test_tokens, test_frames, test_episode)``: tokens
``(P, N, D) float32``, frames ``(P, H, W, 3) uint8``. If ``N`` is a square ``g * g`` (or ``grid`` is given) the
tokens are laid out as a ``g x g`` map; otherwise they are mean-pooled to ``(P, D)`` and a linear layer makes an
8 x 8 map. Features are standardised with the train mean/std. The decoder is a 1x1 projection to ``width``
channels, ``blocks`` residual 3x3 conv blocks, x2 upsampling blocks until the map is within 8x of the frame,
then a 3x3 conv to ``3 * r * r`` channels and a pixel shuffle (bilinear resize for the remainder). Its linear
path makes pixel-like tokens exactly decodable. Trained with Adam on MSE for the preset's step budget; the
parameter count is reported (it varies with D and the grid only through the first layer and the number of
upsampling blocks). Tokens and frames may also be row sources (``len(src)``, ``src[idx]``; ``RowGather`` over
memory-mapped shards): only a minibatch is materialised at a time, so the decoder probe's memory does not grow
with the data. Scored with ``fidelity.metrics`` (PSNR / SSIM, CIs over test episodes).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from wmprobe import presets
from wmprobe._threads import torch_threads
from wmprobe.errors import ProbeError
from wmprobe.fidelity.metrics import Scores
from wmprobe.fidelity.rows import RowGather


@dataclass(frozen=True)
class DecoderPreset:
    """Size and training budget of the decoder probe: conv ``width``, residual ``blocks``, Adam ``steps`` of
    ``batch`` frames at peak learning rate ``lr`` (one-cycle schedule)."""

    width: int
    blocks: int
    steps: int
    batch: int
    lr: float


# the ``decoder`` section of each preset file (wmprobe/presets/NAME.yaml)
PRESETS: dict[str, DecoderPreset] = presets.section("decoder", DecoderPreset)


class _Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)
        nn.init.zeros_(self.c2.weight)
        nn.init.zeros_(self.c2.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.c2(F.gelu(self.c1(h)))


class DecoderProbe(nn.Module):
    """``z: (P, D, g, g)`` map (or ``(P, D)`` pooled) -> ``(P, 3, H, W)`` in [0, 1] (unclamped while training)."""

    def __init__(self, dim: int, grid: int | None, size: tuple[int, int], p: DecoderPreset) -> None:
        super().__init__()
        self.size, self.grid = size, grid
        g = grid if grid is not None else 8
        self.pool_proj = None if grid is not None else nn.Linear(dim, p.width * g * g)
        self.proj = nn.Conv2d(dim if grid is not None else p.width, p.width, 1)
        self.body = nn.Sequential(*[_Block(p.width) for _ in range(p.blocks)])
        ups, res = [], g
        while max(size) / res > 8:
            ups += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(p.width, p.width, 3, padding=1), nn.GELU()]
            res *= 2
        self.up = nn.Sequential(*ups)
        self.r = max(1, math.ceil(max(size) / res))
        self.head = nn.Conv2d(p.width, 3 * self.r * self.r, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.pool_proj is not None:
            z = self.pool_proj(z).view(z.shape[0], -1, 8, 8)
        h = self.up(self.body(self.proj(z)))
        img = F.pixel_shuffle(self.head(h), self.r) + 0.5
        if tuple(img.shape[-2:]) != self.size:
            img = F.interpolate(img, size=self.size, mode="bilinear", align_corners=False)
        return img


def _layout(tokens: np.ndarray, grid: int | None, name: str) -> tuple[torch.Tensor, int | None]:
    """``(P, N, D)`` -> ``(P, D, g, g)`` map (square N or given grid) or ``(P, D)`` pooled, plus the grid."""
    t = np.asarray(tokens, dtype=np.float32)
    if t.ndim == 2:
        t = t[:, None]
    if t.ndim != 3 or not np.isfinite(t).all():
        raise ProbeError(f"fidelity: {name} must be finite (P, N, D) float tokens, got shape {t.shape}")
    n = t.shape[1]
    g = grid if grid is not None else (math.isqrt(n) if math.isqrt(n) ** 2 == n and n > 1 else None)
    x = torch.from_numpy(t)
    if g is None:
        return x.mean(1), None
    if g * g != n:
        raise ProbeError(f"fidelity: grid={g} does not fit {n} tokens per frame")
    return x.transpose(1, 2).reshape(len(x), -1, g, g).contiguous(), g


def _frames01(frames: np.ndarray, name: str) -> torch.Tensor:
    f = np.asarray(frames)
    if f.ndim != 4 or f.shape[-1] != 3 or f.dtype != np.uint8:
        raise ProbeError(f"fidelity: {name} must be (P, H, W, 3) uint8, got {f.dtype} {f.shape}")
    return torch.from_numpy(np.ascontiguousarray(f)).permute(0, 3, 1, 2).float().div_(255.0)


def decoder_fidelity(train_tokens: np.ndarray | RowGather, train_frames: np.ndarray | RowGather,
                     test_tokens: np.ndarray | RowGather, test_frames: np.ndarray | RowGather,
                     test_episode: np.ndarray, *, preset: str = "demo", seed: int = 0, grid: int | None = None,
                     n_boot: int = 1000, threads: int | None = None) -> dict[str, Any]:
    """Train the decoder probe on (train tokens -> frames), report PSNR/SSIM on the test frames (see module doc).
    Tokens and frames are arrays or ``RowGather`` row sources (memory-mapped shards read a minibatch at a time).

    ``threads``: torch intra-op threads while training (restored afterwards); None keeps the current setting.
    On a loaded 2-core machine 1 thread trained 2-15x faster than 2 (OpenMP waits for descheduled threads).
    """
    with torch_threads(threads):
        return _decoder_fidelity(train_tokens, train_frames, test_tokens, test_frames, test_episode,
                                 preset=preset, seed=seed, grid=grid, n_boot=n_boot)


STATS_CHUNK = 128   # rows per pass when computing the token standardisation and the test predictions


def _decoder_fidelity(train_tokens: Any, train_frames: Any, test_tokens: Any, test_frames: Any,
                      test_episode: np.ndarray, *, preset: str, seed: int, grid: int | None,
                      n_boot: int) -> dict[str, Any]:
    """Tokens and frames are arrays or row sources (``len(src)``, ``src[idx] -> rows``, e.g. memory-mapped
    shards): only a minibatch of rows is materialised at a time, so memory does not grow with the data."""
    if preset not in PRESETS:
        raise ProbeError(f"fidelity: unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    p, t0 = PRESETS[preset], time.perf_counter()
    n_tr, n_te = len(train_tokens), len(test_tokens)
    if len(train_frames) != n_tr or len(test_frames) != n_te or n_tr < 2 or n_te < 1:
        raise ProbeError(f"fidelity: {n_tr} train tokens for {len(train_frames)} frames, {n_te} test tokens for "
                         f"{len(test_frames)} frames (need >= 2 train and >= 1 test)")
    first = np.arange(1)
    z0, g = _layout(train_tokens[first], grid, "train_tokens")
    zt0, _ = _layout(test_tokens[first], g, "test_tokens")
    y0, yt0 = _frames01(train_frames[first], "train_frames"), _frames01(test_frames[first], "test_frames")
    if z0.shape[1:] != zt0.shape[1:] or y0.shape[1:] != yt0.shape[1:]:
        raise ProbeError(f"fidelity: train/test shapes differ: tokens {tuple(z0.shape[1:])} vs "
                         f"{tuple(zt0.shape[1:])}, frames {tuple(y0.shape[1:])} vs {tuple(yt0.shape[1:])}")
    dims = (0, 2, 3) if g is not None else (0,)
    # per-channel mean / std (ddof 1) of the train tokens, in float64 over chunks of rows
    s1 = torch.zeros(z0.shape[1], dtype=torch.float64)
    s2, count = torch.zeros_like(s1), 0
    for i in range(0, n_tr, STATS_CHUNK):
        z = _layout(train_tokens[np.arange(i, min(n_tr, i + STATS_CHUNK))], g, "train_tokens")[0].double()
        s1 += z.sum(dims).reshape(-1)
        s2 += (z * z).sum(dims).reshape(-1)
        count += z.numel() // z.shape[1]
    mean = s1 / count
    var = ((s2 - count * mean * mean) / max(1, count - 1)).clamp_min(0.0)
    shape = (1, -1, 1, 1) if g is not None else (1, -1)
    mu, sd = mean.float().view(shape), var.sqrt().float().clamp_min(1e-6).view(shape)

    def tokens(src: Any, idx: np.ndarray, name: str) -> torch.Tensor:
        return (_layout(src[idx], g, name)[0] - mu) / sd

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = DecoderProbe(z0.shape[1], g, tuple(y0.shape[-2:]), p)
        opt = torch.optim.Adam(net.parameters(), lr=p.lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=p.lr, total_steps=p.steps, pct_start=0.1)
        gen = torch.Generator().manual_seed(seed)
        for _ in range(p.steps):
            idx = torch.randint(0, n_tr, (min(p.batch, n_tr),), generator=gen).numpy()
            loss = F.mse_loss(net(tokens(train_tokens, idx, "train_tokens")),
                              _frames01(train_frames[idx], "train_frames"))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    scores, test_episode = Scores(), np.asarray(test_episode).reshape(-1)
    if len(test_episode) != n_te:
        raise ProbeError(f"fidelity: {len(test_episode)} episode ids for {n_te} test frames")
    with torch.inference_mode():
        for i in range(0, n_te, STATS_CHUNK):
            idx = np.arange(i, min(n_te, i + STATS_CHUNK))
            pred = net(tokens(test_tokens, idx, "test_tokens"))
            pred = (pred.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
            scores.add(pred, np.asarray(test_frames[idx]), test_episode[idx])
    return scores.summary(decoder="probe", params=sum(q.numel() for q in net.parameters()),
                          seconds=time.perf_counter() - t0, n_boot=n_boot, seed=seed)


