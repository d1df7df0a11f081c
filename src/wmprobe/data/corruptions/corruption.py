"""The public contract: ``parse_corruption(spec) -> Corruption`` and ``Corruption.apply_clips``.

``Corruption.apply_clips(frames, seeds)`` with ``frames: (B, T, H, W, 3) uint8`` and one seed per clip returns
the same shape and dtype; the per-type ops live in the family modules and are looked up in the registry.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from wmprobe._threads import torch_threads
from wmprobe.data.corruptions.ops import ClipRng, generator
from wmprobe.data.corruptions.registry import CorruptionType, lookup, types
from wmprobe.errors import ConfigError

CHUNK_ELEMENTS = 1 << 19   # frames are processed in cache-sized chunks of a clip (about 2 MB of float32)


@functools.lru_cache(maxsize=64)
def _writes_into(u8: Callable[..., torch.Tensor]) -> bool:
    """Whether a type's ``u8`` op takes ``out=`` (writes the chunk's result in place, no extra buffer)."""
    try:
        return "out" in inspect.signature(u8).parameters
    except (TypeError, ValueError):
        return False


def _valid() -> str:
    """The valid spec forms, for error messages: the parameterised types, then every severity type's name."""
    forms = {"none": "{n}", "sigma": "{n}:SIGMA (e.g. {n}:{d:g})", "kernel": "{n}:K (odd, e.g. {n}:{d})"}
    ts = types().values()
    head = [forms[t.param].format(n=t.name, d=t.default) for t in ts if t.param != "severity"]
    return ("valid: " + ", ".join(head) + ", or NAME:SEVERITY (1-5) with NAME in "
            + ", ".join(t.name for t in ts if t.param == "severity"))


