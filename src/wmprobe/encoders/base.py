"""The one contract every encoder answers: ``encode(frames) -> Latents``.

An ``EncoderSpec`` carries everything that changes an encoder's output (weights hash, input size,
mean/std, resize rule, frames per latent step, layer names, extra knobs such as a diffusion timestep);
``spec.key()`` hashes all of it and is part of the latent-cache key, so changing preprocessing can
never silently reuse stale latents.

Shapes:
    frames:            (B, T, H, W, 3) uint8 (numpy or torch), RGB
    preprocessed:      (B, T, 3, h, w) float32, resized to spec.input_size and normalised by mean/std
    Latents.tokens:    {layer: (B, T', N, D) float32}, T' = T // frames_per_step
    Latents.frame_index: (T',) int64, index in the clip of the first frame each latent step covers
"""
from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from wmprobe._hashing import json_hash
from wmprobe.errors import EncoderError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
UNIT_MEAN = (0.0, 0.0, 0.0)
UNIT_STD = (1.0, 1.0, 1.0)
_SCALARS = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class EncoderSpec:
    name: str
    family: str
    input_size: tuple[int, int]
    mean: tuple[float, float, float] = UNIT_MEAN
    std: tuple[float, float, float] = UNIT_STD
    frames_per_step: int = 1
    clip_len: int | None = None
    layers: tuple[str, ...] = ("out",)
    default_layer: str = "out"
    weights_hash: str = "none"
    resize: str = "bilinear"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.default_layer not in self.layers:
            raise EncoderError(f"encoder {self.name}: default layer '{self.default_layer}' not in {self.layers}")
        if self.frames_per_step < 1:
            raise EncoderError(f"encoder {self.name}: frames_per_step must be >= 1")
        if self.clip_len is not None and self.clip_len % self.frames_per_step:
            raise EncoderError(f"encoder {self.name}: clip_len {self.clip_len} is not a multiple of "
                               f"frames_per_step {self.frames_per_step}")

    def to_dict(self) -> dict[str, Any]:
        if all(type(v) in _SCALARS for v in self.extra.values()):   # asdict's result, ~10x faster (per extract)
            d = {f.name: getattr(self, f.name) for f in fields(self)}
            d["extra"] = dict(self.extra)
        else:
            d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["mean"], d["std"], d["layers"] = list(self.mean), list(self.std), list(self.layers)
        return d

    def key(self, as_dict: dict[str, Any] | None = None) -> str:
        """Hash of everything that changes the output (the name is excluded: same model, same key).
        ``as_dict``: this spec's ``to_dict()`` when the caller already has it (not modified here)."""
        d = dict(self.to_dict() if as_dict is None else as_dict)
        d.pop("name")
        return json_hash(d, 16, default=str)


@dataclass
class Latents:
    tokens: dict[str, torch.Tensor]
    frame_index: torch.Tensor

    def pooled(self, layer: str) -> torch.Tensor:
        """Mean over tokens: ``(B, T', D)``."""
        return self.tokens[layer].mean(dim=2)


