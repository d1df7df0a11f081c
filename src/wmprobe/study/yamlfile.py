"""A study file read safely: bounded size and alias expansion, duplicate keys refused, every key's line kept.

``read_yaml(path)`` reads at most ``MAX_BYTES`` of UTF-8 text and at most ``MAX_NODES`` YAML nodes after alias
expansion (an alias bomb fails at once instead of hanging), refuses duplicate mapping keys (each one named with
its line) and returns the document and a map ``"encoders[2].name" -> line`` (the checker's locations).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from wmprobe.errors import ConfigError

MAX_BYTES = 1 << 20        # a study config is a few KB; 1 MiB leaves room for long encoder lists
MAX_NODES = 100_000        # YAML nodes after alias expansion


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
