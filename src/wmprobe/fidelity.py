"""Visual fidelity of frozen latents: a decoder probe (same size and budget for every encoder) and own decoders.

- ``psnr(a, b)`` / ``ssim(a, b)``: ``a, b: (P, H, W, 3) uint8`` -> mean over images; ``psnr_per_image`` and
  ``ssim_per_image`` give ``(P,)``. PSNR uses peak 255 and caps identical images at 100 dB; SSIM is
  pytorch_msssim's (Gaussian window 11, sigma 1.5, K = 0.01/0.03, valid region), equal to
  ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``.
- ``decoder_fidelity(train_tokens, train_frames, test_tokens, test_frames, test_episode)``: tokens
  ``(P, N, D) float32``, frames ``(P, H, W, 3) uint8``. If ``N`` is a square ``g * g`` (or ``grid`` is given)
  the tokens are laid out as a ``g x g`` map; otherwise they are mean-pooled to ``(P, D)`` and a linear layer
  makes an 8 x 8 map. Features are standardised with the train mean/std. The decoder is a 1x1 projection to
  ``width`` channels, ``blocks`` residual 3x3 conv blocks, x2 upsampling blocks until the map is within 8x
  of the frame, then a 3x3 conv to ``3 * r * r`` channels and a pixel shuffle (bilinear resize for the
  remainder). Its linear path makes pixel-like tokens exactly decodable. Trained with Adam on MSE for the
  preset's step budget; the parameter count is reported (it varies with D and the grid only through the
  first layer and the number of upsampling blocks). Tokens and frames may also be row sources
  (``len(src)``, ``src[idx]``; ``RowGather`` over memory-mapped shards): only a minibatch is materialised at a
  time, so the decoder probe's memory does not grow with the data.
- ``own_decoder_fidelity(encoder, frames, episode)`` for encoders with ``decode_latents`` (zoo VAE, SD VAE).
PSNR and SSIM are means of per-image values over the test set; CIs are percentile bootstraps over test
EPISODES (``wmprobe.metrics.bootstrap_counts``).
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from wmprobe._fs import drop_pages
from wmprobe.errors import ProbeError

PSNR_CAP = 100.0


@dataclass(frozen=True)
class DecoderPreset:
    width: int
    blocks: int
    steps: int
    batch: int
    lr: float


# paper: ~17M parameters for D=1024 on a 16x16 grid and 256 px frames (the paper's "~17M decoder")
PRESETS: dict[str, DecoderPreset] = {
    "tiny": DecoderPreset(width=32, blocks=1, steps=200, batch=32, lr=5e-3),
    "demo": DecoderPreset(width=48, blocks=1, steps=300, batch=32, lr=5e-3),
    "paper": DecoderPreset(width=416, blocks=4, steps=3000, batch=64, lr=5e-4),
}


# ---- metrics ---------------------------------------------------------------------------------------------------
def _pair(a: np.ndarray, b: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.as_tensor(np.ascontiguousarray(a)).double(), torch.as_tensor(np.ascontiguousarray(b)).double()


METRIC_CHUNK = 64   # images per metric pass: memory independent of the number of test images


def psnr_per_image(a: Any, b: Any) -> np.ndarray:
    """``(P,)`` PSNR in dB of uint8 images (peak 255), capped at 100 dB for identical images."""
    a, b = _check_pair(a, b)
    out = []
    for i in range(0, len(a), METRIC_CHUNK):
        ta, tb = _pair(a[i:i + METRIC_CHUNK], b[i:i + METRIC_CHUNK])
        mse = ((ta - tb) ** 2).mean((1, 2, 3)).clamp_min(255.0 ** 2 * 10 ** (-PSNR_CAP / 10))
        out.append((10 * torch.log10(255.0 ** 2 / mse)).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def ssim_per_image(a: Any, b: Any) -> np.ndarray:
    """``(P,)`` SSIM (pytorch_msssim, data range 255); images smaller than 11 px use a smaller odd window."""
    from pytorch_msssim import ssim as _ssim
    a, b = _check_pair(a, b)
    win = min(11, min(a.shape[1:3]) - (1 - min(a.shape[1:3]) % 2))
    out = []
    for i in range(0, len(a), METRIC_CHUNK):
        ta, tb = _pair(a[i:i + METRIC_CHUNK], b[i:i + METRIC_CHUNK])
        out.append(_ssim(ta.permute(0, 3, 1, 2).float(), tb.permute(0, 3, 1, 2).float(), data_range=255.0,
                         size_average=False, win_size=win).double().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def _check_pair(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 4 or a.shape[-1] != 3:
        raise ProbeError(f"fidelity metrics need two (P, H, W, 3) uint8 batches of one shape, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    return a, b


def psnr(a: Any, b: Any) -> float:
    """Mean per-image PSNR (dB) of ``a, b: (P, H, W, 3) uint8``."""
    return float(psnr_per_image(a, b).mean())


def ssim(a: Any, b: Any) -> float:
    """Mean per-image SSIM of ``a, b: (P, H, W, 3) uint8``."""
    return float(ssim_per_image(a, b).mean())


def _episode_ci(values: np.ndarray, episode: np.ndarray, n_boot: int, seed: int) -> tuple[float, float]:
    """Percentile 95% CI of the mean of ``values (P,)`` resampling whole episodes."""
    from wmprobe.metrics import bootstrap_counts
    _, inv = np.unique(np.asarray(episode), return_inverse=True)
    n_e = int(inv.max()) + 1
    if n_boot <= 0 or n_e < 2:
        return float("nan"), float("nan")
    sums, cnt = np.bincount(inv, weights=values, minlength=n_e), np.bincount(inv, minlength=n_e).astype(float)
    w = bootstrap_counts(n_e, n_boot, seed)
    lo, hi = np.quantile((w @ sums) / (w @ cnt), [0.025, 0.975])
    return float(lo), float(hi)


def summarise(pred: np.ndarray, target: np.ndarray, episode: np.ndarray, *, decoder: str, params: int,
              seconds: float, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Record fields (psnr, ssim with episode CIs, decoder, decoder_params, fidelity_seconds)."""
    scores = _Scores()
    scores.add(pred, target, episode)
    return scores.summary(decoder=decoder, params=params, seconds=seconds, n_boot=n_boot, seed=seed)


