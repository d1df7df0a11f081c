"""Policy heads over an encoder's patch tokens (``control.head``), and the random-shift augmentation.

The ``mean`` head (``policy.BCPolicy``) reads the mean-pooled feature, as the probes do; mean pooling keeps
WHAT is in the frame but throws away WHERE, which a reaching or pushing policy needs. The heads here read the
tokens of the frame, ``tokens: (B, N, C)``, laid out as a square ``g x g`` grid (``N = g * g``; the demo zoo's
8 x 8 grid of width 32):

- ``spatial``: spatial-softmax keypoints (Levine et al. 2016; robomimic's ``SpatialSoftmax``): a learned 1x1
  projection of every token to ``K`` keypoint logits, a softmax over the grid per keypoint (learned
  temperature), and each keypoint's expected ``(x, y)`` in ``[-1, 1]``: ``2K`` numbers that say where each
  learned feature is, beside the mean-pooled tokens ``(C,)``.
- ``flat``: a learned 1x1 projection of every token to ``P`` channels, flattened over the grid ``(N * P,)``
  (a low-rank linear map of the whole grid), beside the mean-pooled tokens.

Either feature vector, concatenated with the task descriptor, goes through the same MLP as ``BCPolicy``
(``F + G -> hidden -> hidden -> H * A``, GELU). Tokens are standardised per channel with the statistics of the
training frames (all tokens pooled), the descriptor per dimension. An input without a grid (``N = 1``: e.g.
``pixels``' ``out`` layer, one token holding the whole flattened image; or ``N`` not a square) has no layout to
read: the head then reads the mean-pooled tokens only (for ``N = 1``, the token itself).

``shift_frames(frames, rng, pad)``: DrQ's random shift (Kostrikov et al. 2020): edge-pad by ``pad`` pixels and
crop back at a random offset, per frame. ``control.augment = V`` encodes ``V`` shifted copies of every
training frame once (the encoder is frozen), and each minibatch row draws one of the ``V + 1`` views.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from wmprobe.control.policy import HEADS, PolicyConfig, standardiser, train_l1
from wmprobe.errors import ConfigError

__all__ = ["HEADS", "TokenPolicy", "fit_token_policy", "grid_positions", "shift_frames"]

KEYPOINTS = 32        # spatial: keypoints (2 numbers each)
PROJ = 8              # flat: channels per token after the 1x1 projection


def grid_side(n_tokens: int) -> int | None:
    """``g`` when ``n_tokens = g * g > 1`` (a square token grid), else None."""
    g = int(round(math.sqrt(n_tokens)))
    return g if g * g == n_tokens and n_tokens > 1 else None


def grid_positions(g: int) -> torch.Tensor:
    """``(g * g, 2)``: the ``(x, y)`` in ``[-1, 1]`` of each token of a row-major ``g x g`` grid."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, g), torch.linspace(-1, 1, g), indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], 1)


class TokenPolicy(nn.Module):
    """``(tokens (B, N, C), descriptor (B, G)) -> (B, d_out)`` in the dataset's units (module doc)."""

    def __init__(self, n_tokens: int, width: int, d_desc: int, d_out: int, head: str = "spatial",
                 hidden: int = 256, keypoints: int = KEYPOINTS, proj: int = PROJ):
        super().__init__()
        if head not in HEADS or head == "mean":
            raise ValueError(f"TokenPolicy head must be one of {HEADS[1:]}, got {head!r}")
        self.head = head
        for name, n in (("t", width), ("d", d_desc), ("y", d_out)):
            self.register_buffer(f"{name}_mean", torch.zeros(n))
            self.register_buffer(f"{name}_std", torch.ones(n))
        g = grid_side(n_tokens)
        self.keypoints: nn.Module | None = None
        self.proj: nn.Module | None = None
        f = width
        if g is not None and head == "spatial":
            self.keypoints = nn.Linear(width, keypoints)
            self.log_temp = nn.Parameter(torch.zeros(()))
            self.register_buffer("pos", grid_positions(g))
            f += 2 * keypoints
        elif g is not None and head == "flat":
            self.proj = nn.Linear(width, proj)
            f += n_tokens * proj
        self.net = nn.Sequential(nn.Linear(f + d_desc, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, d_out))

    def features(self, tn: torch.Tensor) -> torch.Tensor:
        """``(B, F)`` from standardised tokens ``(B, N, C)``: the mean-pooled tokens, then the head's part."""
        parts = [tn.mean(1)]
        if self.keypoints is not None:
            att = torch.softmax(self.keypoints(tn) * torch.exp(self.log_temp), dim=1)      # (B, N, K)
            parts.append(torch.einsum("bnk,nd->bkd", att, self.pos).flatten(1))          # (B, 2K)
        if self.proj is not None:
            parts.append(self.proj(tn).flatten(1))                                       # (B, N * P)
        return torch.cat(parts, 1)

    def normalised(self, tn: torch.Tensor, dn: torch.Tensor) -> torch.Tensor:
        """Standardised actions from standardised inputs (the training loss reads this)."""
        return self.net(torch.cat([self.features(tn), dn], 1))

    def forward(self, tokens: torch.Tensor, desc: torch.Tensor) -> torch.Tensor:
        tn = (tokens - self.t_mean) / self.t_std
        dn = (desc - self.d_mean) / self.d_std
        return self.normalised(tn, dn) * self.y_std + self.y_mean


