"""Behaviour cloning on frozen features: the policy head of the closed-loop control evaluation.

Inputs: the encoder's mean-pooled features of the current frame ``f(o_t): (D,)`` (the probe's pooling and
layer; for the state ceiling, ``demos.privileged_state``) and the task's goal descriptor
``task_descriptor(name): (G,)``; output: an action chunk ``a_t .. a_{t+H-1}`` in the dataset's layout, flattened
to ``(H * A,)`` (``PolicyConfig.chunk = H``; ``chunk_targets`` builds the training targets from demonstrations
cut at success). At rollout ``Ensembler`` executes the chunks with temporal ensembling (ACT, Zhao et al. 2023):
the action applied at step t is the mean of every prediction made for step t by the last H queries.

The descriptor is compositional (skill, object, goal offset, goal object, gripper flag), so a held-out task
such as ``lift-blue`` is described by parts the policy saw in other tasks (``lift-yellow``, ``reach-blue``): the
task-OOD rollouts measure that composition, not an unseen one-hot.

Head: ``standardise -> Linear(D + G, 256) -> GELU -> Linear(256, 256) -> GELU -> Linear(256, H * A)``, L1 loss
on per-dimension standardised actions, AdamW (lr 1e-3, weight decay 1e-4), minibatch 256, linear warm-up then
cosine decay, a fixed number of steps; the seed fixes initialisation and minibatch order. Features and the
descriptor are standardised with statistics of the training frames (constant dims map to 0). A gripper dim
(a binary command) is regressed on its ±1 label and read by its sign at rollout.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from wmprobe.errors import ConfigError

HEADS = ("mean", "spatial", "flat")   # the policy heads: mean here (BCPolicy), spatial and flat in control.heads
SKILLS = ("reach", "push", "lift", "pick-place", "stack", "follow")
OBJECTS = ("red", "green", "blue", "yellow", "ball", "cube")
GOAL_OBJECTS = ("red", "green", "blue", "yellow")
DESCRIPTOR_DIM = len(SKILLS) + len(OBJECTS) + 2 + len(GOAL_OBJECTS) + 1


def task_descriptor(name: str) -> np.ndarray:
    """``(DESCRIPTOR_DIM,) float32`` goal descriptor of an embedded pybullet task name (``tasks.TASKS``):
    skill one-hot, object one-hot, goal offset (dx, dy) in decimetres, goal-object one-hot, closed-gripper flag."""
    from wmprobe.data.sim.tasks import DYNAMIC_TASKS
    task = {t.name: t for t in DYNAMIC_TASKS}.get(name)
    if task is None:
        raise ConfigError(f"control: no embedded task named {name!r}; the closed-loop evaluation runs the "
                          "embedded pybullet suites' tasks only")
    v = np.zeros(DESCRIPTOR_DIM, np.float32)
    v[SKILLS.index(task.skill)] = 1
    v[len(SKILLS) + OBJECTS.index(task.obj)] = 1
    off = len(SKILLS) + len(OBJECTS)
    if isinstance(task.goal, tuple):
        v[off:off + 2] = np.asarray(task.goal, np.float32) * 10
    elif task.goal in GOAL_OBJECTS:
        v[off + 2 + GOAL_OBJECTS.index(task.goal)] = 1
    v[-1] = 1.0 if task.goal == "closed" else 0.0
    return v


@dataclass(frozen=True)
class PolicyConfig:
    steps: int = 4000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    hidden: int = 256
    chunk: int = 4
    head: str = "mean"       # mean (BCPolicy on mean-pooled features) | spatial | flat (heads.TokenPolicy)
    augment: int = 0         # token heads: shifted copies of every training frame (heads.shift_frames)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.hidden < 1 or not self.lr > 0 or self.weight_decay < 0 \
                or self.chunk < 1 or self.augment < 0:
            raise ConfigError(f"control policy: steps, batch_size, hidden, chunk and lr must be > 0, "
                              f"weight_decay and augment >= 0, got {self}")
        if self.head not in HEADS:
            raise ConfigError(f"control policy: head must be one of {', '.join(HEADS)}, got {self.head!r}")


class BCPolicy(nn.Module):
    """``(features (B, D), descriptor (B, G)) -> actions (B, A)`` in the dataset's units."""

    def __init__(self, d_feat: int, d_desc: int, d_act: int, hidden: int = 256):
        super().__init__()
        d_in = d_feat + d_desc
        self.register_buffer("x_mean", torch.zeros(d_in))
        self.register_buffer("x_std", torch.ones(d_in))
        self.register_buffer("y_mean", torch.zeros(d_act))
        self.register_buffer("y_std", torch.ones(d_act))
        self.net = nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, d_act))

    def forward(self, feats: torch.Tensor, desc: torch.Tensor) -> torch.Tensor:
        x = (torch.cat([feats, desc], dim=1) - self.x_mean) / self.x_std
        return self.net(x) * self.y_std + self.y_mean