class _Scores:
    """Per-image PSNR / SSIM accumulated chunk by chunk (only the scores are kept, never the images)."""

    def __init__(self) -> None:
        self.psnr: list[np.ndarray] = []
        self.ssim: list[np.ndarray] = []
        self.episode: list[np.ndarray] = []

    def add(self, pred: Any, target: Any, episode: Any) -> None:
        episode = np.asarray(episode).reshape(-1)
        if episode.shape[0] != len(target):
            raise ProbeError(f"fidelity: {episode.shape[0]} episode ids for {len(target)} test frames")
        self.psnr.append(psnr_per_image(pred, target))
        self.ssim.append(ssim_per_image(pred, target))
        self.episode.append(episode)

    def summary(self, *, decoder: str, params: int, seconds: float, n_boot: int, seed: int) -> dict[str, Any]:
        if not self.psnr:
            raise ProbeError("fidelity: no test frames to score")
        p, s, episode = (np.concatenate(x) for x in (self.psnr, self.ssim, self.episode))
        pl, ph = _episode_ci(p, episode, n_boot, seed)
        sl, sh = _episode_ci(s, episode, n_boot, seed)
        return {"psnr": float(p.mean()), "psnr_ci_low": pl, "psnr_ci_high": ph, "ssim": float(s.mean()),
                "ssim_ci_low": sl, "ssim_ci_high": sh, "decoder": decoder, "decoder_params": int(params),
                "fidelity_seconds": float(seconds)}


# ---- the decoder probe ------------------------------------------------------------------------------------------
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


def decoder_fidelity(train_tokens: np.ndarray, train_frames: np.ndarray, test_tokens: np.ndarray,
                     test_frames: np.ndarray, test_episode: np.ndarray, *, preset: str = "demo", seed: int = 0,
                     grid: int | None = None, n_boot: int = 1000, threads: int | None = None) -> dict[str, Any]:
    """Train the decoder probe on (train tokens -> frames), report PSNR/SSIM on the test frames (see module doc).

    ``threads``: torch intra-op threads while training (restored afterwards); None keeps the current setting.
    On a loaded 2-core machine 1 thread trained 2-15x faster than 2 (OpenMP waits for descheduled threads).
    """
    with _threads(threads):
        return _decoder_fidelity(train_tokens, train_frames, test_tokens, test_frames, test_episode,
                                 preset=preset, seed=seed, grid=grid, n_boot=n_boot)


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


class RowGather:
    """Rows ``rows`` (global ids into the concatenation of ``arrays``, e.g. memory-mapped shards) as one row
    source: ``src[idx]`` copies only rows ``rows[idx]`` into memory, in the order of ``idx``."""

    def __init__(self, arrays: Sequence[Any], rows: np.ndarray) -> None:
        self.arrays = list(arrays)
        self.starts = np.cumsum([0] + [len(a) for a in self.arrays])
        self.rows = np.asarray(rows, np.int64)
        if len(self.rows) and (self.rows.min() < 0 or self.rows.max() >= self.starts[-1]):
            raise ProbeError(f"fidelity: row ids outside the {self.starts[-1]} rows of the shards")

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, idx: Any) -> np.ndarray:
        g = self.rows[np.asarray(idx, np.int64)]
        part = np.searchsorted(self.starts, g, side="right") - 1
        out = np.empty((len(g), *self.arrays[0].shape[1:]), self.arrays[0].dtype)
        for q in np.unique(part):
            m = part == q
            out[m] = self.arrays[q][g[m] - self.starts[q]]
        drop_pages(*self.arrays)  # random rows touch every page of a shard in time: keep RSS flat
        return out


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
    scores, test_episode = _Scores(), np.asarray(test_episode).reshape(-1)
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
    scores = _Scores()
    for clip, e in zip(clips, episodes):
        p, t = _own_decode(encoder, torch.from_numpy(np.array(clip, dtype=np.uint8))[None], layer)
        scores.add(p, t, np.full(len(p), int(e)))
    if not scores.psnr:
        raise ProbeError("fidelity: no clips to decode")
    return scores.summary(decoder="own", params=_own_params(encoder), seconds=time.perf_counter() - t0,
                          n_boot=n_boot, seed=seed)


def has_own_decoder(encoder: Any) -> bool:
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
