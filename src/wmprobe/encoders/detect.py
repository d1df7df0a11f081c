"""A bare checkpoint name -> its encoder family, from the checkpoint's own config (offline first).

``wmprobe extract facebook/vjepa2-vitl-fpc64-256 STORE`` (or a local directory saved with
``save_pretrained``) needs no ``family:`` prefix: the checkpoint is resolved through the Hugging Face cache
(``hub.resolve_checkpoint``: local files first, a download only when the network is allowed) and the family is
read from ``config.json``:

- transformers: ``model_type`` (``vjepa2``, ``videomae``, ``dinov2``, ``dinov3_vit``, ``siglip`` /
  ``siglip_vision_model``, ``siglip2`` / ``siglip2_vision_model``) -> the family whose ``model_types`` list it
  (``encoders/hf.py``);
- diffusers: ``_class_name`` ``AutoencoderKL`` -> ``sd-vae``, ``AutoencoderKLCosmos`` -> ``cosmos``,
  ``UNet2DModel`` / ``UNet2DConditionModel`` -> ``diffusion-unet``. A whole pipeline (``model_index.json``) holds
  several models, so it is refused with the two names to choose from.

``family:ID`` still works and overrides the detection (e.g. ``siglip:`` on a checkpoint whose config says
otherwise). Nothing here imports torch, transformers or diffusers.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from wmprobe.errors import EncoderError

DIFFUSERS_CLASSES = {"AutoencoderKL": "sd-vae", "AutoencoderKLCosmos": "cosmos", "UNet2DModel": "diffusion-unet",
                     "UNet2DConditionModel": "diffusion-unet"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def looks_like_checkpoint(name: str) -> bool:
    """``owner/name`` (a hub id) or an existing directory with a ``config.json`` / ``model_index.json``."""
    if not isinstance(name, str) or not name:
        return False
    p = Path(name).expanduser()
    if p.is_dir():
        return (p / "config.json").is_file() or (p / "model_index.json").is_file()
    return bool(_HUB_ID.match(name))


def model_types() -> dict[str, str]:
    """transformers ``model_type`` -> wmprobe family name."""
    from wmprobe.encoders.hf import FAMILIES   # torch is imported there; only called when a name needs it
    return {mt: fam.name for fam in FAMILIES.values() for mt in fam.model_types}


def family_from_config(config: dict | None, index: dict | None, source: str) -> str:
    """The family of a checkpoint from its ``config.json`` (and ``model_index.json``); EncoderError if none."""
    if config and config.get("model_type"):
        mt = str(config["model_type"])
        fam = model_types().get(mt)
        if fam is None:
            raise EncoderError(f"checkpoint '{source}': config.json model_type '{mt}' is not a supported family "
                               f"(supported model types: {', '.join(sorted(model_types()))}); name an adapter "
                               f"explicitly as FAMILY:{source} (`wmprobe ls encoders`), or add an encoder plugin")
        return fam
    if config and config.get("_class_name") in DIFFUSERS_CLASSES:
        return DIFFUSERS_CLASSES[config["_class_name"]]
    if index is not None:
        raise EncoderError(f"checkpoint '{source}' is a diffusers pipeline ({index.get('_class_name', '?')}) holding "
                           f"several models: name the one to probe, sd-vae:{source} (its VAE) or "
                           f"diffusion-unet:{source} (its denoiser)")
    what = (f"its config.json has neither model_type nor a known diffusers _class_name "
            f"({config.get('_class_name')!r})" if config is not None else "it has no config.json")
    raise EncoderError(f"checkpoint '{source}': cannot tell its encoder family ({what}); name it as "
                       f"FAMILY:{source} (`wmprobe ls encoders`)")


def detect_family(source: str, local_only: bool = False) -> str | None:
    """The family of the checkpoint ``source`` (hub id or directory). With ``local_only`` nothing is downloaded
    and None means "not on disk yet" (a study is validated without the network)."""
    from wmprobe.encoders import hub
    ckpt = hub.resolve_checkpoint(source, source, source, local_only=local_only)
    if ckpt is None:
        return None
    cfg, index = _json(ckpt.path / "config.json", source), _json(ckpt.path / "model_index.json", source)
    return family_from_config(cfg, index, source)


def _json(f: Path, source: str) -> dict | None:
    if not f.is_file():
        return None
    try:
        return json.loads(f.read_text())
    except (ValueError, OSError) as exc:
        raise EncoderError(f"checkpoint '{source}': {f.name} is unreadable ({exc})") from None
