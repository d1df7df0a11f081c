"""Study-config checks that need more than a rule: devices, encoders, stores on disk, episode lengths.

Everything ``wmprobe run`` would reject is rejected by ``wmprobe validate`` first, with the file and line
(docs/reliability.md). The rules of single keys are declared with the schema (study/schema.py); these are the
checks that read a registry's factory, the machine or the disk:

- ``check_device``: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto``, and available here.
- ``check_encoder``: the factory's options and, for encoders whose layers are known without loading a model
  (pixels, random-conv, zoo), the layers. Hub models' layers are checked when the run loads them.
- ``check_encoder_arg``: the argument after ``NAME:`` (``pixels:N``, ``random-conv:SEED``, ``zoo:DIR``).
- ``check_store_splits``: the study's split made on the stores, as the run will.
- ``episode_length``: the longest episode of a dataset when it is knowable without generating it (simulator
  steps, or the store's ``episode_ends.npy``), so ``k`` can be checked against it.
"""
from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any, Callable

from wmprobe.study.fields import is_int, is_num
from wmprobe.study.schema import MAX_SEED

DEVICE = re.compile(r"^(cpu|cuda|cuda:\d+|mps|auto)$")


def check_device(bad: Callable[[str, str], None], device: Any, where: str = "device", here: bool = True) -> None:
    """A known device name; with ``here`` (a local run) also one this machine has."""
    if not isinstance(device, str) or not DEVICE.match(device):
        bad(where, f"unknown device {device!r}: use cpu, cuda, cuda:N, mps or auto")
        return
    if here and (device.startswith("cuda") or device == "mps"):
        import torch
        if device.startswith("cuda") and not torch.cuda.is_available():
            bad(where, f"device '{device}' but CUDA is not available here (use cpu or auto)")
        elif device.startswith("cuda:") and int(device[5:]) >= torch.cuda.device_count():
            bad(where, f"device '{device}' but this machine has {torch.cuda.device_count()} CUDA device(s)")
        elif device == "mps" and not torch.backends.mps.is_available():
            bad(where, "device 'mps' but MPS is not available here (use cpu or auto)")


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu`` (every part of a run gets a concrete device)."""
    if device != "auto":
        return device
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


# layers of the encoders whose layers do not depend on a checkpoint, read from their specs (no model load)
_KNOWN_LAYERS = {"pixels": ("out", "patches"), "random-conv": ("conv1", "conv2", "conv3", "out"), "zoo": ("out",)}


def factory_options(target: str) -> set[str] | None:
    """The options an encoder factory accepts (besides its positional ``arg``), or None when it takes any
    (a plugin with ``**kwargs``). Reads the signature; imports the factory's module but loads no model."""
    from wmprobe.encoders.registry import _import_target
    try:
        fn = _import_target(target, target)
        params = inspect.signature(fn).parameters
    except Exception:  # noqa: BLE001 - an unimportable plugin is reported when the run loads it
        return None
    names = [n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)][1:]
    var = [n for n, p in params.items() if p.kind == p.VAR_KEYWORD]
    if var and var[0] == "options" and fn.__module__ == "wmprobe.encoders.hf":  # forwards to load_hf
        from wmprobe.encoders.hf import load_hf
        return {n for n, p in inspect.signature(load_hf).parameters.items()
                if p.kind == p.KEYWORD_ONLY} | set(names)
    if var and var[0] not in ("_", "unknown"):
        return None
    return set(names)


def check_encoder(bad: Callable[[str, str], None], where: str, name: str, options: dict[str, Any],
                  layers: tuple[str, ...] | None) -> None:
    """Unknown options of a known encoder, and layers of encoders whose layers are known without a model."""
    from wmprobe.encoders.registry import list_encoders, split_name
    base, _ = split_name(name)
    reg = list_encoders().get(base)
    if reg is None:
        return
    allowed = factory_options(reg.target)
    if allowed is not None:
        allowed.discard("device")  # the study's `device` sets it
        unknown = sorted(set(options) - allowed)
        if unknown:
            bad(f"{where}.options", f"unknown option(s) {unknown} for encoder '{base}' (known: "
                                    f"{', '.join(sorted(allowed)) or 'none'})")
    known = _KNOWN_LAYERS.get(base) if base in ("pixels", "random-conv", "zoo") else None
    for i, layer in enumerate(layers or ()):
        if known is not None and layer not in known:
            bad(f"{where}.layers[{i}]" if layers else where,
                f"encoder '{name}' has no layer '{layer}' (it has {', '.join(known)})")


