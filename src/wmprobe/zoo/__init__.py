"""The embedded mini-zoo: small models trained on embedded simulator video, probed like any encoder.

``train(family, store, train_episodes=..., preset=..., id_weight=...) -> checkpoint dir`` (safetensors +
recipe.json), reused when the same recipe was trained before; ``load(dir) -> Encoder``; the registry name is
``zoo:/path/to/checkpoint``. +ID (``id_weight > 0``) adds an inverse-dynamics head on the latents of
consecutive frames of the same episode (L1 by default); the head is discarded and the frozen encoder probed.

Implemented families: see ``FAMILIES``. The probed latents of ``vae`` are the posterior means on the 8x8
grid (tokens ``(64, C)``), layer ``out``.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from wmprobe.data.store import EpisodeStore
from wmprobe.encoders.base import EncoderSpec, TorchEncoder, conv_tokens, hash_state_dict
from wmprobe.errors import ConfigError, EncoderError

CODE_VERSION = 1
FAMILIES = {
    "vae": "reconstruction: KL-regularised conv autoencoder (as SD/SDXL VAEs), latents = posterior mean",
}


@dataclass(frozen=True)
class Preset:
    width: int
    steps: int
    batch_size: int
    lr: float
    beta: float = 1e-4


PRESETS = {"tiny": Preset(width=16, steps=40, batch_size=16, lr=3e-3),
           "demo": Preset(width=32, steps=300, batch_size=32, lr=2e-3),
           "paper": Preset(width=128, steps=20000, batch_size=128, lr=1e-3)}


def default_cache_dir() -> Path:
    return Path(os.environ.get("WMPROBE_CACHE") or Path.home() / ".cache" / "wmprobe").expanduser() / "zoo"


def _pairs(store: EpisodeStore, episodes: Sequence[int]) -> np.ndarray:
    """Rows t whose successor t+1 is in the same (train) episode."""
    rows = [np.arange(store.episode_starts[e], store.episode_starts[e] + store.episode_lengths[e] - 1)
            for e in episodes]
    return np.concatenate(rows).astype(np.int64)


def _frames(store: EpisodeStore, rows: np.ndarray, size: int = 64) -> torch.Tensor:
    x = torch.from_numpy(np.asarray(store.frames[np.sort(rows)])[np.argsort(np.argsort(rows))])
    x = x.permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[-1] != size:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
    return x


def train(family: str, store: EpisodeStore, *, train_episodes: Sequence[int], preset: str = "demo",
          id_weight: float = 0.0, objective: str = "l1", seed: int = 0, cache_dir: str | os.PathLike | None = None,
          forbid_episodes: Sequence[int] | None = None, progress: bool = True, device: str = "cpu") -> Path:
    """Train (or reuse) one zoo model on ``train_episodes`` of ``store``; returns its checkpoint directory."""
    if family not in FAMILIES:
        raise ConfigError(f"unknown zoo family '{family}': choose one of {sorted(FAMILIES)}")
    if preset not in PRESETS:
        raise ConfigError(f"unknown zoo preset '{preset}': choose one of {sorted(PRESETS)}")
    if objective not in ("l1", "l2"):
        raise ConfigError(f"unknown +ID objective '{objective}': choose l1 or l2")
    train_episodes = sorted(int(e) for e in train_episodes)
    overlap = sorted(set(train_episodes) & set(int(e) for e in (forbid_episodes or ())))
    if overlap:
        raise ConfigError(f"zoo training data overlaps the probe's test episodes {overlap[:10]}: pretraining "
                          "must never see test episodes")
    cfg = PRESETS[preset]
    recipe = {"family": family, "preset": preset, **asdict(cfg), "id_weight": float(id_weight),
              "objective": objective, "seed": int(seed), "data": store.fingerprint,
              "train_episodes": hashlib.sha256(json.dumps(train_episodes).encode()).hexdigest()[:12],
              "code_version": CODE_VERSION}
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    dest = root / f"{family}-{preset}-id{id_weight:g}-{key}"
    if (dest / "recipe.json").exists():
        return dest
    from wmprobe.zoo.models import VAE, IDHead, id_loss
    torch.manual_seed(seed)
    gen = np.random.default_rng(seed)
    model = VAE(cfg.width).to(device)
    head = IDHead(cfg.width, store.action_dim).to(device)
    params = list(model.parameters()) + (list(head.parameters()) if id_weight > 0 else [])
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-4)
    rows = _pairs(store, train_episodes)
    actions = torch.from_numpy(np.asarray(store.actions))
    act_scale = actions[torch.from_numpy(rows)].std(0).clamp_min(1e-3)
    curve, t0 = [], time.perf_counter()
    bar = None
    if progress and os.environ.get("WMPROBE_QUIET") != "1":
        from tqdm.auto import tqdm
        bar = tqdm(total=cfg.steps, desc=f"zoo {family}{' +ID' if id_weight else ''}", leave=False)
    for step in range(cfg.steps):
        lr = cfg.lr * min(1.0, (step + 1) / 50) * 0.5 * (1 + np.cos(np.pi * step / cfg.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        b = rows[gen.integers(0, len(rows), cfg.batch_size)]
        x = _frames(store, np.concatenate([b, b + 1])).to(device)
        loss, mu = model.loss(x, cfg.beta)
        total = loss
        if id_weight > 0:
            z_t, z_t1 = mu.chunk(2)
            target = (actions[torch.from_numpy(b)] / act_scale).to(device)
            total = loss + id_weight * id_loss(head(z_t, z_t1), target, objective)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        curve.append(float(loss.detach()))
        if bar:
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss):.4f}")
    bar and bar.close()
    meta = {"recipe": recipe, "key": key, "params": sum(p.numel() for p in model.parameters()),
            "seconds": round(time.perf_counter() - t0, 2), "loss_curve": curve[:: max(1, len(curve) // 100)],
            "final_loss": float(np.mean(curve[-20:]))}
    _save(dest, model, meta)
    return dest


def _save(dest: Path, model: torch.nn.Module, meta: dict[str, Any]) -> None:
    from safetensors.torch import save_file
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                  str(tmp / "model.safetensors"))
        (tmp / "recipe.json").write_text(json.dumps(meta, indent=1))
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class ZooEncoder(TorchEncoder):
    def frame_layers(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        return {"out": conv_tokens(self.module.latents(x))}

    def decode_latents(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, T, N, C)`` tokens on the square grid -> ``(B, T, 64, 64, 3)`` uint8 frames (own decoder)."""
        b, t, n, c = tokens.shape
        g = int(round(n ** 0.5))
        z = tokens.reshape(b * t, g, g, c).permute(0, 3, 1, 2).to(self.device)
        with torch.inference_mode():
            img = self.module.decode(z)
        return (img.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).reshape(b, t, *img.shape[2:], 3)


