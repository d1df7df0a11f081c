"""Loading helpers shared by the transformers and diffusers adapters.

One job: turn a user's checkpoint argument (a local directory or a hub id) into files on disk, safely.

- ``resolve_checkpoint(arg, default_id, what)``: a local directory is used as is (it must exist); a hub id is
  resolved through the Hugging Face cache (``HF_HOME``); with ``HF_HUB_OFFLINE=1`` (or no network) a missing
  checkpoint is an ``EncoderError`` saying how to provide it, never a hang or a traceback.
- ``check_remote_code``: a checkpoint whose config asks for its own Python code (``auto_map``) is refused
  unless the user passed ``trust_remote_code=True`` explicitly.
- Weights are read from ``*.safetensors`` only (``use_safetensors=True``); a directory holding only pickled
  ``.bin`` / ``.pt`` weights is refused with the conversion hint.
- ``files_hash``: sha256 of the checkpoint's safetensors files and config (this is ``spec.weights_hash``:
  content-based, so retrained weights or an edited config change the latent-cache key). Cost: one read of the
  weight files (about 1 s per GB), done once per load.
- ``pick_device`` / ``pick_dtype``: ``device="auto"`` means CUDA when available, else CPU.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from wmprobe.errors import EncoderError

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


@dataclass(frozen=True)
class Checkpoint:
    """A resolved checkpoint: ``path`` is a local directory (a hub snapshot or the user's own)."""
    source: str          # what the user named (dir or hub id)
    path: Path
    subfolder: str = ""  # e.g. "unet" inside a diffusers pipeline directory

    @property
    def root(self) -> Path:
        return self.path / self.subfolder if self.subfolder else self.path

    def read_json(self, name: str) -> dict[str, Any] | None:
        """``name`` inside the checkpoint root (or its parent pipeline dir), parsed; None when absent."""
        for base in (self.root, self.path):
            f = base / name
            if f.is_file():
                try:
                    return json.loads(f.read_text())
                except json.JSONDecodeError as exc:
                    raise EncoderError(f"checkpoint {self.source}: {f} is not valid JSON ({exc})") from None
        return None


def is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _looks_local(arg: str) -> bool:
    """A hub id is ``owner/name`` that is not an existing path; anything else is a local directory."""
    return Path(arg).expanduser().exists() or not _HUB_ID.match(arg)


def resolve_checkpoint(arg: str | None, default_id: str, what: str, local_only: bool = False) -> Checkpoint | None:
    """Local directory or hub id -> ``Checkpoint``; missing or unreachable -> ``EncoderError`` with the fix.
    ``local_only``: never download; a hub id that is not in the cache gives None."""
    source = arg or default_id
    if _looks_local(source):
        local = Path(source).expanduser()
        if not local.is_dir():
            raise EncoderError(f"{what}: checkpoint directory '{source}' does not exist (pass an existing "
                               f"directory saved with save_pretrained, or a hub id such as {default_id})")
        return Checkpoint(source, local.resolve())
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - huggingface_hub ships with transformers/diffusers
        raise EncoderError(f"{what}: loading '{source}' from the hub needs huggingface_hub "
                           "(pip install -c constraints.txt 'wmprobe[hf]')") from None
    patterns = ["*.json", "*.safetensors", "*.txt", "*.model"]
    try:
        path = snapshot_download(source, allow_patterns=patterns, local_files_only=True)
    except Exception:
        path = None
    if path is None and local_only:
        return None
    if path is None and not is_offline():
        try:
            path = snapshot_download(source, allow_patterns=patterns)
        except Exception as exc:  # network down, gated repo, unknown id
            raise EncoderError(_missing(what, source, f"download failed: {type(exc).__name__}: {exc}")) from None
    if path is None:
        raise EncoderError(_missing(what, source, "HF_HUB_OFFLINE is set and it is not in the cache"))
    return Checkpoint(source, Path(path))


def _missing(what: str, source: str, why: str) -> str:
    home = os.environ.get("HF_HOME", "~/.cache/huggingface")
    return (f"{what}: checkpoint '{source}' is not on disk ({why}). Either download it where there is network "
            f"(`hf download {source}`) into the cache at HF_HOME={home}, or pass a local directory: "
            f"'{what}:/path/to/checkpoint'")


def check_remote_code(ckpt: Checkpoint, config: dict[str, Any] | None, trust_remote_code: bool, what: str) -> None:
    """Refuse checkpoints that need their own Python code unless ``trust_remote_code=True`` was passed."""
    if config and "auto_map" in config and not trust_remote_code:
        raise EncoderError(f"{what}: checkpoint '{ckpt.source}' ships its own Python code (auto_map in "
                           "config.json); wmprobe does not run downloaded code by default. If you trust it, pass "
                           "trust_remote_code=True: load_encoder(name, trust_remote_code=True)")


def check_safetensors(ckpt: Checkpoint, what: str) -> list[Path]:
    """The checkpoint's ``*.safetensors`` files; refuse pickle-only checkpoints."""
    files = sorted(ckpt.root.glob("*.safetensors"))
    if not files:
        pickled = sorted(p.name for p in ckpt.root.glob("*") if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))
        hint = (f" (found pickled weights {pickled[:3]}: wmprobe loads safetensors only; convert with "
                "`model.save_pretrained(dir, safe_serialization=True)` in a trusted environment)") if pickled else ""
        raise EncoderError(f"{what}: no *.safetensors weights in {ckpt.root}{hint}")
    return files


def files_hash(files: list[Path], config: dict[str, Any] | None) -> str:
    """sha256 over the weight files' bytes and the canonical config JSON (16 hex chars)."""
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
    cfg = {k: v for k, v in (config or {}).items() if not k.startswith("_") and k != "transformers_version"}
    h.update(json.dumps(cfg, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def pick_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise EncoderError(f"unknown device '{device}' (use auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise EncoderError(f"device '{device}' requested but CUDA is not available here (use device=auto)")
    return dev


def pick_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if str(dtype).lower() not in DTYPES:
        raise EncoderError(f"unknown dtype '{dtype}' (use one of {sorted(DTYPES)})")
    return DTYPES[str(dtype).lower()]


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast on ``device`` when asked for, else fp32: a disabled ``torch.autocast`` where a caller
    has autocast on, a ``nullcontext`` otherwise (the same, without the ~20 us a disabled autocast costs per
    call, as much as a tiny model's layer)."""
    if not bf16 and not torch.is_autocast_enabled(device.type):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bool(bf16))


def resample_mode(resample: Any, default: str = "bilinear") -> str:
    """PIL resample code / name (processor configs) -> ``F.interpolate`` mode."""
    table = {0: "nearest", 1: "bicubic", 2: "bilinear", 3: "bicubic", "nearest": "nearest",
             "bilinear": "bilinear", "bicubic": "bicubic", "lanczos": "bicubic"}
    if isinstance(resample, dict):  # some processors store {"value": 3}
        resample = resample.get("value", resample.get("_value_"))
    return table.get(resample if not isinstance(resample, str) else resample.lower(), default)