def shift_frames(frames: np.ndarray, rng: np.random.Generator, pad: int = 4) -> np.ndarray:
    """``(B, H, W, 3) uint8`` frames, each edge-padded by ``pad`` and cropped back at a random offset in
    ``[0, 2 * pad]`` (DrQ's random shift); the same shape and dtype."""
    frames = np.asarray(frames)
    b, h, w = frames.shape[:3]
    padded = np.pad(frames, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    dx, dy = np.asarray(rng.integers(0, 2 * pad + 1, (2, b))).tolist()
    return np.stack([padded[i, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(b)]) if b else frames.copy()


def fit_token_policy(tokens: np.ndarray, desc: np.ndarray, actions: np.ndarray, *, seed: int = 0,
                     cfg: Any = None) -> TokenPolicy:
    """Train a ``TokenPolicy`` (``cfg.head``) on ``tokens: (R, V, N, C)`` (``V`` views of each row: the frame
    and its shifted copies), ``desc: (R, G)``, ``actions: (R, d_out)``: the recipe of ``policy.fit_policy``
    (L1 on standardised actions, AdamW, warm-up then cosine, ``cfg.steps`` minibatches of ``cfg.batch_size``),
    each minibatch row reading one of its ``V`` views at random. The seed fixes initialisation, rows and views."""
    cfg = cfg or PolicyConfig(head="spatial")
    x = torch.from_numpy(np.ascontiguousarray(tokens, np.float32))
    d = torch.from_numpy(np.asarray(desc, np.float32))
    y = torch.from_numpy(np.asarray(actions, np.float32))
    if x.ndim != 4 or not (len(x) == len(d) == len(y)) or len(x) < 2:
        raise ConfigError(f"control policy: need tokens (rows, views, N, C) and >= 2 aligned rows of tokens, "
                          f"descriptors and actions, got {tuple(x.shape)}, {len(d)}, {len(y)}")
    if not (torch.isfinite(x).all() and torch.isfinite(d).all() and torch.isfinite(y).all()):
        raise ConfigError("control policy: NaN or inf in the training tokens, descriptors or actions")
    r, v, n, c = x.shape
    torch.manual_seed(int(seed))
    g = torch.Generator().manual_seed(int(seed) + 104729)
    pol = TokenPolicy(n, c, d.shape[1], y.shape[1], cfg.head, cfg.hidden)
    for name, t in (("t", x[:, 0].reshape(-1, c)), ("d", d), ("y", y)):
        m, s = standardiser(t)
        getattr(pol, f"{name}_mean").copy_(m)
        getattr(pol, f"{name}_std").copy_(torch.where(torch.isfinite(s), s, torch.ones_like(s)) if name == "y" else s)
    xn = (x - pol.t_mean) / pol.t_std
    dn = (d - pol.d_mean) / pol.d_std
    yn = (y - pol.y_mean) / pol.y_std

    def batch_loss(rows: torch.Tensor) -> torch.Tensor:
        views = torch.randint(0, v, (len(rows),), generator=g)
        return (pol.normalised(xn[rows, views], dn[rows]) - yn[rows]).abs().mean()
    train_l1(pol.parameters(), batch_loss, r, cfg, g)
    return pol.eval()
