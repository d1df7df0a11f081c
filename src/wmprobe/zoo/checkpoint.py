"""Zoo checkpoints: ``model.safetensors`` + ``recipe.json`` (with the weights' checksum), written atomically;
``intact`` checks one, ``load`` turns one into an encoder (``zoo:/path/to/checkpoint`` in the registry).
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from wmprobe._dest import write_marker
from wmprobe._fs import atomic_dir
from wmprobe.encoders.base import EncoderSpec, hash_state_dict
from wmprobe.errors import ConfigError, EncoderError
from wmprobe.study.cache import default_cache_dir as cache_root
from wmprobe.zoo.encoder import ZooDecodingEncoder, ZooEncoder
from wmprobe.zoo.families import build, family
from wmprobe.zoo.imagine import ZooDynamicsEncoder

CODE_VERSION = 5


def default_cache_dir() -> Path:
    """``CACHE/zoo``: where ``train`` keeps checkpoints and studies look for them (``CACHE``: the cache root,
    ``$WMPROBE_CACHE`` or ``~/.cache/wmprobe``)."""
    return cache_root() / "zoo"


def save(dest: Path, model: torch.nn.Module, meta: dict[str, Any]) -> None:
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
    if family(r["family"]).dynamics:
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
