"""The embedded mini-zoo: small models trained on embedded simulator video, probed like any encoder.

``train(family, store, train_episodes=..., preset=..., id_weight=...) -> checkpoint dir`` (safetensors +
recipe.json), reused when the same recipe was trained before; ``load(dir) -> Encoder``; the registry name is
``zoo:/path/to/checkpoint``. +ID (``id_weight > 0``) adds an auxiliary head on the latents of consecutive
frames of the same episode (inverse dynamics with L1 by default; ``objective=`` picks another, see
``objectives``); the head is discarded and the frozen encoder probed.

Every family (``FAMILIES``; one module each: ``vae``, ``ssl``, ``diffusion``, ``video``, ``dynamics``) uses
the same CoordConv trunk ``models.backbone(width)`` at the preset's width, the same data (clips of consecutive
frames of the training episodes, the same number of FRAMES per step) and the same schedule (AdamW, warm-up
then cosine); only the pretraining signal differs. Every family's probed latents are the trunk's 8x8 grid,
layer ``out``, tokens ``(64, C)``; docs/zoo.md says which tensor that is for each family.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from filelock import FileLock

from wmprobe._dest import write_marker
from wmprobe._fs import atomic_dir, mark_used
from wmprobe.data.store import EpisodeStore
from wmprobe.encoders.base import EncoderSpec, TorchEncoder, conv_tokens, hash_state_dict
from wmprobe.errors import ConfigError, EncoderError

CODE_VERSION = 4
CEILING = "ceiling"   # not a pretraining family: the trunk trained by +ID alone (zoo/ceiling.py)
FAMILIES = {
    "vae": "reconstruction: KL-regularised conv autoencoder (as SD/SDXL VAEs), latents = posterior mean",
    "image-ssl": "image SSL: VICReg on two augmented views of single frames, latents = trunk output",
    "diffusion": "pixel diffusion: v-prediction denoiser on the trunk, latents = trunk on the frame noised at t=0.1",
    "videomae": "VideoMAE-style: tube-masked clip reconstruction in pixel space, latents = trunk per frame",
    "vjepa": "V-JEPA-style: masked clip prediction of EMA-target latents (no pixel decoder), latents = trunk",
    "dynamics": "world model: tokenizer + action-conditioned latent dynamics (shortcut forcing), latents = tokens",
    "dynamics-actin": "world model with the action fed into the tokenizer trunk (zeros at probe time)",
}
DYNAMICS_FAMILIES = ("dynamics", "dynamics-actin")   # families with a latent dynamics model (``imagine``)
_MODELS = {"vae": "vae:VAE", "image-ssl": "ssl:ImageSSL", "diffusion": "diffusion:Diffusion",
           "videomae": "video:VideoMAE", "vjepa": "video:VJEPA", "dynamics": "dynamics:Dynamics",
           "dynamics-actin": "dynamics:DynamicsActIn", CEILING: "ceiling:Ceiling"}


@dataclass(frozen=True)
class Preset:
    width: int
    steps: int
    batch_size: int          # pairs per step: every family sees 2 * batch_size frames per step
    lr: float
    beta: float = 1e-4
    warmup: int = 50


# docs/zoo.md "Presets": what each can show, and the arithmetic behind the demo's and compare's budgets
PRESETS = {"tiny": Preset(width=16, steps=40, batch_size=16, lr=3e-3, warmup=10),
           "demo": Preset(width=32, steps=400, batch_size=24, lr=2e-3, warmup=40),
           "compare": Preset(width=32, steps=2000, batch_size=24, lr=2e-3, warmup=100),
           "paper": Preset(width=128, steps=20000, batch_size=128, lr=1e-3, warmup=500)}


def default_cache_dir() -> Path:
    return Path(os.environ.get("WMPROBE_CACHE") or Path.home() / ".cache" / "wmprobe").expanduser() / "zoo"


def model_class(family: str) -> type:
    if family not in _MODELS:
        raise ConfigError(f"unknown zoo family '{family}': choose one of {sorted(FAMILIES)} (or '{CEILING}')")
    mod, cls = _MODELS[family].split(":")
    return getattr(importlib.import_module(f"wmprobe.zoo.{mod}"), cls)


def build(family: str, width: int, action_dim: int) -> torch.nn.Module:
    return model_class(family)(width, action_dim)


def _clip_starts(store: EpisodeStore, episodes: Sequence[int], clip_len: int) -> np.ndarray:
    """Rows t such that t .. t+clip_len-1 lie in the same (train) episode."""
    rows = [np.arange(store.episode_starts[e], store.episode_starts[e] + store.episode_lengths[e] - clip_len + 1)
            for e in episodes]
    return np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, np.int64)


def _pairs(store: EpisodeStore, episodes: Sequence[int]) -> np.ndarray:
    """Rows t whose successor t+1 is in the same (train) episode."""
    return _clip_starts(store, episodes, 2)


def _task_names(store: EpisodeStore, episodes: Sequence[int]) -> list[str]:
    """Sorted names of the tasks of ``episodes`` (what the leakage check compares with held-out tasks)."""
    from wmprobe.data.splits import task_names_of
    names = task_names_of(store)
    return sorted({names[int(store.tasks[int(e)])] for e in episodes})


def _frames(store: EpisodeStore, rows: np.ndarray, size: int = 64) -> torch.Tensor:
    order = np.argsort(rows, kind="stable")
    x = np.empty((len(rows), *store.frames.shape[1:]), np.uint8)
    x[order] = np.asarray(store.frames[rows[order]])
    x = torch.from_numpy(x).permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[-1] != size:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
    return x


@contextlib.contextmanager
def _threads(n: int | None):
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def id_dims(store: EpisodeStore, id_groups: Sequence[str] | None = None) -> tuple[list[str], list[int], list[bool]]:
    """The +ID action dims: ``(groups, dims, state)``. ``id_groups`` None: ``translation`` when the store has
    that group (the embedded data's identifiable group), else every group. ``state[i]``: dim ``dims[i]`` is
    in a last-value group (``objectives.STATE_GROUPS``: its k-step target is the last value, not the sum)."""
    from wmprobe.zoo.objectives import STATE_GROUPS
    groups_of = {str(g): [int(d) for d in v] for g, v in store.action_groups.items()} or \
        {"action": list(range(store.action_dim))}
    if id_groups is None:
        groups = ["translation"] if "translation" in groups_of else list(groups_of)
    else:
        groups = [str(g) for g in id_groups]
        bad = [g for g in groups if g not in groups_of]
        if bad or not groups:
            raise ConfigError(f"+ID groups {bad or '[]'} are not action groups of {store.name} "
                              f"(it has {sorted(groups_of)})")
    dims = sorted({d for g in groups for d in groups_of[g]})
    state = [any(d in groups_of[g] for g in groups if g in STATE_GROUPS) for d in dims]
    return groups, dims, state


def train(family: str, store: EpisodeStore, *, train_episodes: Sequence[int], preset: str = "demo",
          id_weight: float = 0.0, objective: str = "l1", seed: int = 0, cache_dir: str | os.PathLike | None = None,
          forbid_episodes: Sequence[int] | None = None, progress: bool = True, device: str = "cpu",
          bf16: bool = False, threads: int | None = None, overrides: dict[str, Any] | None = None,
          id_groups: Sequence[str] | None = None) -> Path:
    """Train (or reuse) one zoo model on ``train_episodes`` of ``store``; returns its checkpoint directory.

    ``family``: one of ``FAMILIES``, or ``"ceiling"`` (the trunk trained by +ID alone; ``id_weight`` is then
    1 and ``objective`` l1 or l2). ``forbid_episodes``: the probe's test episodes (and, for task-OOD, every
    episode of its held-out tasks); any overlap with ``train_episodes`` is refused. ``id_groups``: the action
    groups +ID trains on (``id_dims``; default translation). ``bf16``: autocast the forward pass to bfloat16
    (CPU or CUDA). ``threads``: torch CPU threads while training (restored after). ``overrides``: preset
    fields to change (e.g. ``{"steps": 200}``); the recipe records the resulting values."""
    from wmprobe.zoo.objectives import OBJECTIVES
    if family not in FAMILIES and family != CEILING:
        raise ConfigError(f"unknown zoo family '{family}': choose one of {sorted(FAMILIES)} (or '{CEILING}')")
    if family == CEILING:
        if objective not in ("l1", "l2"):
            raise ConfigError(f"the zoo ceiling is trained by inverse dynamics (objective l1 or l2), not '{objective}'")
        id_weight = 1.0
    if preset not in PRESETS:
        raise ConfigError(f"unknown zoo preset '{preset}': choose one of {sorted(PRESETS)}")
    if objective not in OBJECTIVES:
        raise ConfigError(f"unknown +ID objective '{objective}': choose one of {sorted(OBJECTIVES)}")
    train_episodes = sorted(int(e) for e in train_episodes)
    overlap = sorted(set(train_episodes) & set(int(e) for e in (forbid_episodes or ())))
    if overlap:
        raise ConfigError(f"zoo training data overlaps the probe's test episodes {overlap[:10]}: pretraining "
                          "must never see test episodes")
    cfg = PRESETS[preset]
    if overrides:
        unknown = sorted(set(overrides) - set(asdict(cfg)))
        if unknown:
            raise ConfigError(f"unknown zoo preset field(s) {unknown}: choose from {sorted(asdict(cfg))}")
        cfg = replace(cfg, **overrides)
    groups, dims, state = id_dims(store, id_groups)
    recipe = {"family": family, "preset": preset, **asdict(cfg), "id_weight": float(id_weight),
              "objective": objective, "id_groups": groups if id_weight > 0 else None,
              "clip_len": model_class(family).clip_len, "seed": int(seed), "data": store.fingerprint,
              "train_episodes": hashlib.sha256(json.dumps(train_episodes).encode()).hexdigest()[:12],
              "train_tasks": _task_names(store, train_episodes),
              "bf16": bool(bf16), "code_version": CODE_VERSION}
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    suffix = f"-{objective}" if objective != "l1" and id_weight else ""
    dest = root / f"{family}-{preset}-id{id_weight:g}{suffix}-{key}"
    root.mkdir(parents=True, exist_ok=True)
    # one trainer per checkpoint across processes: a second process waits, then reuses what the first saved
    with FileLock(str(root / f"{dest.name}.lock")):
        if intact(dest):   # a corrupt checkpoint (truncated, bit flips, garbage recipe) is retrained
            mark_used(dest)
            return dest
        with _threads(threads):
            model, head, curves, seconds, clips = _fit(family, store, train_episodes, cfg, float(id_weight),
                                                       objective, seed, progress, device, bf16, dims, state)
        curve = curves["loss"]
        from wmprobe.data.splits import episode_hashes
        meta = {"recipe": recipe, "key": key, "action_dim": store.action_dim,
                "train_episode_hashes": episode_hashes(store, train_episodes),
                "params": sum(p.numel() for p in model.parameters()),
                "trunk_params": sum(p.numel() for p in model.trunk.parameters()),
                "head_params": sum(p.numel() for p in head.parameters()) if id_weight > 0 else 0,
                "clip_len": model.clip_len, "clips_per_step": clips,
                "probe_input": getattr(model, "probe_input", ""), "seconds": round(seconds, 2),
                "id_dims": dims if id_weight > 0 else [],
                "loss_curve": curve[:: max(1, len(curve) // 100)], "final_loss": float(np.mean(curve[-20:])),
                "plateau": plateau(curve)}
        if family in DYNAMICS_FAMILIES:   # the dynamics net was trained on these standardised actions (imagine)
            meta["action_mean"], meta["action_scale"] = action_stats(store, train_episodes, model.clip_len)
        if curves.get("id"):
            meta["id_curve"] = curves["id"][:: max(1, len(curves["id"]) // 100)]
            meta["id_scale"] = curves["scale"][:: max(1, len(curves["scale"]) // 100)]
            meta["id_plateau"] = plateau(curves["id"])
        _save(dest, model, meta)
    return dest


def action_stats(store: EpisodeStore, episodes: Sequence[int], clip_len: int) -> tuple[list[float], list[float]]:
    """``(mean, scale)`` per action dim over the clip starts of ``episodes``: the standardisation ``_fit``
    applies to the actions it trains on (``(a - mean) / scale``, scale = std clamped to >= 1e-3)."""
    starts = torch.from_numpy(_clip_starts(store, episodes, clip_len))
    a = torch.from_numpy(np.array(store.actions, np.float32))[starts]
    return a.mean(0).tolist(), a.std(0).clamp_min(1e-3).tolist()


PLATEAU_TAIL, PLATEAU_SHARE = 0.2, 0.1


def plateau(curve: Sequence[float], tail: float = PLATEAU_TAIL, share: float = PLATEAU_SHARE) -> dict[str, Any]:
    """Did a loss curve plateau? ``m(f)``: the mean loss over the 10 % of steps ending at fraction ``f`` of
    training. ``tail_share = (m(1 - tail) - m(1)) / (m(0.1) - m(1))``: the share of the whole improvement
    made in the last ``tail`` of the steps; plateaued when it is below ``share`` (10 %) and the loss fell at
    all. (The schedule anneals the learning rate, so a curve that still falls steeply at its end is a budget
    that stopped too early; a flat end after a real drop is convergence at this budget.)"""
    c = np.asarray(curve, np.float64)
    n = len(c)
    w = max(1, n // 10)

    def m(f: float) -> float:
        end = max(w, int(round(f * n)))
        return float(np.mean(c[end - w: end]))
    drop = m(0.1) - m(1.0)
    tail_share = (m(1.0 - tail) - m(1.0)) / drop if drop > 0 else float("inf")
    return {"tail_share": round(tail_share, 4), "plateaued": bool(drop > 0 and tail_share < share)}


BALANCE_MOMENTUM = 0.9   # running means of the family loss and the +ID term (their ratio scales +ID)


def _fit(family, store, train_episodes, cfg, id_weight, objective, seed, progress, device, bf16, dims, state):
    """The one training loop. Returns ``(model, head, curves, seconds, clips_per_step)``; ``curves``:
    ``loss`` (the family loss per step; the +ID loss for the ceiling), ``id`` (the +ID loss) and ``scale``
    (the +ID term's weight relative to its raw value: ``id_weight * mean(family) / mean(+ID)``)."""
    from wmprobe.zoo.objectives import aux_loss, make_head
    torch.manual_seed(seed)
    gen = np.random.default_rng(seed)
    model = build(family, cfg.width, store.action_dim).to(device)
    own = getattr(model, "own_loss", True)
    head = make_head(objective, cfg.width, len(dims)).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    params += list(head.parameters()) if id_weight > 0 else []
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-4)
    L = model.clip_len
    starts = _clip_starts(store, train_episodes, L)
    if not len(starts):
        raise ConfigError(f"zoo {family}: no training episode has the {L} consecutive frames a sample needs")
    n_clips = max(2, (2 * cfg.batch_size) // L)       # the same clips (and frames) per step for every family
    actions = torch.from_numpy(np.array(store.actions, np.float32))  # a copy: stores are memory-mapped
    act_scale = actions[torch.from_numpy(starts)].std(0).clamp_min(1e-3)
    act_mean = actions[torch.from_numpy(starts)].mean(0)
    # +ID targets: actions / std on the +ID dims; state (last-value) dims also centred (objectives doc)
    d_idx = torch.tensor(dims, dtype=torch.long)
    is_state = torch.tensor(state, dtype=torch.bool)
    id_shift = torch.where(is_state, act_mean[d_idx], torch.zeros(len(dims)))
    curves: dict[str, list[float]] = {"loss": [], "id": [], "scale": []}
    ema_f = ema_a = None
    t0 = time.perf_counter()
    bar = None
    if progress and os.environ.get("WMPROBE_QUIET") != "1":
        from tqdm.auto import tqdm
        bar = tqdm(total=cfg.steps, desc=f"zoo {family}{' +ID' if id_weight and own else ''}", leave=False)
    dev_type = torch.device(device).type
    model.train()
    for step in range(cfg.steps):
        lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup) * 0.5 * (1 + np.cos(np.pi * step / cfg.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        b = starts[gen.integers(0, len(starts), n_clips)]
        idx = torch.from_numpy(b[:, None] + np.arange(L)[None])
        x = _frames(store, idx.numpy().ravel()).reshape(n_clips, L, 3, 64, 64).to(device)
        raw = actions[idx]
        a = ((raw - act_mean) / act_scale).clamp(-10, 10).to(device)
        with torch.autocast(dev_type, dtype=torch.bfloat16, enabled=bf16):
            loss, z = model.loss(x, a) if own else (None, None)
            aux = None
            if id_weight > 0:
                if z is None:
                    z = model.latents(x.reshape(n_clips * L, 3, 64, 64))
                    z = z.reshape(n_clips, L, *z.shape[1:])
                a_id = ((raw[..., d_idx] - id_shift) / act_scale[d_idx]).clamp(-10, 10).to(device)
                aux = aux_loss(objective, head, z.float(), a_id, is_state)
        if not own:
            total, loss, scale = aux, aux, 1.0
        elif aux is not None:
            # balance: the +ID term's running mean is id_weight x the family loss's running mean, for every
            # family (their own losses differ by orders of magnitude; a raw weight would favour some)
            lf, la = float(loss.detach()), float(aux.detach())
            ema_f = lf if ema_f is None else BALANCE_MOMENTUM * ema_f + (1 - BALANCE_MOMENTUM) * lf
            ema_a = la if ema_a is None else BALANCE_MOMENTUM * ema_a + (1 - BALANCE_MOMENTUM) * la
            scale = id_weight * ema_f / max(ema_a, 1e-12)
            total = loss + scale * aux
        else:
            total = loss
        opt.zero_grad(set_to_none=True)
        total.float().backward()
        opt.step()
        model.after_step(step, cfg.steps)
        curves["loss"].append(float(loss.detach()))
        if aux is not None and own:
            curves["id"].append(float(aux.detach()))
            curves["scale"].append(float(scale))
        if not np.isfinite(curves["loss"][-1]) or curves["loss"][-1] > 1e6:
            raise EncoderError(f"zoo {family}: the loss diverged at step {step} (lr {lr:.2g})")
        if bar:
            bar.update(1)
            bar.set_postfix(loss=f"{curves['loss'][-1]:.4f}")
    bar and bar.close()
    model.eval()
    return model, head, curves, time.perf_counter() - t0, n_clips


def _save(dest: Path, model: torch.nn.Module, meta: dict[str, Any]) -> None:
    """``model.safetensors`` + ``recipe.json`` (with the weights file's size and BLAKE2b checksum), atomically."""
    from safetensors.torch import save_file
    from wmprobe.data.store import file_digest
    with atomic_dir(dest) as tmp:  # dest: a content-keyed entry of the cache (a leftover there is replaced)
        write_marker(tmp, "zoo")
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                  str(tmp / "model.safetensors"))
        f = tmp / "model.safetensors"
        meta = {**meta, "checksums": {f.name: {"size": f.stat().st_size, "blake2b": file_digest(f)}}}
        (tmp / "recipe.json").write_text(json.dumps(meta, indent=1))


def _read_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(recipe.json, state dict)`` of a checkpoint whose weights match their recorded checksum; EncoderError
    naming the file otherwise (missing, truncated, bit flips, garbage recipe)."""
    from safetensors.torch import load_file
    from wmprobe.data.store import file_digest
    rfile, wfile = path / "recipe.json", path / "model.safetensors"
    hint = "train it again (`wmprobe zoo train FAMILY --data STORE`; a study retrains its cached models itself)"
    try:
        meta = json.loads(rfile.read_text())
        r = meta["recipe"]
        for key in ("family", "width", "id_weight", "objective", "preset"):
            r[key]
        meta["params"]
    except FileNotFoundError:
        raise EncoderError(f"zoo checkpoint {path} is missing or corrupt (no recipe.json); {hint}") from None
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise EncoderError(f"zoo checkpoint {rfile} is corrupt ({type(exc).__name__}: {exc}); {hint}") from None
    want = (meta.get("checksums") or {}).get(wfile.name)   # absent in checkpoints saved before checksums
    try:
        if want is not None and (wfile.stat().st_size != want.get("size") or file_digest(wfile) != want.get("blake2b")):
            raise EncoderError(f"zoo checkpoint {wfile} does not match the checksum in its recipe.json (truncated "
                               f"or corrupted since it was saved); {hint}")
        state = load_file(str(wfile))
    except EncoderError:
        raise
    except Exception as exc:  # noqa: BLE001 - OSError, or safetensors' own error for a truncated header
        raise EncoderError(f"zoo checkpoint {wfile} is missing or corrupt ({type(exc).__name__}: {exc}); "
                           f"{hint}") from None
    return meta, state


def intact(path: str | os.PathLike) -> bool:
    """True when ``path`` holds a checkpoint that loads (weights matching their checksum); a cached one that
    does not is moved aside with a warning so that ``train`` fits it again."""
    import shutil
    import warnings
    path = Path(path)
    if not path.exists():
        return False
    try:
        _read_checkpoint(path)
        return True
    except EncoderError as exc:
        warnings.warn(f"{exc}: retraining it", stacklevel=2)
        trash = path.with_name(f".{path.name}.{os.getpid()}.corrupt")
        with contextlib.suppress(OSError):
            os.rename(path, trash)
            shutil.rmtree(trash, ignore_errors=True)
        return False


class ZooEncoder(TorchEncoder):
    """A zoo model as an encoder: layer ``out`` = ``module.latents(frame)`` as ``(64, C)`` tokens."""

    def frame_layers(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        return {"out": conv_tokens(self.module.latents(x))}


class ZooDecodingEncoder(ZooEncoder):
    """Families with their own pixel decoder from the probed latents (vae, dynamics tokenizers)."""

    def decode_latents(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, T, N, C)`` tokens on the square grid -> ``(B, T, 64, 64, 3)`` uint8 frames (own decoder)."""
        b, t, n, c = tokens.shape
        g = int(round(n ** 0.5))
        z = tokens.reshape(b * t, g, g, c).permute(0, 3, 1, 2).to(self.device)
        with torch.inference_mode():
            img = self.module.decode(z)
        return (img.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).reshape(b, t, *img.shape[2:], 3)


def load(path: str | os.PathLike, device: str = "cpu") -> ZooEncoder:
    """A checkpoint as an encoder; EncoderError naming the file when it is missing, corrupt or stale."""
    path = Path(path)
    meta, state = _read_checkpoint(path)
    r = meta["recipe"]
    if r.get("code_version", 1) != CODE_VERSION:
        raise EncoderError(f"zoo checkpoint {path} was trained by zoo code version {r.get('code_version', 1)}, "
                           f"this is {CODE_VERSION}: train it again")
    try:
        model = build(r["family"], int(r["width"]), int(meta.get("action_dim", 7)))
        model.load_state_dict(state)
    except (RuntimeError, TypeError, ValueError, ConfigError) as exc:
        raise EncoderError(f"zoo checkpoint {path} does not match the {r['family']} model: {exc}") from None
    spec = EncoderSpec(name=f"zoo:{r['family']}", family=r["family"], input_size=(64, 64),
                       weights_hash=hash_state_dict(state), layers=("out",), default_layer="out",
                       extra={"id_weight": r["id_weight"], "objective": r["objective"], "preset": r["preset"],
                              "params": meta["params"], "trunk_params": meta.get("trunk_params")})
    if r["family"] in DYNAMICS_FAMILIES:
        from wmprobe.zoo.imagine import ZooDynamicsEncoder
        enc = ZooDynamicsEncoder(spec, model, device)
        enc.set_action_stats(meta.get("action_mean"), meta.get("action_scale"), path)
        return enc
    cls = ZooDecodingEncoder if callable(getattr(model, "decode", None)) else ZooEncoder
    return cls(spec, model, device)


def load_encoder(arg: str | None = None, device: str = "cpu", **unknown: Any) -> ZooEncoder:
    """Registry factory: ``zoo:/path/to/checkpoint``."""
    if unknown:
        raise EncoderError(f"zoo: unknown option(s) {sorted(unknown)} (a zoo checkpoint takes only device)")
    if not arg:
        raise EncoderError("zoo encoders are named zoo:/path/to/checkpoint (train one with `wmprobe zoo train`)")
    return load(arg, device=device)
