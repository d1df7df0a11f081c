"""Lazy encoder registry: ``"name[:arg]" -> "module:factory"``, imported only when asked for.

Names resolve in this order:
1. built-in names (``BUILTIN`` below), e.g. ``pixels``, ``vjepa2:facebook/vjepa2-vitl-fpc64-256``; a bare
   checkpoint (``facebook/vjepa2-vitl-fpc64-256`` or a ``save_pretrained`` directory) gets its family from its
   config.json (``encoders/detect.py``);
2. third-party plugins registered under the ``wmprobe.encoders`` entry-point group;
3. names added at run time with ``register_encoder``
(the three layers are one ``wmprobe.registry.Registry``: ``ENCODERS``);
4. a dotted path ``package.module:factory`` (the module must be importable).

A factory is called as ``factory(arg, **options)`` where ``arg`` is the text after the first ``:``
(a checkpoint path, a hub id, or None) and must return an ``Encoder``.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata  # noqa: F401 - tests fake plugins through ``registry.metadata.entry_points``
from typing import Any, Callable

from wmprobe.encoders.base import Encoder
from wmprobe.errors import EncoderError
from wmprobe.registry import Registry, ResolveError, resolve, target_of

ENTRY_POINT_GROUP = "wmprobe.encoders"


@dataclass(frozen=True)
class Registered:
    target: str  # "module:factory"
    family: str
    description: str
    needs: str = ""  # extra to install, e.g. "hf"


BUILTIN: dict[str, Registered] = {
    "pixels": Registered("wmprobe.encoders.baselines:pixels", "pixels",
                         "raw frames, resized to 16x16, one token per pixel (the floor a representation must beat)"),
    "random-conv": Registered("wmprobe.encoders.baselines:random_conv", "random",
                              "random-init conv trunk (no training): the architecture prior alone"),
    "zoo": Registered("wmprobe.zoo:load_encoder", "zoo",
                      "a trained mini-zoo checkpoint (arg: checkpoint dir; family read from it)"),
    "vjepa2": Registered("wmprobe.encoders.hf:vjepa2", "video-jepa",
                         "V-JEPA 2 (transformers VJEPA2Model), tubelet 2 (arg: dir or hub id)", "hf"),
    "videomae": Registered("wmprobe.encoders.hf:videomae", "video-mae",
                           "VideoMAE (transformers VideoMAEModel), exact clip length (arg: dir or hub id)", "hf"),
    "dinov2": Registered("wmprobe.encoders.hf:dinov2", "image-ssl",
                         "DINOv2 ViT (transformers Dinov2Model), per frame (arg: dir or hub id)", "hf"),
    "dinov3": Registered("wmprobe.encoders.hf:dinov3", "image-ssl",
                         "DINOv3 ViT (transformers DINOv3ViTModel), per frame (arg: dir or hub id)", "hf"),
    "siglip": Registered("wmprobe.encoders.hf:siglip", "image-ssl",
                         "SigLIP vision tower (transformers SiglipVisionModel), per frame", "hf"),
    "siglip2": Registered("wmprobe.encoders.hf:siglip2", "image-ssl",
                          "SigLIP 2 vision tower (transformers Siglip2VisionModel), per frame", "hf"),
    "sd-vae": Registered("wmprobe.encoders.diffusers:autoencoder_kl", "autoencoder",
                         "diffusers AutoencoderKL (SD / SDXL VAE) posterior-mean latents", "hf"),
    "cosmos": Registered("wmprobe.encoders.diffusers:cosmos_tokenizer", "autoencoder",
                         "Cosmos tokenizer (diffusers AutoencoderKLCosmos) causal video latents", "hf"),
    "diffusion-unet": Registered("wmprobe.encoders.diffusers:diffusion_unet", "diffusion",
                                 "diffusers UNet denoiser features at a fixed noise timestep", "hf"),
}


def _plugin_meta(ep: Any) -> dict[str, Any]:
    return {"family": "plugin", "description": f"plugin from {ep.dist.name if ep.dist else '?'}"}


def _check_factory(name: str, obj: Any) -> Callable[..., Encoder]:
    if not callable(obj):
        raise EncoderError(f"encoder '{name}': {obj!r} is not callable")
    return obj


#: every encoder name -> its factory target; ``meta``: family, description, needs (an extra)
ENCODERS: Registry[Callable[..., Encoder]] = Registry("encoder", group=ENTRY_POINT_GROUP, error=EncoderError,
                                                      check=_check_factory, plugin_meta=_plugin_meta)
for _name, _reg in BUILTIN.items():
    ENCODERS.add(_name, _reg.target, family=_reg.family, description=_reg.description, needs=_reg.needs)


def register_encoder(name: str, target: str | Callable[..., Encoder], family: str = "custom",
                     description: str = "") -> None:
    """Register ``name`` at run time; ``target`` is ``"module:factory"`` or a callable."""
    if callable(target):
        target = target_of(target)
    ENCODERS.add(name, target, runtime=True, family=family, description=description, needs="")


def list_encoders() -> dict[str, Registered]:
    """Every known name (built-in, plugins, run-time), without importing any model code."""
    return {n: Registered(str(e.target), e.meta.get("family", "plugin"), e.meta.get("description", ""),
                          e.meta.get("needs", "")) for n, e in ENCODERS.entries().items()}


def split_name(name: str) -> tuple[str, str | None]:
    base, sep, arg = name.partition(":")
    return base, (arg if sep else None)


def _import_target(target: str, what: str) -> Callable[..., Encoder]:
    """``resolve(target)`` with the encoder wording of its errors (``what``: the name the user gave)."""
    try:
        return _check_factory(what, resolve(target))
    except ResolveError as exc:
        if exc.reason == "import":
            raise EncoderError(f"encoder '{what}': cannot import {exc.module} ({exc.cause}); install the extra it "
                               "needs (e.g. pip install -c constraints.txt 'wmprobe[hf]')") from None
        if exc.reason == "attribute":
            raise EncoderError(f"encoder '{what}': {exc.module} has no attribute '{exc.attr}'") from None
        raise EncoderError(f"encoder '{what}': target {target!r} is not 'module:factory'") from None


def _checkpoint_like(name: str) -> bool:
    from wmprobe.encoders.detect import looks_like_checkpoint
    return looks_like_checkpoint(name)


def load_encoder(name: str, **options: Any) -> Encoder:
    """Build the encoder called ``name`` (see module doc). Unknown names get close matches suggested."""
    if not isinstance(name, str) or not name:
        raise EncoderError(f"encoder name must be a non-empty string, got {name!r}")
    base, arg = split_name(name)
    known = ENCODERS.entries()
    if base in known:
        factory = _import_target(str(known[base].target), name) if known[base].lazy else ENCODERS.load(known[base])
    elif "." in base and arg:
        factory = _import_target(name, name)  # dotted path module:factory
        arg = None
    elif ":" not in name and _checkpoint_like(name):  # a bare hub id or save_pretrained directory
        from wmprobe.encoders.detect import detect_family
        family = detect_family(name)
        if family is None:
            raise EncoderError(f"encoder '{name}': cannot tell its family (no config.json on disk or hub)")
        factory, arg = _import_target(str(known[family].target), f"{family}:{name}"), name
    else:
        hint = ENCODERS.did_you_mean(base, among=list(known))
        raise EncoderError(f"unknown encoder '{name}'{hint} (`wmprobe ls` lists encoders; "
                           "a plugin can be named as package.module:factory)")
    enc = factory(arg, **options)
    if not isinstance(enc, Encoder):
        raise EncoderError(f"encoder '{name}': factory returned {type(enc).__name__}, not an Encoder")
    return enc
