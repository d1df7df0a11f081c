"""Attentive probe: un-pooled patch tokens of both steps -> a small transformer head with a query token.

Protocol of arXiv 2605.06388 / V-JEPA 2's attentive probes, kept light for CPUs:

1. tokens ``z_t, z_tk: (P, N, D)``, optionally average-pooled ``pool x pool`` over their ``grid x grid``
   layout (N = grid^2) to ``(P, N / pool^2, D)``; standardised per channel with train statistics;
2. linear ``D -> d`` (d = 64), plus a learned step embedding (t or t+k) and a learned position embedding
   (shared by both steps), giving ``2N`` tokens (N for the single-frame control);
3. ``depth`` pre-norm self-attention blocks (default 1; 4 heads, MLP ratio 2), then one cross-attention
   block where a learned query token attends over all tokens, LayerNorm, linear ``d -> A``.

Training is the MLP probe's: L1 on standardised targets, AdamW with warm-up + cosine, seeds x lrs x weight
decays as one batched model (parameters ``(S, G, ...)``), best (lr, wd) per seed on held-out TRAIN episodes.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from wmprobe.errors import ProbeError
from wmprobe.probes.base import ProbeData, Standardizer, require_episodes, val_split
from wmprobe.probes.mlp import Params, best_heads, grid, head_r2, train_heads, uniform_init
from wmprobe.probes.spec import ProbeSpec, register_probe

register_probe(ProbeSpec(
    "attentive", "wmprobe.probes.attentive:AttentiveProbe",
    "attention pooling over the patch tokens of both steps, then an MLP (needs --tokens / (N, tokens, D) latents)",
    seeded=True, needs_tokens=True, order=3), runtime=False)


def pool_tokens(z: np.ndarray, pool: int, grid_side: int | None = None) -> np.ndarray:
    """``(P, N, D) -> (P, N / pool^2, D)``: mean over ``pool x pool`` blocks of the square token grid."""
    if pool <= 1:
        return z
    p, n, d = z.shape
    g = grid_side or int(round(math.sqrt(n)))
    if g * g != n:
        raise ProbeError(f"attentive probe: pool={pool} needs a square token grid, got N={n} tokens "
                         f"(grid={grid_side}); drop CLS/register tokens or give grid")
    if g % pool:
        raise ProbeError(f"attentive probe: token grid side {g} is not divisible by pool={pool}")
    z = z.reshape(p, g // pool, pool, g // pool, pool, d).mean((2, 4))
    return z.reshape(p, (g // pool) ** 2, d)


def _ln(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:]) * w + b


def _lin(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``x: (H, B, T, i)``, ``w: (H, i, o)`` -> ``(H, B, T, o)``."""
    h, b, t, i = x.shape
    return torch.bmm(x.reshape(h, b * t, i), w).view(h, b, t, -1)


