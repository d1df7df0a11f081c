"""MLP probe (the paper's protocol) trained as a grid of heads in one vectorised pass.

Input ``X: (P, F)`` = concat(z_t, z_tk) of mean-pooled features (``+ z_tk - z_t`` with ``use_diff``), MLP
``F -> 256 -> 128 -> A`` (ReLU), L1 loss (``loss="l2"``: MSE) on standardised targets, AdamW, 3000 steps,
minibatch 256, linear warm-up then cosine decay, 3 seeds. Features and targets are standardised with
statistics of the fit part of the train split (constant dims map to 0).

Heads grid: every (seed, lr, weight decay) is one head; all heads are stacked into parameters of shape
``(S, G, in, out)`` (G = lrs x weight decays) and trained together with batched matmuls and one vectorised
AdamW. A seed fixes its heads' initialisation and minibatch order. ~20% of the TRAIN episodes are held out
as validation; per seed the (lr, wd) with the best validation R2 is kept. Test data is never seen in fit.

``ensemble = E > 1``: each probe seed trains E heads per (lr, wd) (seeds ``MLPProbe.head_seeds``) and
predicts with their mean; validation scores and test predictions are the members' mean. It lowers the
probe-seed spread of a weak encoder's R2 (an MLP on a floor's features extrapolates to held-out tasks
differently per initialisation) at E x the training cost; ``ensemble = 1`` is the paper's single MLP.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import torch

from wmprobe.errors import ProbeError
from wmprobe.probes.base import ProbeData, Standardizer, pair_inputs, require_episodes, val_split
from wmprobe.probes.spec import ProbeSpec, register_probe

register_probe(ProbeSpec(
    "mlp", "wmprobe.probes.mlp:MLPProbe",
    "MLP on the pair (f(o_t), f(o_t+k)): 2 hidden layers (256, 128), L1 loss, 3000 steps x batch 256, lr "
    "picked from {1e-3, 3e-4} on held-out train episodes; one fit per seed",
    seeded=True, config_section="probe", state=True, imagined=True, order=1), runtime=False)

Params = dict[str, torch.Tensor]
#: seed offset between the members of one probe seed's ensemble (``MLPProbe.head_seeds``)
MEMBER_STRIDE = 1_000_003


# ---- shared batched training machinery (also used by the attentive probe) ----------------------------
def lr_factor(step: int, steps: int, warmup: int) -> float:
    """Linear warm-up to 1 over ``warmup`` steps, then cosine decay to 0 at ``steps``."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def batch_indices(n: int, seeds: Sequence[int], steps: int, batch_size: int) -> torch.Tensor:
    """``(S, steps, B) int64``: minibatch rows per seed (epoch-wise permutations from that seed's generator)."""
    out = []
    for s in seeds:
        g = torch.Generator().manual_seed(int(s) + 7919)
        need = steps * batch_size
        perms = [torch.randperm(n, generator=g) for _ in range(math.ceil(need / n))]
        out.append(torch.cat(perms)[:need].view(steps, batch_size))
    return torch.stack(out)


def uniform_init(shape: tuple[int, ...], fan_in: int, g: torch.Generator) -> torch.Tensor:
    """``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` (torch.nn.Linear's default)."""
    b = 1.0 / math.sqrt(fan_in)
    return (torch.rand(shape, generator=g) * 2 - 1) * b


def best_heads(scores: torch.Tensor, seeds: Sequence[int], what: str) -> torch.Tensor:
    """``(S,)``: per seed, the head (lr, weight decay) with the best FINITE validation R2 of ``scores (S, G)``
    (argmax alone would pick a diverged head: NaN compares as the maximum); ProbeError when every head of a
    seed diverged."""
    finite = torch.isfinite(scores)
    bad = [int(s) for s, ok in zip(seeds, finite.any(1).tolist()) if not ok]
    if bad:
        raise ProbeError(f"{what} probe diverged: every (lr, weight decay) of seed(s) {bad} gave non-finite "
                         "predictions on the validation episodes; lower `probe.lrs` or `weight_decays`")
    return torch.where(finite, scores, torch.full_like(scores, -float("inf"))).argmax(1)


