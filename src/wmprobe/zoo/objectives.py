"""Supervision and ablations for the mini-zoo: +ID for any family, the objective ablation, the lambda sweep.

``zoo.train(..., id_weight=lam, objective=NAME, id_groups=[...])`` adds the auxiliary term to the family's
own loss (``zoo.training._fit`` balances its scale, see docs/zoo.md "+ID"). The auxiliary head is trained jointly
and discarded; only the encoder is saved and probed. Every objective works on the MEAN-POOLED probed
latents (layer ``out``) of the frames of the training clip (``models.CLIP_LEN`` frames, the same clips for
every family), on the +ID action dims only (``id_groups``: by default the groups the probe's headline scores,
translation for the embedded data). Every head starts with a batch standardisation of its pooled input
(``models.standardise``), as the probe standardises its inputs.

Targets (``pair_targets``): for EVERY pair ``(t, t + j)`` of the clip (``j = 1 .. L - 1``, ``L (L - 1) / 2``
pairs), the probe's own k-step target at ``k = j``: translation-type dims the SUM of the actions
``a_t .. a_t+j-1``, state-type dims (the ``gripper`` group) the LAST one ``a_t+j-1``. Actions are divided by
their per-dim std over the training clips; state dims are also centred (a sum is a displacement, so its
scale grows with ``j`` and the head needs no ``j``: ``f(z_t, z_t+j)`` = position difference).

Objectives (``OBJECTIVES``: their names, in the torch-free ``objective_names``), the paper's ablation on its
diffusion model in brackets:
- ``l1``  (default): inverse dynamics, MLP(z_t, z_t+j) -> target(t, t+j) over every pair, L1 loss [0.629]
- ``l2``: the same with an L2 (MSE) loss [0.578]
- ``single``: single-frame action regression, MLP(z_t) -> a_t, L1 loss [0.523]
- ``forward``: forward dynamics, MLP(z_t, a_t) -> z_t+1 (target standardised over the batch, stop-gradient), MSE [0.408]
- ``contrastive``: temporal contrastive (InfoNCE, temperature 0.1): projections of z_t and z_t+1 of the
  same clip are positives, every other pair in the batch a negative; no action labels [0.073]
(``single``, ``forward`` and ``contrastive`` use the consecutive pairs ``(t, t + 1)``.)

``LAMBDA_SWEEP``: the +ID weights swept over 5 orders of magnitude; ``zoo.training.lambda_sweep(family, store,
...)`` trains one model per weight (plus the frozen twin) and returns their checkpoints.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from wmprobe.zoo.models import IDHead, standardise
from wmprobe.zoo.objective_names import OBJECTIVES

STATE_GROUPS = ("gripper",)   # groups whose k-step target is the last value (the probe's rule), not the sum
LAMBDA_SWEEP = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
TEMPERATURE = 0.1


def _mlp(d_in: int, d_out: int, hidden: int = 128) -> nn.Sequential:
    return nn.Sequential(standardise(d_in), nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))


class SingleHead(nn.Module):
    def __init__(self, width: int, action_dim: int):
        super().__init__()
        self.net = _mlp(width, action_dim)

    def forward(self, z_t: torch.Tensor) -> torch.Tensor:
        return self.net(z_t.mean(dim=(2, 3)))


def make_head(objective: str, width: int, action_dim: int) -> nn.Module:
    """The (discarded) auxiliary head for ``objective`` on latents of width ``width``."""
    if objective in ("l1", "l2"):
        return IDHead(width, action_dim)
    if objective == "single":
        return SingleHead(width, action_dim)
    if objective == "forward":
        return _mlp(width + action_dim, width)
    if objective == "contrastive":
        return _mlp(width, 64)
    raise ValueError(f"unknown objective '{objective}': choose one of {sorted(OBJECTIVES)}")


def clip_pairs(L: int) -> tuple[list[int], list[int]]:
    """Every pair of a clip of ``L`` frames: ``(starts, ends)`` with ``0 <= s < e <= L - 1``, ordered by gap."""
    pairs = [(t, t + j) for j in range(1, L) for t in range(L - j)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def pair_targets(a: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """``a (B, L, D)`` scaled actions on the +ID dims, ``state (D,)`` bool (last-value dims) -> ``(B, P, D)``
    k-step targets of every pair of the clip (``clip_pairs`` order): sum of ``a[s:e]``, or ``a[e - 1]``."""
    s, e = clip_pairs(a.shape[1])
    cs = torch.cat([torch.zeros_like(a[:, :1]), a.cumsum(dim=1)], dim=1)
    s_t, e_t = torch.tensor(s, device=a.device), torch.tensor(e, device=a.device)
    summed = cs[:, e_t] - cs[:, s_t]
    return torch.where(state.to(a.device), a[:, e_t - 1], summed)


def aux_loss(objective: str, head: nn.Module, z: torch.Tensor, a: torch.Tensor,
             state: torch.Tensor | None = None) -> torch.Tensor:
    """``z (B, L, C, h, w)`` probed latents of a clip, ``a (B, L, D)`` scaled actions on the +ID dims (see the
    module doc), ``state (D,)`` bool: last-value dims -> scalar loss."""
    b, L = z.shape[:2]
    if objective in ("l1", "l2"):
        s, e = clip_pairs(L)
        p = z.mean(dim=(3, 4))                                   # pool once: (B, L, C)
        pred = head.pooled(flat_pairs(p, s), flat_pairs(p, e))
        target = pair_targets(a, torch.zeros(a.shape[-1], dtype=torch.bool) if state is None else state)
        target = target.reshape(-1, a.shape[-1])
        return F.l1_loss(pred, target) if objective == "l1" else F.mse_loss(pred, target)
    z_t = z[:, :-1].reshape(b * (L - 1), *z.shape[2:])
    z_t1 = z[:, 1:].reshape(b * (L - 1), *z.shape[2:])
    a_t = a[:, :-1].reshape(b * (L - 1), a.shape[-1])
    if objective == "single":
        return F.l1_loss(head(z_t), a_t)
    p_t, p_t1 = z_t.mean(dim=(2, 3)), z_t1.mean(dim=(2, 3))
    if objective == "forward":
        t1 = p_t1.detach()
        target = (t1 - t1.mean(0)) / (t1.std(0) + 1e-6)        # standardised per dim over the batch
        return F.mse_loss(head(torch.cat([p_t, a_t], dim=1)), target)
    if objective == "contrastive":
        q = F.normalize(head(p_t), dim=1)
        k = F.normalize(head(p_t1), dim=1)
        logits = q @ k.T / TEMPERATURE
        labels = torch.arange(len(q), device=q.device)
        return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
    raise ValueError(f"unknown objective '{objective}': choose one of {sorted(OBJECTIVES)}")


def flat_pairs(p: torch.Tensor, idx: list[int]) -> torch.Tensor:
    """``p (B, L, C)``, frame indices ``idx (P,)`` -> ``(B * P, C)`` (batch-major, as ``pair_targets``)."""
    return p[:, idx].reshape(-1, p.shape[-1])

