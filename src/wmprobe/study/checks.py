"""Study-config checks beyond the schema: a bounded YAML reader and the range checks ``config.check`` calls.

Everything ``wmprobe run`` would reject is rejected here first, with the file and line (docs/reliability.md):

- ``read_yaml(path)``: at most ``MAX_BYTES`` of UTF-8 text, at most ``MAX_NODES`` YAML nodes after alias
  expansion (an alias bomb fails at once instead of hanging), no duplicate mapping keys (each one named with
  its line); returns the document and a map ``"encoders[2].name" -> line``.
- ``check_probe_options``: the MLP probe options (steps, batch_size, hidden, lrs, weight_decays, val_frac,
  loss, use_diff) in range.
- ``check_device``: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto``, and available here.
- ``check_unique``: no entry listed twice (probes, ks, seeds, corruptions would give repeated rows).
- ``check_encoder``: the factory's options and, for encoders whose layers are known without loading a model
  (pixels, random-conv, zoo), the layers. Hub models' layers are checked when the run loads them.
- ``episode_length``: the longest episode of a dataset when it is knowable without generating it (simulator
  steps, or the store's ``episode_ends.npy``), so ``k`` can be checked against it.
"""
from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any, Callable

import yaml

from wmprobe.errors import ConfigError

MAX_BYTES = 1 << 20        # a study config is a few KB; 1 MiB leaves room for long encoder lists
MAX_NODES = 100_000        # YAML nodes after alias expansion
MAX_SEED = 2**32 - 1       # numpy and torch generators take seeds up to this
DEVICE = re.compile(r"^(cpu|cuda|cuda:\d+|mps|auto)$")


# ---- reading ---------------------------------------------------------------------------------------------
def read_yaml(path: Path) -> tuple[Any, dict[str, int]]:
    """``(document, {yaml path: line})`` of a study file; ConfigError naming the file (and line) otherwise."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError(f"{path}: {size} bytes is too large for a study config (at most {MAX_BYTES}); "
                              "is it the right file?")
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the study config: {exc.strerror or exc}") from None
    if b"\0" in data:
        raise ConfigError(f"{path}: is a binary file, not a YAML study config")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: is not UTF-8 text (byte {exc.start}); a study config is a YAML file") from None
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, {}
        _bound(root, path)
        _no_duplicate_keys(root, path)
        lines = _line_map(root)
        doc = loader.construct_document(root)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: YAML nested too deeply") from None
    finally:
        loader.dispose()
    return doc, lines


def _bound(root: yaml.Node, path: Path) -> None:
    """Count the nodes the document expands to (aliases counted at every use), memoised per node: linear in
    the file, so a billion-laughs document is refused in milliseconds."""
    sizes: dict[int, int] = {}
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        kids = _children(node)
        if done or not kids:
            sizes[id(node)] = 1 + sum(sizes.get(id(k), 0) for k in kids)
            if sizes[id(node)] > MAX_NODES:
                raise ConfigError(f"{path}:{node.start_mark.line + 1}: the document expands to more than "
                                  f"{MAX_NODES} YAML nodes (aliases repeated many times?); refusing to read it")
            continue
        stack.append((node, True))
        stack.extend((k, False) for k in kids if id(k) not in sizes)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [x for kv in node.value for x in kv]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _no_duplicate_keys(root: yaml.Node, path: Path) -> None:
    seen_nodes: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for k, _ in node.value:
                if not isinstance(k, yaml.ScalarNode) or k.value == "<<":
                    continue
                line = k.start_mark.line + 1
                if k.value in first:
                    raise ConfigError(f"{path}:{line}: duplicate key '{k.value}' (first given on line "
                                      f"{first[k.value]}); the later one would silently win")
                first[k.value] = line
        stack.extend(_children(node))


def _line_map(root: yaml.Node) -> dict[str, int]:
    """YAML path (``encoders[2].name``) -> 1-based line (the tree is bounded by ``_bound``)."""
    out: dict[str, int] = {}

    def walk(node: Any, p: str) -> None:
        out.setdefault(p, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                q = f"{p}.{k.value}" if p else str(k.value)
                walk(v, q)
                out[q] = k.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                walk(v, f"{p}[{i}]")
    walk(root, "")
    return out


# ---- range checks ----------------------------------------------------------------------------------------
def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_probe_options(bad: Callable[[str, str], None], cfg: dict[str, Any]) -> None:
    """Range-check the MLP probe options of a study's ``probe:`` block (unknown keys are reported elsewhere)."""
    for key in ("steps", "batch_size"):
        if key in cfg and not (_int(cfg[key]) and cfg[key] > 0):
            bad(f"probe.{key}", f"must be an integer > 0, got {cfg[key]!r}")
    if "hidden" in cfg:
        h = cfg["hidden"]
        if not isinstance(h, list) or not h or not all(_int(x) and x > 0 for x in h):
            bad("probe.hidden", f"must be a non-empty list of layer widths > 0 (e.g. [256, 128]; ridge is the "
                                f"linear probe), got {h!r}")
    for key, ok, rule in (("lrs", lambda x: x > 0, "> 0"), ("weight_decays", lambda x: x >= 0, ">= 0")):
        if key in cfg:
            v = cfg[key]
            if not isinstance(v, list) or not v:
                bad(f"probe.{key}", f"must be a non-empty list of numbers {rule}, got {v!r}")
                continue
            for i, x in enumerate(v):
                if not (_num(x) and x == x and abs(x) != float("inf") and ok(x)):
                    bad(f"probe.{key}[{i}]", f"must be a finite number {rule}, got {x!r}")
            if len(set(map(repr, v))) != len(v):
                bad(f"probe.{key}", f"lists a value twice: {v!r}")
    if "val_frac" in cfg and not (_num(cfg["val_frac"]) and 0 < cfg["val_frac"] < 1):
        bad("probe.val_frac", f"must be a number in (0, 1), got {cfg['val_frac']!r}")
    if "loss" in cfg and cfg["loss"] not in ("l1", "l2"):
        bad("probe.loss", f"must be l1 or l2, got {cfg['loss']!r}")
    if "use_diff" in cfg and not isinstance(cfg["use_diff"], bool):
        bad("probe.use_diff", f"must be true or false, got {cfg['use_diff']!r}")


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