def train_heads(params: Params, forward: Callable[[Params, torch.Tensor], torch.Tensor], y: torch.Tensor,
                seeds: Sequence[int], lrs: torch.Tensor, wds: torch.Tensor, *, steps: int, batch_size: int,
                loss: str = "l1", no_decay: Sequence[str] = ()) -> Params:
    """Train all heads at once. ``params[name]: (S, G, ...)``; ``forward(params, rows (S, B)) -> (S, G, B, A)``;
    ``y: (n, A)`` standardised targets; ``lrs, wds: (G,)``. Decoupled AdamW (betas 0.9/0.999, eps 1e-8)."""
    if loss not in ("l1", "l2"):
        raise ProbeError(f"probe loss must be 'l1' or 'l2', got {loss!r}")
    n = y.shape[0]
    bs = min(batch_size, n)
    idx = batch_indices(n, seeds, steps, bs)
    for p in params.values():
        p.requires_grad_(True)
    m = {k: torch.zeros_like(p) for k, p in params.items()}
    v = {k: torch.zeros_like(p) for k, p in params.items()}
    shp = {k: (1, -1) + (1,) * (p.ndim - 2) for k, p in params.items()}
    b1, b2, eps = 0.9, 0.999, 1e-8
    warmup = min(100, max(1, steps // 10))
    for t in range(steps):
        rows = idx[:, t]
        err = forward(params, rows) - y[rows][:, None]
        per_head = err.abs().mean((2, 3)) if loss == "l1" else (err ** 2).mean((2, 3))
        grads = torch.autograd.grad(per_head.sum(), list(params.values()))
        f = lr_factor(t, steps, warmup)
        c1, c2 = 1 - b1 ** (t + 1), 1 - b2 ** (t + 1)
        with torch.no_grad():
            for (k, p), gr in zip(params.items(), grads):
                lr = (lrs * f).view(shp[k])
                if k not in no_decay:
                    p.mul_(1 - lr * wds.view(shp[k]))
                m[k].mul_(b1).add_(gr, alpha=1 - b1)
                v[k].mul_(b2).addcmul_(gr, gr, value=1 - b2)
                p.sub_(lr * (m[k] / c1) / ((v[k] / c2).sqrt_().add_(eps)))
    return {k: p.detach() for k, p in params.items()}


def head_r2(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``pred: (S, G, P, A)``, ``y: (P, A)`` -> ``(S, G)`` uniform-average R2 (constant dims count as 0)."""
    sse = ((pred - y) ** 2).sum(2)
    sst = ((y - y.mean(0)) ** 2).sum(0)
    r2 = torch.where(sst > 0, 1 - sse / sst.clamp_min(1e-12), torch.zeros_like(sse))
    return r2.mean(-1)


def grid(lrs: Sequence[float], wds: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Flattened (lr, wd) grid, ``(G,)`` each."""
    pairs = [(float(a), float(b)) for a in lrs for b in wds]
    return torch.tensor([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs])


# ---- the MLP probe -------------------------------------------------------------------------------------
def mlp_forward(params: Params, x: torch.Tensor) -> torch.Tensor:
    """``x: (S, B, F)`` -> ``(S, G, B, A)``; params ``W*: (S, G, in, out)``, ``b*: (S, G, 1, out)``.

    The (S, G) heads are flattened into one batch of ``torch.baddbmm`` calls (near GEMM peak on CPU)."""
    s, g = params["W0"].shape[:2]
    h = x[:, None].expand(s, g, *x.shape[1:]).reshape(s * g, *x.shape[1:])
    n_layers = sum(1 for k in params if k.startswith("W"))
    for li in range(n_layers):
        w, b = params[f"W{li}"], params[f"b{li}"]
        h = torch.baddbmm(b.reshape(s * g, 1, -1), h, w.reshape(s * g, *w.shape[2:]))
        if li < n_layers - 1:
            h = torch.relu_(h)
    return h.view(s, g, *h.shape[1:])


def _relu_backward_(grad: torch.Tensor, act: torch.Tensor) -> None:
    """``grad *= (act > 0)`` in place (``act`` is a ReLU output); one pass, no temporaries."""
    torch.ops.aten.threshold_backward.grad_input(grad, act, 0.0, grad_input=grad)


def _fused_adamw(groups: list[tuple[list[torch.Tensor], list[torch.Tensor], float, float]]
                 ) -> Callable[[float], None]:
    """AdamW (betas 0.9/0.999, eps 1e-8, decoupled weight decay ``p *= 1 - lr * wd``) over parameter
    groups ``(params, grads, lr, wd)``; returns ``step(lr_factor)``. The kernel of
    ``torch.optim.AdamW(fused=True)``, called directly (the optimizer object's per-step Python bookkeeping
    cost ~5% of a probe step); falls back to that optimizer where the op is missing."""
    b1, b2, eps = 0.9, 0.999, 1e-8
    fused = getattr(torch, "_fused_adamw_", None)
    if fused is None:                                                               # pragma: no cover
        for ps, gs, _, _ in groups:
            for p, g in zip(ps, gs):
                p.grad = g
        opt = torch.optim.AdamW([{"params": ps, "lr": lr, "base_lr": lr, "weight_decay": wd}
                                 for ps, _, lr, wd in groups], betas=(b1, b2), eps=eps, foreach=True)

        def step_opt(f: float) -> None:
            for grp in opt.param_groups:
                grp["lr"] = grp["base_lr"] * f
            opt.step()
        return step_opt
    state = [(ps, gs, [torch.zeros_like(p) for p in ps], [torch.zeros_like(p) for p in ps], lr, wd)
             for ps, gs, lr, wd in groups]
    count = torch.zeros(())

    def step(f: float) -> None:
        count.add_(1)
        for ps, gs, m, v, lr, wd in state:
            fused(ps, gs, m, v, [], [count] * len(ps), lr=lr * f, beta1=b1, beta2=b2, weight_decay=wd, eps=eps,
                  amsgrad=False, maximize=False)
    return step


def train_mlp_grid(params: Params, x: torch.Tensor, y: torch.Tensor, seeds: Sequence[int], lrs: torch.Tensor,
                   wds: torch.Tensor, *, steps: int, batch_size: int, loss: str = "l1") -> Params:
    """Train the MLP heads grid: the maths of ``train_heads(params, mlp_forward, ...)`` with biases exempt from
    weight decay (same initialisation, minibatches, warm-up + cosine schedule, decoupled AdamW), organised
    for speed on CPU:

    - a hand-written backward pass (no autograd graph), every matmul a ``bmm`` / ``baddbmm`` over all heads
      into preallocated buffers; ReLU masks from the stored activations;
    - the output layer kept transposed, ``(A, hidden)``: a ``(B, 128) @ (128, A)`` product with A ~ 7 runs
      ~5x slower per flop in batched GEMM than ``(A, 128) @ (128, B)``;
    - one gather of each seed's minibatch rows per step, shared by that seed's G heads;
    - heads stored ``(G, S, ...)``, so each (lr, wd) group is one contiguous slab for a fused AdamW kernel
      (biases in a group without weight decay);
    - no host syncs inside the loop.

    ``params[name]: (S, G, in, out)`` as built by ``MLPProbe._init``; ``x: (n, F)``, ``y: (n, A)``, both
    standardised. Returns trained parameters in the same layout."""
    if loss not in ("l1", "l2"):
        raise ProbeError(f"probe loss must be 'l1' or 'l2', got {loss!r}")
    n_layers = sum(1 for k in params if k.startswith("W"))
    last = n_layers - 1
    s_count, g_count = params["W0"].shape[:2]
    h_count = s_count * g_count
    n, a_dim = y.shape
    f_dim = x.shape[1]
    bs = min(batch_size, n)
    idx = batch_indices(n, seeds, steps, bs).transpose(0, 1).contiguous()          # (steps, S, B)
    x, y = x.float().contiguous(), y.float().contiguous()
    # storage (G, S, ...): flattened head h = g * S + s; the output layer transposed: W (A, in), b (A, 1)
    w: Params = {}
    for k, p in params.items():
        q = p.detach().float().transpose(0, 1)
        w[k] = (q.transpose(2, 3) if k in (f"W{last}", f"b{last}") else q).contiguous()
    gr = {k: torch.zeros_like(p) for k, p in w.items()}
    flat = lambda d, k: d[k].view(h_count, *d[k].shape[2:])                         # noqa: E731
    W, b = [flat(w, f"W{i}") for i in range(n_layers)], [flat(w, f"b{i}") for i in range(n_layers)]
    dW, db = [flat(gr, f"W{i}") for i in range(n_layers)], [flat(gr, f"b{i}") for i in range(n_layers)]
    # AdamW, one fused kernel call per (lr, wd) group and decay / no-decay (biases) per step
    groups = []
    for g in range(g_count):
        for decay in (True, False):
            keys = [k for k in w if k.startswith("W") == decay]
            groups.append(([w[k][g] for k in keys], [gr[k][g] for k in keys], float(lrs[g]),
                           float(wds[g]) if decay else 0.0))
    adam_step = _fused_adamw(groups)
    xb = torch.empty(g_count, s_count, bs, f_dim)
    acts = [torch.empty(h_count, bs, W[i].shape[2]) for i in range(last)]          # hidden, post-ReLU
    grads = [torch.empty_like(a) for a in acts]
    out = torch.empty(h_count, a_dim, bs)                                            # output, transposed
    g_out = torch.empty_like(out)
    scale = (1.0 if loss == "l1" else 2.0) / (bs * a_dim)                            # d mean(|e|) or mean(e^2)
    warmup = min(100, max(1, steps // 10))
    x_in = xb.view(h_count, bs, f_dim)
    for t in range(steps):
        rows = idx[t].view(-1)
        xb.copy_(x.index_select(0, rows).view(1, s_count, bs, f_dim).expand(g_count, -1, -1, -1))
        y_t = y.index_select(0, rows).view(1, s_count, bs, a_dim).transpose(2, 3)   # (1, S, A, B)
        h = x_in
        for i in range(last):
            h = torch.baddbmm(b[i], h, W[i], out=acts[i]).relu_()
        torch.baddbmm(b[last], W[last], h.transpose(1, 2), out=out)
        ge = g_out.view(g_count, s_count, a_dim, bs)
        torch.sub(out.view(g_count, s_count, a_dim, bs), y_t, out=ge)
        if loss == "l1":
            ge.sign_()
        ge.mul_(scale)
        torch.bmm(g_out, h, out=dW[last])
        torch.sum(g_out, 2, keepdim=True, out=db[last])
        if last > 0:
            torch.bmm(g_out.transpose(1, 2), W[last], out=grads[last - 1])
        for i in range(last - 1, -1, -1):
            _relu_backward_(grads[i], acts[i])
            torch.bmm((x_in if i == 0 else acts[i - 1]).transpose(1, 2), grads[i], out=dW[i])
            torch.sum(grads[i], 1, keepdim=True, out=db[i])
            if i > 0:
                torch.bmm(grads[i], W[i].transpose(1, 2), out=grads[i - 1])
        adam_step(lr_factor(t, steps, warmup))
    res: Params = {}
    for k, p in w.items():
        q = p.transpose(2, 3) if k in (f"W{last}", f"b{last}") else p
        res[k] = q.transpose(0, 1).contiguous()
    return res

class MLPProbe:
    """The paper's MLP probe; ``predict`` returns ``(S, P, A)``, one row per seed (its best (lr, wd) head)."""

    def __init__(self, hidden: Sequence[int] = (256, 128), loss: str = "l1", steps: int = 3000,
                 batch_size: int = 256, lrs: Sequence[float] = (1e-3, 3e-4), weight_decays: Sequence[float] = (1e-2,),
                 seeds: Sequence[int] = (0, 1, 2), use_diff: bool = False, val_frac: float = 0.2,
                 ensemble: int = 1, **unknown: Any) -> None:
        if unknown:
            raise ProbeError(f"mlp probe: unknown option(s) {sorted(unknown)}")
        if isinstance(ensemble, bool) or not isinstance(ensemble, (int, np.integer)) or ensemble < 1:
            raise ProbeError(f"mlp probe: ensemble must be an integer >= 1 (heads averaged per seed), got {ensemble!r}")
        self.ensemble = int(ensemble)
        self.hidden, self.loss, self.steps = [int(h) for h in hidden], loss, int(steps)
        self.batch_size = int(batch_size)
        self.lrs, self.wds = [float(a) for a in lrs], [float(w) for w in weight_decays]
        self.seeds, self.use_diff, self.val_frac = [int(s) for s in seeds], bool(use_diff), float(val_frac)
        self.chosen: list[dict[str, float]] = []

    def _init(self, f_in: int, a: int, g_count: int) -> Params:
        dims = [f_in, *self.hidden, a]
        per_seed: list[Params] = []
        for s in self.head_seeds():
            gen = torch.Generator().manual_seed(int(s))
            ps: Params = {}
            for li in range(len(dims) - 1):
                ps[f"W{li}"] = uniform_init((dims[li], dims[li + 1]), dims[li], gen)
                ps[f"b{li}"] = uniform_init((1, dims[li + 1]), dims[li], gen)
            per_seed.append(ps)
        out: Params = {}
        for k in per_seed[0]:
            st = torch.stack([ps[k] for ps in per_seed])                        # (S, in, out)
            out[k] = st[:, None].expand(-1, g_count, -1, -1).contiguous()        # (S, G, in, out)
        return out

    def fit(self, train: ProbeData) -> "MLPProbe":
        require_episodes(train, 2)
        fit_m, val_m = val_split(train.episode, self.val_frac, seed=0)
        x = pair_inputs(train, self.use_diff)
        self.x_scaler = Standardizer.fit(x[fit_m])
        self.y_scaler = Standardizer.fit(train.y[fit_m])
        xt = torch.from_numpy(self.x_scaler(x))
        yt = torch.from_numpy(self.y_scaler(train.y))
        xf, yf = xt[torch.from_numpy(fit_m)], yt[torch.from_numpy(fit_m)]
        lrs, wds = grid(self.lrs, self.wds)
        params = self._init(x.shape[1], yt.shape[1], len(lrs))
        params = train_mlp_grid(params, xf, yf, self.head_seeds(), lrs, wds, steps=self.steps,
                                batch_size=self.batch_size, loss=self.loss)
        e, s_count = self.ensemble, len(self.seeds)
        with torch.no_grad():
            xv = xt[torch.from_numpy(val_m)]
            pv = self._member_mean(mlp_forward(params, xv[None].expand(s_count * e, -1, -1)))   # (S, G, P, A)
            scores = head_r2(pv, yt[torch.from_numpy(val_m)])
        best = best_heads(scores, self.seeds, "mlp")                               # (S,)
        best_h = best.repeat_interleave(e)                                         # (S*E,): a seed's members
        self.params = {k: p[torch.arange(s_count * e), best_h][:, None] for k, p in params.items()}
        self.val_r2 = scores.tolist()
        self.chosen = [{"seed": s, "lr": float(lrs[b]), "weight_decay": float(wds[b]), "val_r2": float(scores[i, b])}
                       for i, (s, b) in enumerate(zip(self.seeds, best.tolist()))]
        return self

    def head_seeds(self) -> list[int]:
        """The seed of every trained head, ``S * E`` of them grouped by probe seed: seed ``s``'s member ``e``
        has seed ``s + e * MEMBER_STRIDE`` (member 0 is ``s`` itself, so ``ensemble = 1`` is the single
        probe, bit for bit)."""
        return [s + e * MEMBER_STRIDE for s in self.seeds for e in range(self.ensemble)]

    def _member_mean(self, pred: torch.Tensor) -> torch.Tensor:
        """``(S * E, ...)`` head outputs -> ``(S, ...)``: each probe seed's members' mean (E = 1: unchanged)."""
        if self.ensemble == 1:
            return pred
        return pred.view(len(self.seeds), self.ensemble, *pred.shape[1:]).mean(1)

    def predict(self, data: ProbeData) -> np.ndarray:
        x = torch.from_numpy(self.x_scaler(pair_inputs(data, self.use_diff)))
        e, s_count = self.ensemble, len(self.seeds)
        with torch.no_grad():
            out = self._member_mean(mlp_forward(self.params, x[None].expand(s_count * e, -1, -1))[:, 0])
        return self.y_scaler.inverse(out.numpy())

    def config(self) -> dict[str, Any]:
        return {"probe": "mlp", "input": "concat" + ("+diff" if self.use_diff else ""), "pool": "mean",
                "hidden": self.hidden, "activation": "relu", "loss": self.loss, "optimizer": "adamw",
                "steps": self.steps, "batch_size": self.batch_size, "schedule": "warmup+cosine",
                "lrs": self.lrs, "weight_decays": self.wds, "seeds": self.seeds, "val_frac": self.val_frac,
                "selection": "best val R2 per seed (val = train episodes held out)", "chosen": self.chosen,
                **({"ensemble": self.ensemble} if self.ensemble > 1 else {})}