def load(path: str | os.PathLike, device: str = "cpu") -> ZooEncoder:
    from safetensors.torch import load_file
    from wmprobe.zoo.models import VAE
    path = Path(path)
    try:
        meta = json.loads((path / "recipe.json").read_text())
        state = load_file(str(path / "model.safetensors"))
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        raise EncoderError(f"zoo checkpoint {path} is missing or corrupt ({exc}); train it with "
                           "`wmprobe zoo train FAMILY --data STORE`") from None
    r = meta["recipe"]
    model = VAE(r["width"])
    model.load_state_dict(state)
    spec = EncoderSpec(name=f"zoo:{r['family']}", family=r["family"], input_size=(64, 64),
                       weights_hash=hash_state_dict(state), layers=("out",), default_layer="out",
                       extra={"id_weight": r["id_weight"], "objective": r["objective"], "preset": r["preset"],
                              "params": meta["params"]})
    return ZooEncoder(spec, model, device)


def load_encoder(arg: str | None = None, device: str = "cpu", **_: Any) -> ZooEncoder:
    """Registry factory: ``zoo:/path/to/checkpoint``."""
    if not arg:
        raise EncoderError("zoo encoders are named zoo:/path/to/checkpoint (train one with `wmprobe zoo train`)")
    return load(arg, device=device)
