"""The zoo families: one ``ZooFamily`` per name (description, model class, whether it has a dynamics model).

``FAMILIES`` (name -> description, what ``wmprobe zoo ls`` and ``wmprobe ls families`` print) lists the
pretraining families; ``CEILING`` is not one (the trunk trained by +ID alone, zoo/ceiling.py) but builds the
same way. A family's model is a lazy ``"module:Class"`` target (a ``models.ZooModel`` subclass), imported
only when that family is built.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from wmprobe.errors import ConfigError, WmprobeError
from wmprobe.registry import Registry, instance_of, resolve

if TYPE_CHECKING:
    from wmprobe.zoo.models import ZooModel


@dataclass(frozen=True)
class ZooFamily:
    """One zoo family: ``model`` is ``"module:Class"`` (a bare module name is under ``wmprobe.zoo``);
    ``dynamics``: it has a latent dynamics model (``imagine``); ``pretraining``: False for the ceiling."""

    name: str
    description: str
    model: str
    dynamics: bool = False
    pretraining: bool = True


CEILING = "ceiling"   # not a pretraining family: the trunk trained by +ID alone (zoo/ceiling.py)


#: every family (a plugin: an entry point in the group ``wmprobe.zoo_families`` naming a ``ZooFamily``)
REGISTRY: Registry[ZooFamily] = Registry("zoo family", group="wmprobe.zoo_families", error=ConfigError,
                                         check=instance_of(ZooFamily, "zoo family", ConfigError))
for _f in (
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
):
    REGISTRY.add(_f.name, _f)
FAMILIES = {n: REGISTRY.get(n).description for n in REGISTRY.builtin_names() if REGISTRY.get(n).pretraining}
DYNAMICS_FAMILIES = tuple(n for n in REGISTRY.builtin_names() if REGISTRY.get(n).dynamics)   # have ``imagine``


def pretraining_families() -> list[str]:
    """Every pretraining family of the registry, built-in first, then plugins (what ``zoo.families: all``
    stands for and what a study's ``zoo.families`` may name). A plugin that does not load is listed: building
    it says why."""
    names = []
    for name, entry in REGISTRY.entries().items():
        try:
            fam = REGISTRY.load(entry)
        except WmprobeError:
            names.append(name)
            continue
        if fam.pretraining:
            names.append(name)
    return names


def describe_families() -> dict[str, str]:
    """``{family: description}`` of ``pretraining_families()`` (``wmprobe ls families``, ``wmprobe zoo ls``)."""
    out = {}
    for name in pretraining_families():
        try:
            out[name] = REGISTRY.get(name).description
        except WmprobeError as exc:
            out[name] = f"(does not load: {exc})"
    return out


def family(name: str) -> ZooFamily:
    """The ``ZooFamily`` of ``name`` (a pretraining family or ``ceiling``); ConfigError listing them otherwise."""
    if name not in REGISTRY:
        raise ConfigError(f"unknown zoo family '{name}': choose one of {sorted(FAMILIES)} (or '{CEILING}')"
                          f"{REGISTRY.did_you_mean(name)}")
    return REGISTRY.get(name)


def model_class(name: str) -> type[ZooModel]:
    """The ``ZooModel`` subclass of family ``name`` (its ``model`` target; a bare ``"module:Class"`` is under
    ``wmprobe.zoo``)."""
    target = family(name).model
    cls: type[ZooModel] = resolve(target if "." in target.partition(":")[0] else f"wmprobe.zoo.{target}")
    return cls


def build(name: str, width: int, action_dim: int) -> torch.nn.Module:
    """A fresh model of family ``name`` at trunk ``width`` for ``action_dim``-dim actions."""
    return model_class(name)(width, action_dim)