def check_unique(bad: Callable[[str, str], None], values: Any, where: str) -> None:
    """Each entry once: a repeated probe / k / seed / corruption would only repeat identical rows."""
    if not isinstance(values, list):
        return
    first: dict[str, int] = {}
    for i, v in enumerate(values):
        key = repr(v)
        if key in first:
            bad(f"{where}[{i}]", f"{v!r} is listed twice (also {where}[{first[key]}]): it would repeat identical "
                                 "rows")
        first.setdefault(key, i)


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
        if missing:
            bad("layers", f"encoder '{n}' has no layer(s) {missing} (it has {', '.join(known)}); give it its own "
                          "`layers:`")


def check_name(bad: Callable[[str, str], None], name: Any) -> None:
    """A study name names files (``NAME-results``, the submitit folder): one plain path component."""
    if not isinstance(name, str) or not name.strip():
        bad("name", f"must be a non-empty string, got {name!r}")
    elif any(ch in name for ch in "/\\\0") or name in (".", "..") or name.startswith("."):
        bad("name", f"'{name}' names files and folders (NAME-results): no '/', no leading '.'")


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
        if not ((_int(v) or (isinstance(v, str) and v.isdigit())) and 0 <= int(v) <= MAX_SEED):
            bad(f"{where}.name", f"random-conv seed must be an integer in 0..{MAX_SEED}, got {v!r}")
        for key, lo, hi in (("width", 1, 4096), ("size", 8, 4096)):
            if key in options and not (_int(options[key]) and lo <= options[key] <= hi):
                bad(f"{where}.options", f"random-conv {key} must be an integer in {lo}..{hi}, got {options[key]!r}")
    elif base == "zoo":
        if not arg:
            bad(f"{where}.name", "a zoo encoder is zoo:/path/to/checkpoint (or list zoo families under `zoo:`)")
        elif not (Path(arg).expanduser() / "recipe.json").is_file():
            bad(f"{where}.name", f"{arg} is not a zoo checkpoint (no recipe.json); train one with "
                                 "`wmprobe zoo train FAMILY --data STORE`")


def check_executor_numbers(bad: Callable[[str, str], None], sub: dict[str, Any], ray: dict[str, Any]) -> None:
    """The numbers of the ``executor.submitit`` and ``executor.ray`` blocks."""
    for key, lo in (("timeout_min", 1), ("mem_gb", 0), ("gpus_per_node", 0), ("cpus_per_task", 1),
                    ("array_parallelism", 1), ("tasks_per_job", 1), ("nodes", 1)):
        if key in sub and not (_num(sub[key]) and sub[key] >= lo and (key == "mem_gb" or _int(sub[key]))):
            bad(f"executor.submitit.{key}", f"must be {'a number' if key == 'mem_gb' else 'an integer'} >= {lo}, "
                                            f"got {sub[key]!r}")
    for key, lo in (("num_cpus", 1), ("num_cpus_per_task", 0), ("num_gpus_per_task", 0)):
        if key in ray and ray[key] is not None and not (_num(ray[key]) and ray[key] >= lo):
            bad(f"executor.ray.{key}", f"must be a number >= {lo}, got {ray[key]!r}")


def check_store_splits(bad: Callable[[str, str], None], paths: dict[str, str], kind: Any, test_frac: Any,
                       seed: Any) -> None:
    """When every dataset is a store on disk, open them (memory-mapped; the size-and-mtime integrity check
    runs) and make the study's split as the run will, so an impossible split (too few episodes or tasks for
    ``test_frac``) or a changed store is reported by ``validate``, not by the run."""
    from wmprobe.data.splits import SPLITS, study_splits
    from wmprobe.data.store import EpisodeStore
    from wmprobe.errors import WmprobeError
    if not paths or kind not in SPLITS or not (_num(test_frac) and 0 < test_frac < 1) or not _int(seed):
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
        splits = study_splits(stores, kind=kind, test_frac=float(test_frac), seed=int(seed))
    except WmprobeError as exc:
        bad("split", f"{exc} (split: {kind}, test_frac: {test_frac})")
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
