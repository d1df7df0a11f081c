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

Modules: ``families`` (the family registry), ``presets``, ``data`` (clips and frames from a store),
``training`` (``train``, the training loop), ``checkpoint`` (save, check, ``load``), ``encoder`` (the encoder
adapter), ``models`` (the shared trunk), ``objectives`` (+ID; their names in ``objective_names``), one module
per family.

The names below are imported on first use (``_WHERE``), so the torch-free modules of this package
(``objective_names``, ``presets``) load without torch: the command line reads its choices from them.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wmprobe.zoo.checkpoint import CODE_VERSION, default_cache_dir, intact, load, load_encoder
    from wmprobe.zoo.data import action_stats, id_dims
    from wmprobe.zoo.encoder import ZooDecodingEncoder, ZooEncoder
    from wmprobe.zoo.families import CEILING, DYNAMICS_FAMILIES, FAMILIES, ZooFamily, build, family, model_class
    from wmprobe.zoo.presets import PRESETS, Preset
    from wmprobe.zoo.training import lambda_sweep, plateau, train

#: exported name -> the module of this package that defines it
_WHERE = {
    **dict.fromkeys(("CODE_VERSION", "default_cache_dir", "intact", "load", "load_encoder"), "checkpoint"),
    **dict.fromkeys(("action_stats", "id_dims"), "data"),
    **dict.fromkeys(("ZooDecodingEncoder", "ZooEncoder"), "encoder"),
    **dict.fromkeys(("CEILING", "DYNAMICS_FAMILIES", "FAMILIES", "ZooFamily", "build", "family", "model_class"),
                    "families"),
    **dict.fromkeys(("PRESETS", "Preset"), "presets"),
    **dict.fromkeys(("lambda_sweep", "plateau", "train"), "training"),
}
__all__ = ["CEILING", "CODE_VERSION", "DYNAMICS_FAMILIES", "FAMILIES", "PRESETS", "Preset", "ZooDecodingEncoder",
           "ZooEncoder", "ZooFamily", "action_stats", "build", "default_cache_dir", "family", "id_dims", "intact",
           "lambda_sweep", "load", "load_encoder", "model_class", "plateau", "train"]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
