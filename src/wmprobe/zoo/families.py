"""The zoo families: one ``ZooFamily`` per name (description, model class, whether it has a dynamics model).

``FAMILIES`` (name -> description, what ``wmprobe zoo ls`` and ``wmprobe ls families`` print) lists the
pretraining families; ``CEILING`` is not one (the trunk trained by +ID alone, zoo/ceiling.py) but builds the
same way. A family's model is a lazy ``"module:Class"`` target (a ``models.ZooModel`` subclass), imported
only when that family is built.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from wmprobe.errors import ConfigError


@dataclass(frozen=True)
class ZooFamily:
    """One zoo family: ``model`` is ``"module:Class"`` under ``wmprobe.zoo``; ``dynamics``: it has a latent
    dynamics model (``imagine``); ``pretraining``: False for the ceiling (not a pretraining family)."""

    name: str
    description: str
    model: str
    dynamics: bool = False
    pretraining: bool = True


CEILING = "ceiling"   # not a pretraining family: the trunk trained by +ID alone (zoo/ceiling.py)
_FAMILIES: dict[str, ZooFamily] = {f.name: f for f in (
    ZooFamily("vae", "reconstruction: KL-regularised conv autoencoder (as SD/SDXL VAEs), latents = posterior mean",
              "vae:VAE"),
    ZooFamily("image-ssl", "image SSL: VICReg on two augmented views of single frames, latents = trunk output",
              "ssl:ImageSSL"),
    ZooFamily("diffusion", "pixel diffusion: v-prediction denoiser on the trunk, latents = trunk on the frame "
              "noised at t=0.1", "diffusion:Diffusion"),
    ZooFamily("videomae", "VideoMAE-style: tube-masked clip reconstruction in pixel space, latents = trunk per "
              "frame", "video:VideoMAE"),
    ZooFamily("vjepa", "V-JEPA-style: masked clip prediction of EMA-target latents (no pixel decoder), latents = "
              "trunk", "video:VJEPA"),
    ZooFamily("dynamics", "world model: tokenizer + action-conditioned latent dynamics (shortcut forcing), "
              "latents = tokens", "dynamics:Dynamics", dynamics=True),
    ZooFamily("dynamics-actin", "world model with the action fed into the tokenizer trunk (zeros at probe time)",
              "dynamics:DynamicsActIn", dynamics=True),
    ZooFamily(CEILING, "the ceiling: the trunk trained by inverse dynamics alone", "ceiling:Ceiling",
              pretraining=False),
)}
FAMILIES = {n: f.description for n, f in _FAMILIES.items() if f.pretraining}
DYNAMICS_FAMILIES = tuple(n for n, f in _FAMILIES.items() if f.dynamics)   # have ``imagine``


def family(name: str) -> ZooFamily:
    """The ``ZooFamily`` of ``name`` (a pretraining family or ``ceiling``); ConfigError listing them otherwise."""
    if name not in _FAMILIES:
        raise ConfigError(f"unknown zoo family '{name}': choose one of {sorted(FAMILIES)} (or '{CEILING}')")
    return _FAMILIES[name]


def model_class(name: str) -> type:
    """The ``ZooModel`` subclass of family ``name``."""
    from wmprobe.registry import resolve
    cls: type = resolve(f"wmprobe.zoo.{family(name).model}")
    return cls


def build(name: str, width: int, action_dim: int) -> torch.nn.Module:
    """A fresh model of family ``name`` at trunk ``width`` for ``action_dim``-dim actions."""
    return model_class(name)(width, action_dim)