def study_layers_apply(bad: Callable[[str, str], None], names: list[str], layers: tuple[str, ...]) -> None:
    """The study-wide ``layers`` apply to every encoder without its own: check those that are knowable."""
    from wmprobe.encoders.registry import split_name
    for n in names:
        base, _ = split_name(n)
        known = _KNOWN_LAYERS.get(base)
        missing = [x for x in layers if known is not None and x not in known]
        if missing and known is not None:
            bad("layers", f"encoder '{n}' has no layer(s) {missing} (it has {', '.join(known)}); give it its own "
                          "`layers:`")


def check_encoder_arg(bad: Callable[[str, str], None], where: str, name: str, options: dict[str, Any]) -> None:
    """The argument after ``NAME:`` of the encoders that take a number or a local checkpoint, as the factory
    will read it (no model is built): ``pixels:N`` (N a multiple of 4), ``random-conv:SEED``, ``zoo:DIR``."""
    from wmprobe.encoders.registry import split_name
    base, arg = split_name(name)
    if base == "pixels":
        v = options.get("size") or arg or 16
        try:
            n = None if isinstance(v, (bool, float)) else int(v)
        except (TypeError, ValueError):
            n = None
        if n is None or n < 4 or n % 4:
            bad(f"{where}.name", f"pixels resolution must be a multiple of 4 and >= 4 (pixels:8, pixels:16), got {v!r}")
    elif base == "random-conv":
        v = options.get("seed", arg if arg is not None else 0)
        if not ((is_int(v) or (isinstance(v, str) and v.isdigit())) and 0 <= int(v) <= MAX_SEED):
            bad(f"{where}.name", f"random-conv seed must be an integer in 0..{MAX_SEED}, got {v!r}")
        for key, lo, hi in (("width", 1, 4096), ("size", 8, 4096)):
            if key in options and not (is_int(options[key]) and lo <= options[key] <= hi):
                bad(f"{where}.options", f"random-conv {key} must be an integer in {lo}..{hi}, got {options[key]!r}")
    elif base == "zoo":
        if not arg:
            bad(f"{where}.name", "a zoo encoder is zoo:/path/to/checkpoint (or list zoo families under `zoo:`)")
        elif not (Path(arg).expanduser() / "recipe.json").is_file():
            bad(f"{where}.name", f"{arg} is not a zoo checkpoint (no recipe.json); train one with "
                                 "`wmprobe zoo train FAMILY --data STORE`")


def check_store_splits(bad: Callable[[str, str], None], paths: dict[str, tuple[str, str, bool]], kind: Any,
                       test_frac: Any, seed: Any, test_tasks: Any = None) -> None:
    """When every dataset is a store on disk, open them (memory-mapped; the size-and-mtime integrity check
    runs) and make the study's split as the run will, so an impossible split (too few episodes or tasks for
    ``test_frac``) or a changed store is reported by ``validate``, not by the run."""
    from wmprobe.data.splits import SPLITS, study_splits
    from wmprobe.data.store import EpisodeStore
    from wmprobe.errors import WmprobeError
    if not paths or kind not in SPLITS or not (is_num(test_frac) and 0 < test_frac < 1) or not is_int(seed):
        return
    stores = {}
    for where, (name, path, links_ok) in paths.items():
        try:
            stores[name] = EpisodeStore.load(path, allow_symlinks_out=links_ok or None)
        except WmprobeError as exc:
            bad(f"{where}.path", str(exc))
    if len(stores) != len(paths):
        return
    try:
        named = tuple(test_tasks) if isinstance(test_tasks, (list, tuple)) else None
        splits = study_splits(stores, kind=kind, test_frac=float(test_frac), seed=int(seed), test_tasks=named)
    except WmprobeError as exc:
        bad("test_tasks" if named is not None else "split", f"{exc} (split: {kind}, test_frac: {test_frac})")
        return
    for name, sp in splits.items():
        if len(sp.train) < 2:
            bad("test_frac", f"leaves {len(sp.train)} train episode(s) of dataset '{name}' ({kind} split); a probe "
                             "needs >= 2: lower test_frac")


def episode_length(sim: str | None, path: str | None, params: dict[str, Any] | None) -> int | None:
    """The longest episode of a dataset when knowable cheaply: a simulator's ``steps``, or the store's
    ``episode_ends.npy``; None otherwise."""
    if sim is not None:
        return int(params["steps"]) if params and "steps" in params else None
    if path is None:
        return None
    try:
        import numpy as np
        ends = np.load(Path(path) / "episode_ends.npy", allow_pickle=False)
        return int(np.diff(np.concatenate([[0], ends])).max()) if ends.ndim == 1 and len(ends) else None
    except (OSError, ValueError):
        return None
