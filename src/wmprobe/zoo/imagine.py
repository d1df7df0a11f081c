"""Imagination: a zoo world model's own k-step latent rollout, for probing ``g(z_t, z_hat_t+k)``.

``ZooDynamicsEncoder.imagine(tokens_t (B, N, C), actions (B, k, A)) -> (B, N, C)``: starting from the
tokenizer latents ``z_t`` (layer ``out``, the probed tokens), each control step ``j`` draws seeded noise
``eps`` and takes ONE shortcut step of size ``d = 1`` from it: ``z_j+1 = f(eps, tau = 0, d = 1, z_j, a_j)``
(the dynamics net predicts x, so one step of size 1 from pure noise is its whole sample), clamped to the
tanh range [-1, 1] as the training targets are. The actions are given in the dataset's raw units and
standardised with the mean and scale the model was trained with (stored in the checkpoint's recipe.json:
``action_mean`` / ``action_scale``); a checkpoint saved before those were stored cannot imagine
(EncoderError naming it).

``dynamics-actin``'s dynamics net takes no action (the action entered its trunk, and is zeros at probe
time): its imagination uses ``z_t`` only, whatever the actions. That is the finding the imagined probe
shows for it, not a defect of the rollout.

Deterministic: the noise comes from a ``torch.Generator`` seeded by ``seed`` (default 0) for each call, so
the same tokens, actions and seed give identical latents.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from wmprobe.errors import EncoderError
from wmprobe.zoo.encoder import ZooDecodingEncoder


class ZooDynamicsEncoder(ZooDecodingEncoder):
    """A zoo world model (``dynamics`` / ``dynamics-actin``) as an encoder that can also ``imagine``."""

    action_mean: torch.Tensor | None = None
    action_scale: torch.Tensor | None = None
    _source: str = ""

    def set_action_stats(self, mean: Sequence[float] | None, scale: Sequence[float] | None,
                         source: str | Path = "") -> None:
        """The action standardisation of training (None for checkpoints that predate storing it)."""
        self._source = str(source)
        if mean is None or scale is None:
            self.action_mean = self.action_scale = None
            return
        self.action_mean = torch.tensor(mean, dtype=torch.float32)
        self.action_scale = torch.tensor(scale, dtype=torch.float32)

    @property
    def uses_actions(self) -> bool:
        """False for ``dynamics-actin``: its dynamics net has no action input."""
        return not self.module.act_in

    def imagine(self, tokens_t: torch.Tensor | np.ndarray, actions: torch.Tensor | np.ndarray,
                seed: int = 0) -> torch.Tensor:
        """``tokens_t: (B, N, C)`` layer-``out`` tokens of frame t, ``actions: (B, k, A)`` the actions taken at
        t .. t+k-1 in raw units -> ``(B, N, C)`` float32 imagined tokens of frame t+k (see the module doc)."""
        z = torch.as_tensor(np.asarray(tokens_t) if not torch.is_tensor(tokens_t) else tokens_t).float()
        a = torch.as_tensor(np.asarray(actions) if not torch.is_tensor(actions) else actions).float()
        m = self.module
        if z.ndim != 3 or a.ndim != 3 or a.shape[0] != z.shape[0] or a.shape[1] < 1:
            raise EncoderError(f"imagine: tokens must be (B, N, C) and actions (B, k >= 1, A) with one B, got "
                               f"{tuple(z.shape)} and {tuple(a.shape)}")
        b, n, c = z.shape
        g = int(round(n ** 0.5))
        if g * g != n or c != m.width:
            raise EncoderError(f"imagine: tokens {tuple(z.shape)} are not the {m.width}-channel square grid of "
                               f"{self.spec.name}'s layer out")
        if a.shape[2] != m.action_dim:
            raise EncoderError(f"imagine: {self.spec.name} was trained on {m.action_dim}-dim actions, got "
                               f"{a.shape[2]}")
        if self.uses_actions:
            if self.action_mean is None:
                raise EncoderError(f"zoo checkpoint {self._source or self.spec.name} does not store the action "
                                   "mean and scale its dynamics model was trained with (saved by an older "
                                   "wmprobe): it cannot imagine; train it again")
            a = ((a - self.action_mean) / self.action_scale).clamp(-10, 10)
        else:
            a = torch.zeros_like(a)   # unused: the actin dynamics net has no action input
        gen = torch.Generator().manual_seed(int(seed))
        z = z.reshape(b, g, g, c).permute(0, 3, 1, 2).contiguous()
        zeros, ones = torch.zeros(b), torch.ones(b)
        with torch.inference_mode():
            for j in range(a.shape[1]):
                eps = torch.randn(z.shape, generator=gen)
                z = m.predict(eps.to(self.device), zeros.to(self.device), ones.to(self.device), z.to(self.device),
                              a[:, j].to(self.device)).clamp(-1, 1).float().cpu()
        return z.permute(0, 2, 3, 1).reshape(b, n, c)


def can_imagine(encoder: object) -> bool:
    """Whether ``encoder`` exposes ``imagine(tokens_t, actions) -> tokens`` (zoo world models, or a plugin)."""
    return callable(getattr(encoder, "imagine", None))