@dataclass(frozen=True)
class Corruption:
    """A parsed corruption: ``name`` and its ``param`` (sigma, kernel size or severity)."""

    name: str
    param: float | int | None = None

    @property
    def _type(self) -> CorruptionType | None:
        return lookup(self.name)

    @property
    def kind(self) -> str:
        """Alias of ``name``."""
        return self.name

    @property
    def _number(self) -> float:
        """The parameter as a number (0 when there is none)."""
        return 0.0 if self.param is None else float(self.param)

    @property
    def spec(self) -> str:
        """Canonical string, e.g. ``clean``, ``noise:0.15``, ``blur:11``, ``fog:3``."""
        t = self._type
        if t is not None and t.param == "none":
            return self.name
        if t is not None and t.param == "sigma":
            return f"{self.name}:{self._number:g}"
        return f"{self.name}:{int(self._number)}"

    @property
    def version(self) -> int:
        """Bumped when this corruption's pixels change, so latent-cache keys never reuse stale shards."""
        t = self._type
        return 1 if t is None else t.version

    @property
    def severity(self) -> int | None:
        """ImageNet-C severity (1-5), or None for clean / the paper's noise and blur."""
        t = self._type
        return int(self._number) if t is not None and t.param == "severity" else None

    def apply_clips(self, frames: torch.Tensor, seeds: Sequence[int], workers: int = 1) -> torch.Tensor:
        """``frames: (B, T, H, W, 3) uint8`` -> same; clip ``b`` draws from a generator seeded ``seeds[b]``.

        ``workers`` > 1 corrupts clips on that many Python threads (torch ops release the GIL; each op stays
        on one intra-op thread): every clip still has its own generator and output slice, so the result is
        identical for any ``workers``. Keep 1 inside processes that already run in parallel (study workers)."""
        if not isinstance(frames, torch.Tensor) or frames.dtype != torch.uint8 or frames.ndim != 5 \
                or frames.shape[-1] != 3:
            got = f"{type(frames).__name__} {getattr(frames, 'dtype', '')} {tuple(getattr(frames, 'shape', ()))}"
            raise ConfigError(f"corruption {self.spec}: frames must be a (B, T, H, W, 3) uint8 tensor, got {got}")
        b, t, h, w, _ = frames.shape
        if len(seeds) != b:
            raise ConfigError(f"corruption {self.spec}: {len(seeds)} seeds for {b} clips")
        ctype = self._type
        if ctype is None:
            raise ConfigError(f"unknown corruption {self.name!r}; {_valid()}")
        if ctype.op is None or frames.numel() == 0:
            return frames.clone()
        out = torch.empty_like(frames)
        step = max(1, CHUNK_ELEMENTS // (h * w * 3))          # depends on the frame size only, never on B
        workers = max(1, min(int(workers), b))
        # one intra-op thread: the chunks are small (cache-sized), where OpenMP fork/join costs more than it
        # gains; on a loaded 2-core machine two threads were 10-50x slower than one (bench/corrupt.py)
        with torch_threads(1):
            if workers == 1:
                for i in range(b):
                    self._clip(ctype, frames, out, seeds, step, i)
            else:
                from concurrent.futures import ThreadPoolExecutor
                with ThreadPoolExecutor(workers) as pool:
                    list(pool.map(lambda i: self._clip(ctype, frames, out, seeds, step, i), range(b)))
        return out

    def _clip(self, ctype: CorruptionType, frames: torch.Tensor, out: torch.Tensor, seeds: Sequence[int],
              step: int, i: int) -> None:
        """Corrupt clip ``i`` of ``frames`` into ``out[i]``, ``step`` frames at a time from one generator."""
        gen = generator(seeds[i])
        op = ctype.op
        assert op is not None, "apply_clips copies a type without an op"
        for t0 in range(0, frames.shape[1], step):
            seg = frames[i, t0:t0 + step]
            if ctype.u8 is not None:
                dst = out[i, t0:t0 + step]                          # contiguous: a slice of the clip
                if _writes_into(ctype.u8):
                    ctype.u8(seg, self.param, out=dst)
                else:
                    dst.copy_(ctype.u8(seg, self.param))
                continue
            x = seg.permute(0, 3, 1, 2).float().div_(255.0)
            y = op(x, self.param, ClipRng([gen], len(seg)))
            out[i, t0:t0 + step] = y.clamp_(0.0, 1.0).mul_(255.0).round_().permute(0, 2, 3, 1)

    def apply(self, frames: torch.Tensor, seed: int) -> torch.Tensor:
        """``frames: (B, T, H, W, 3) uint8`` -> same, with per-clip seeds ``seed * 1_000_003 + b``."""
        n = frames.shape[0] if isinstance(frames, torch.Tensor) and frames.ndim == 5 else 0
        return self.apply_clips(frames, [int(seed) * 1_000_003 + i for i in range(n)])

    def __call__(self, frames: torch.Tensor, seed: int = 0) -> torch.Tensor:
        return self.apply(frames, seed)


def parse_corruption(spec: str | Corruption | None) -> Corruption:
    """Parse ``clean``, ``noise:0.15``, ``blur:11`` or ``NAME[:SEVERITY]``; ConfigError lists the valid names."""
    if isinstance(spec, Corruption):
        return spec
    if spec is None:
        return Corruption("clean")
    if not isinstance(spec, str):
        raise ConfigError(f"corruption spec must be a string, got {type(spec).__name__}; {_valid()}")
    name, _, arg = spec.strip().lower().partition(":")
    name, arg = name.strip(), arg.strip()
    t = lookup(name)
    if t is None:
        raise ConfigError(f"unknown corruption {spec!r}; {_valid()}")
    if t.param == "none":
        if arg:
            raise ConfigError(f"corruption {name!r} takes no parameter, got {spec!r}")
        return Corruption(name)
    try:
        if t.param == "sigma":
            sigma = float(t.default or 0) if not arg else float(arg)
            if not 0.0 < sigma < float("inf"):
                raise ValueError
            return Corruption(name, sigma)
        value = int(float(arg)) if arg else int(t.default or 0)
        if arg and float(arg) != value:
            raise ValueError
    except (ValueError, OverflowError):
        what = {"sigma": "a sigma > 0", "kernel": "an odd kernel size", "severity": "severity 1-5"}[t.param]
        raise ConfigError(f"corruption {spec!r}: parameter {arg!r} is not {what}; {_valid()}") from None
    if t.param == "kernel":
        if value < 1 or value % 2 == 0:
            raise ConfigError(f"corruption {spec!r}: {name} kernel size must be odd and >= 1, got {value}")
        return Corruption(name, value)
    if not 1 <= value <= 5:
        raise ConfigError(f"corruption {spec!r}: severity must be 1-5, got {value}")
    return Corruption(name, value)


def list_specs(severities: Sequence[int] = (1, 2, 3, 4, 5)) -> list[str]:
    """The paper's ``noise:0.15`` and ``blur:11``, then every ImageNet-C name at the given severities."""
    ts = types().values()
    paper = [Corruption(t.name, t.default).spec for t in ts if t.param in ("sigma", "kernel")]
    return paper + [f"{t.name}:{s}" for t in ts if t.param == "severity" for s in severities]