def _attn(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """``q: (H, B, Tq, d)``, ``k, v: (H, B, T, d)`` -> ``(H, B, Tq, d)`` multi-head attention."""
    h, b, tq, d = q.shape
    split = lambda x: x.reshape(h * b, x.shape[2], heads, d // heads).transpose(1, 2)
    o = F.scaled_dot_product_attention(split(q), split(k), split(v))
    return o.transpose(1, 2).reshape(h, b, tq, d)


def attentive_forward(p: Params, x: torch.Tensor, heads: int, depth: int) -> torch.Tensor:
    """``x: (S, B, T, D)`` tokens (T = n_steps * N) -> ``(S, G, B, A)``; every param is ``(S, G, ...)``."""
    s, g = p["Wp"].shape[:2]
    hh = s * g
    flat = {k: v.reshape(hh, *v.shape[2:]) for k, v in p.items()}
    xb = x[:, None].expand(s, g, *x.shape[1:]).reshape(hh, *x.shape[1:])
    n_steps = xb.shape[2] // flat["pos"].shape[1]
    emb = (flat["pos"][:, None, :, :] + flat["step"][:, :n_steps, None, :]).reshape(hh, 1, -1, flat["pos"].shape[-1])
    h = _lin(xb, flat["Wp"]) + flat["bp"][:, None] + emb
    for li in range(depth):
        a = _ln(h, flat[f"ln1w{li}"][:, None], flat[f"ln1b{li}"][:, None])
        q, k, v = _lin(a, flat[f"Wqkv{li}"]).chunk(3, dim=-1)
        h = h + _lin(_attn(q, k, v, heads), flat[f"Wo{li}"])
        a = _ln(h, flat[f"ln2w{li}"][:, None], flat[f"ln2b{li}"][:, None])
        h = h + _lin(F.gelu(_lin(a, flat[f"Wm1{li}"])), flat[f"Wm2{li}"])
    kv = _ln(h, flat["lnkw"][:, None], flat["lnkb"][:, None])
    k, v = _lin(kv, flat["Wkv"]).chunk(2, dim=-1)
    q = _lin(flat["query"][:, None].expand(hh, h.shape[1], 1, -1), flat["Wq"])
    o = _lin(_attn(q, k, v, heads), flat["Wco"]) + flat["query"][:, None]
    o = _ln(o, flat["lnow"][:, None], flat["lnob"][:, None])
    out = _lin(o, flat["Wout"])[:, :, 0] + flat["bout"]
    return out.view(s, g, *out.shape[1:])


class AttentiveProbe:
    """Query-token attention over patch tokens of both steps; ``predict`` returns ``(S, P, A)``."""

    def __init__(self, dim: int = 64, heads: int = 4, depth: int = 1, pool: int = 1, grid: int | None = None,
                 loss: str = "l1", steps: int = 2000, batch_size: int = 128, lrs: Sequence[float] = (1e-3, 3e-4),
                 weight_decays: Sequence[float] = (1e-2,), seeds: Sequence[int] = (0, 1, 2), val_frac: float = 0.2,
                 fuse: str = "channels", **unknown: Any) -> None:
        if unknown:
            raise ProbeError(f"attentive probe: unknown option(s) {sorted(unknown)}")
        if dim % heads:
            raise ProbeError(f"attentive probe: dim={dim} must be divisible by heads={heads}")
        self.dim, self.heads, self.depth, self.pool, self.grid = int(dim), int(heads), int(depth), int(pool), grid
        self.loss, self.steps, self.batch_size = loss, int(steps), int(batch_size)
        self.lrs, self.wds = [float(a) for a in lrs], [float(w) for w in weight_decays]
        self.seeds, self.val_frac = [int(s) for s in seeds], float(val_frac)
        if fuse not in ("channels", "sequence"):
            raise ProbeError(f"attentive probe: fuse must be 'channels' or 'sequence', got {fuse!r}")
        self.fuse = fuse
        self.chosen: list[dict[str, float]] = []

    def _tokens(self, data: ProbeData) -> np.ndarray:
        """Grid-pooled tokens: ``(P, N, 2D)`` fused per position (``fuse="channels"``: [z_t, z_tk] at each
        position) or ``(P, 2N, D)`` (``fuse="sequence"``: z_t's tokens then z_tk's); ``(P, N, D)`` single."""
        if not data.is_tokens:
            raise ProbeError(f"{data.name}: the attentive probe needs un-pooled tokens (P, N, D), got "
                             f"{data.z_t.shape}; extract with tokens kept")
        parts = [pool_tokens(z, self.pool, self.grid) for z in (data.z_t, data.z_tk) if z is not None]
        return np.concatenate(parts, axis=2 if self.fuse == "channels" else 1)

    def _init(self, d_in: int, n_tok: int, a: int, g_count: int) -> Params:
        d = self.dim
        per_seed = []
        for s in self.seeds:
            gen = torch.Generator().manual_seed(int(s))
            ps = {"Wp": uniform_init((d_in, d), d_in, gen), "bp": torch.zeros(1, d),
                  "pos": torch.randn(n_tok, d, generator=gen), "step": torch.randn(2, d, generator=gen)}
            for li in range(self.depth):
                ps.update({f"ln1w{li}": torch.ones(1, d), f"ln1b{li}": torch.zeros(1, d),
                           f"Wqkv{li}": uniform_init((d, 3 * d), d, gen), f"Wo{li}": uniform_init((d, d), d, gen),
                           f"ln2w{li}": torch.ones(1, d), f"ln2b{li}": torch.zeros(1, d),
                           f"Wm1{li}": uniform_init((d, 2 * d), d, gen),
                           f"Wm2{li}": uniform_init((2 * d, d), 2 * d, gen)})
            ps.update({"query": torch.randn(1, d, generator=gen) * 0.02, "lnkw": torch.ones(1, d),
                       "lnkb": torch.zeros(1, d), "Wq": uniform_init((d, d), d, gen),
                       "Wkv": uniform_init((d, 2 * d), d, gen), "Wco": uniform_init((d, d), d, gen),
                       "lnow": torch.ones(1, d), "lnob": torch.zeros(1, d),
                       "Wout": uniform_init((d, a), d, gen), "bout": torch.zeros(1, a)})
            per_seed.append(ps)
        return {k: torch.stack([ps[k] for ps in per_seed])[:, None].expand(-1, g_count, *per_seed[0][k].shape)
                .contiguous() for k in per_seed[0]}

    def _forward(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        return attentive_forward(params, x, self.heads, self.depth)

    def fit(self, train: ProbeData) -> "AttentiveProbe":
        require_episodes(train, 2)
        fit_m, val_m = val_split(train.episode, self.val_frac, seed=0)
        tok = self._tokens(train)
        self.x_scaler = Standardizer.fit(tok[fit_m], axis=(0, 1))
        self.y_scaler = Standardizer.fit(train.y[fit_m])
        self.n_tok = tok.shape[1] // (2 if train.z_tk is not None and self.fuse == "sequence" else 1)
        xt, yt = torch.from_numpy(self.x_scaler(tok)), torch.from_numpy(self.y_scaler(train.y))
        fm, vm = torch.from_numpy(fit_m), torch.from_numpy(val_m)
        xf, yf = xt[fm], yt[fm]
        lrs, wds = grid(self.lrs, self.wds)
        params = self._init(tok.shape[2], self.n_tok, yt.shape[1], len(lrs))
        decay = ("Wp", "Wqkv", "Wo", "Wm1", "Wm2", "Wq", "Wkv", "Wco", "Wout")
        params = train_heads(params, lambda p, rows: self._forward(p, xf[rows]), yf, self.seeds, lrs, wds,
                             steps=self.steps, batch_size=self.batch_size, loss=self.loss,
                             no_decay=[k for k in params if not k.rstrip("0123456789").startswith(decay)])
        with torch.no_grad():
            pred = self._batched(params, xt[vm])
            scores = head_r2(pred, yt[vm])
        best = best_heads(scores, self.seeds, "attentive")
        self.params = {k: p[torch.arange(len(self.seeds)), best][:, None] for k, p in params.items()}
        self.chosen = [{"seed": s, "lr": float(lrs[b]), "weight_decay": float(wds[b]), "val_r2": float(scores[i, b])}
                       for i, (s, b) in enumerate(zip(self.seeds, best.tolist()))]
        return self

    def _batched(self, params: Params, x: torch.Tensor, chunk: int = 512) -> torch.Tensor:
        outs = [self._forward(params, x[c : c + chunk][None].expand(len(self.seeds), -1, -1, -1))
                for c in range(0, x.shape[0], chunk)]
        return torch.cat(outs, dim=2)

    def predict(self, data: ProbeData) -> np.ndarray:
        x = torch.from_numpy(self.x_scaler(self._tokens(data)))
        with torch.no_grad():
            out = self._batched(self.params, x)[:, 0]
        return self.y_scaler.inverse(out.numpy())

    def config(self) -> dict[str, Any]:
        return {"probe": "attentive", "input": "tokens of both steps", "fuse": self.fuse, "pool": self.pool,
                "grid": self.grid,
                "dim": self.dim, "heads": self.heads, "depth": self.depth, "loss": self.loss, "optimizer": "adamw",
                "steps": self.steps, "batch_size": self.batch_size, "schedule": "warmup+cosine", "lrs": self.lrs,
                "weight_decays": self.wds, "seeds": self.seeds, "val_frac": self.val_frac,
                "selection": "best val R2 per seed (val = train episodes held out)", "chosen": self.chosen}