def hash_state_dict(state: dict[str, torch.Tensor]) -> str:
    """A stable hash of model weights (names, shapes, dtypes and values)."""
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().cpu().contiguous()
        h.update(k.encode() + str(tuple(t.shape)).encode() + str(t.dtype).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def as_frames_tensor(frames: Any, name: str) -> torch.Tensor:
    """Validate and convert ``(B, T, H, W, 3) uint8`` frames to a torch tensor (no copy for numpy)."""
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    if not isinstance(frames, torch.Tensor):
        raise EncoderError(f"encoder {name}: frames must be a numpy array or torch tensor, got {type(frames)}")
    if frames.ndim != 5 or frames.shape[-1] != 3:
        raise EncoderError(f"encoder {name}: frames must be (B, T, H, W, 3), got {tuple(frames.shape)}")
    if frames.dtype != torch.uint8:
        raise EncoderError(f"encoder {name}: frames must be uint8 RGB, got {frames.dtype}")
    return frames


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


class Encoder(ABC):
    """Subclasses set ``self.spec`` and implement ``forward_layers``; ``encode`` does the rest."""

    spec: EncoderSpec
    device: torch.device = torch.device("cpu")

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """``(B, T, H, W, 3) uint8 -> (B, T, 3, h, w) float32`` on ``self.device``: resize, scale, normalise.
        Always ``normalise(resize_frames(frames))``; adapters override those two, not this."""
        return self.normalise(self.resize_frames(frames))

    def resize_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """The resize step of ``preprocess``: ``(B, T, H, W, 3) uint8 -> (B, T, 3, h, w)`` (float32 in [0, 1]
        here; adapters that resize in uint8 return uint8). Its output depends only on the frames and
        ``resize_key()``, so extraction can cache it per episode and share it between encoders."""
        b, t, h, w, _ = frames.shape
        x = frames.to(self.device).permute(0, 1, 4, 2, 3).reshape(b * t, 3, h, w).float().div_(255.0)
        size = tuple(self.spec.input_size)
        if (h, w) != size:
            mode = self.spec.resize
            x = F.interpolate(x, size=size, mode=mode, antialias=mode in ("bilinear", "bicubic"),
                              align_corners=False if mode in ("bilinear", "bicubic") else None)
        return x.reshape(b, t, 3, *size)

    def normalise(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The rest of ``preprocess``: ``resize_frames``'s output -> float32 ``(x - mean) / std``.

        ``out``: an optional 1-D float32 scratch buffer (at least ``x.numel()`` elements) that an adapter may
        write the result into (the result is then a view of it); this default ignores it. Extraction passes one
        to adapters whose ``normalise`` takes ``out`` and reuses it across episodes."""
        mean = torch.tensor(self.spec.mean, device=x.device).view(3, 1, 1)
        std = torch.tensor(self.spec.std, device=x.device).view(3, 1, 1)
        return (x - mean) / std

    def resize_key(self) -> dict[str, Any] | None:
        """What ``resize_frames``'s output depends on besides the frames (None: not cacheable, e.g. an adapter
        that overrides ``preprocess`` itself)."""
        if type(self).preprocess is not Encoder.preprocess:
            return None
        fn = type(self).resize_frames
        return {"impl": f"{fn.__module__}.{fn.__qualname__}", "input_size": list(self.spec.input_size),
                "resize": self.spec.resize, "resize_short": self.spec.extra.get("resize_short"),
                "device": torch.device(self.device).type}

    def normalise_key(self) -> dict[str, Any] | None:
        """What ``normalise``'s output depends on besides its input (None: not cacheable). Extraction's frame
        cache keeps each episode's normalised frames under this key (plus the resize's key, torch's version and
        CPU kernel level), so an adapter whose ``normalise`` reads anything but ``spec.mean`` / ``spec.std``
        must override this (or return None)."""
        if "normalise" in vars(self):                              # patched on the instance: unknown inputs
            return None
        fn = type(self).normalise
        return {"impl": f"{fn.__module__}.{fn.__qualname__}", "mean": list(self.spec.mean),
                "std": list(self.spec.std), "device": torch.device(self.device).type}

    @abstractmethod
    def forward_layers(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """``x: (B, T, 3, h, w)`` preprocessed -> ``{layer: (B, T // frames_per_step, N, D)}``."""

    def check_clip(self, t: int) -> None:
        s = self.spec
        if t % s.frames_per_step:
            raise EncoderError(f"encoder {s.name}: {t} frames is not a multiple of its {s.frames_per_step} "
                               "frames per latent step")
        if s.clip_len is not None and t != s.clip_len:
            raise EncoderError(f"encoder {s.name} needs clips of exactly {s.clip_len} frames, got {t}")

    def encode(self, frames: Any, layers: Sequence[str] | None = None) -> Latents:
        frames = as_frames_tensor(frames, self.spec.name)
        with torch.inference_mode():
            return self._encode(self.preprocess, frames, layers)

    def encode_resized(self, resized: torch.Tensor, layers: Sequence[str] | None = None) -> Latents:
        """``encode`` from ``resize_frames``'s output ``(B, T, 3, h, w)`` (e.g. read from extraction's frame
        cache): the same latents as ``encode`` of the frames it came from."""
        with torch.inference_mode():
            return self._encode(lambda r: self.normalise(r.to(self.device)), resized, layers)

    def encode_normalised(self, x: torch.Tensor, layers: Sequence[str] | None = None) -> Latents:
        """``encode`` from ``normalise(resize_frames(...))``'s output ``(B, T, 3, h, w)`` on ``self.device``
        (extraction normalises a cached episode once, then encodes its windows): the same latents."""
        with torch.inference_mode():
            return self._encode(_identity, x, layers)

    def _encode(self, prep: Any, frames: torch.Tensor, layers: Sequence[str] | None) -> Latents:
        layers = tuple(layers) if layers else (self.spec.default_layer,)
        unknown = [l for l in layers if l not in self.spec.layers]
        if unknown:
            raise EncoderError(f"encoder {self.spec.name} has no layer(s) {unknown}; it has {list(self.spec.layers)}")
        self.check_clip(frames.shape[1])
        out = self.forward_layers(prep(frames), layers)
        steps = frames.shape[1] // self.spec.frames_per_step
        for l, v in out.items():
            if v.ndim != 4 or v.shape[1] != steps:
                raise EncoderError(f"encoder {self.spec.name} layer {l}: expected (B, {steps}, N, D), "
                                   f"got {tuple(v.shape)} (a bug in the adapter)")
        frame_index = torch.arange(0, steps * self.spec.frames_per_step, self.spec.frames_per_step, dtype=torch.int64)
        return Latents({l: out[l].float() for l in layers}, frame_index)


class TorchEncoder(Encoder):
    """An encoder wrapping one ``torch.nn.Module`` that maps ``(B*T, 3, h, w) -> {layer: (B*T, N, D)}``.

    Per-frame models (``frames_per_step == 1``) only implement ``frame_layers``.
    """

    def __init__(self, spec: EncoderSpec, module: torch.nn.Module, device: str | torch.device = "cpu"):
        self.spec = spec
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @abstractmethod
    def frame_layers(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """``x: (B*T, 3, h, w)`` -> ``{layer: (B*T, N, D)}``."""

    def forward_layers(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        b, t = x.shape[:2]
        out = self.frame_layers(x.reshape(b * t, *x.shape[2:]), layers)
        return {l: v.reshape(b, t, *v.shape[1:]) for l, v in out.items()}


def conv_tokens(fmap: torch.Tensor) -> torch.Tensor:
    """``(B, C, h, w)`` feature map -> ``(B, h*w, C)`` tokens."""
    return fmap.flatten(2).transpose(1, 2)