def standardiser(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-column ``(mean, std)`` of ``x: (N, D)``; a constant column gets std inf (it maps to 0)."""
    std = x.std(0)
    return x.mean(0), torch.where(std > 1e-6, std, torch.full_like(std, float("inf")))


_stats = standardiser


def lr_factor(step: int, steps: int) -> float:
    """The learning-rate multiplier at ``step`` of ``steps``: linear warm-up over the first tenth, then cosine."""
    warm = max(1, steps // 10)
    return (step + 1) / warm if step < warm else 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))


def fit_policy(feats: np.ndarray, desc: np.ndarray, actions: np.ndarray, *, seed: int = 0,
               cfg: PolicyConfig = PolicyConfig()) -> BCPolicy:
    """Train a ``BCPolicy`` on ``feats: (N, D)``, ``desc: (N, G)``, ``actions: (N, A)`` (one row per frame)."""
    if not (len(feats) == len(desc) == len(actions)) or len(feats) < 2:
        raise ConfigError(f"control policy: need >= 2 aligned rows of features, descriptors and actions, got "
                          f"{len(feats)}, {len(desc)}, {len(actions)}")
    x = torch.from_numpy(np.concatenate([np.asarray(feats, np.float32), np.asarray(desc, np.float32)], 1))
    y = torch.from_numpy(np.asarray(actions, np.float32))
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise ConfigError("control policy: NaN or inf in the training features or actions")
    torch.manual_seed(int(seed))
    g = torch.Generator().manual_seed(int(seed) + 104729)
    pol = BCPolicy(feats.shape[1], desc.shape[1], y.shape[1], cfg.hidden)
    (xm, xs), (ym, ys) = _stats(x), _stats(y)
    pol.x_mean.copy_(xm), pol.x_std.copy_(xs)
    pol.y_mean.copy_(ym), pol.y_std.copy_(torch.where(torch.isfinite(ys), ys, torch.ones_like(ys)))
    yn = (y - pol.y_mean) / pol.y_std
    xn = (x - pol.x_mean) / pol.x_std
    train_l1(pol.net.parameters(), lambda rows: (pol.net(xn[rows]) - yn[rows]).abs().mean(), len(x), cfg, g)
    return pol.eval()


def train_l1(params: Any, batch_loss: Callable[[torch.Tensor], torch.Tensor], n_rows: int, cfg: PolicyConfig,
             gen: torch.Generator) -> None:
    """The policies' one training loop: AdamW on ``params``, ``lr_factor``'s warm-up then cosine, ``cfg.steps``
    minibatches of ``min(cfg.batch_size, n_rows)`` row indices drawn from ``gen``; ``batch_loss(rows)`` gives
    the minibatch's loss (it may draw more from ``gen``, after the rows)."""
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    bs = min(cfg.batch_size, n_rows)
    for step in range(cfg.steps):
        for grp in opt.param_groups:
            grp["lr"] = cfg.lr * lr_factor(step, cfg.steps)
        loss = batch_loss(torch.randint(0, n_rows, (bs,), generator=gen))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def descriptors(task_names: Sequence[str], tasks: np.ndarray) -> np.ndarray:
    """``(N, G)``: the descriptor of ``task_names[tasks[i]]`` for every row."""
    table = np.stack([task_descriptor(n) for n in task_names])
    return table[np.asarray(tasks, np.int64)]


def chunk_targets(actions: np.ndarray, used: int, chunk: int) -> np.ndarray:
    """``(used, chunk * A)``: row t holds ``actions[t : t + chunk]`` of one demonstration ``actions: (T, A)``,
    flattened; steps past the demonstration's end repeat its last action."""
    a = np.asarray(actions, np.float32)
    pad = np.concatenate([a, np.repeat(a[-1:], chunk, 0)])
    return np.stack([pad[t:t + chunk].reshape(-1) for t in range(int(used))]) if used else \
        np.zeros((0, chunk * a.shape[1]), np.float32)


class Ensembler:
    """Temporal ensembling of action chunks for ``n`` worlds stepping in lockstep: ``step(slots, chunks)``
    with ``chunks: (B, H * A)`` the policy's predictions for the worlds ``slots`` at their current step returns
    ``(B, A)``: for each world the mean of the predictions for this step made by its last ``H`` queries
    (itself included); ``gripper`` dims are then read by their sign (+-1)."""

    def __init__(self, n: int, chunk: int, d_act: int, gripper: Sequence[int] = ()):
        self.chunk, self.d_act, self.gripper = int(chunk), int(d_act), list(gripper)
        self.past: list[list[np.ndarray]] = [[] for _ in range(n)]    # per world: its last H chunks, newest last

    def step(self, slots: Sequence[int], chunks: np.ndarray) -> np.ndarray:
        chunks = np.asarray(chunks, np.float64).reshape(len(slots), self.chunk, self.d_act)
        out = np.empty((len(slots), self.d_act))
        for row, (s, c) in enumerate(zip(slots, chunks)):
            self.past[s] = (self.past[s] + [c])[-self.chunk:]
            n = len(self.past[s])
            out[row] = np.mean([self.past[s][n - 1 - i][i] for i in range(n)], axis=0)
        return gripper_by_sign(out, self.gripper)


def gripper_by_sign(actions: np.ndarray, gripper: Sequence[int]) -> np.ndarray:
    """``actions (..., A)`` with the ``gripper`` dims read by their sign (+1 open, -1 closed), in place."""
    for d in gripper:
        actions[..., d] = np.where(actions[..., d] > 0, 1.0, -1.0)
    return actions
