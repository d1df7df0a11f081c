"""Dotted overrides of a study config from the command line: ``probe.steps=200 ks=[1,4] datasets[0].episodes=8``.

``apply_overrides(doc, ["probe.steps=200", ...])`` sets each value (parsed as YAML, so ``[1,4]`` is a list and
``true`` a bool) into the config mapping, creating intermediate mappings as needed, and returns the new mapping,
``{where: n}`` (the config path each override set, e.g. ``"probe.steps"`` -> 1) and the problems of overrides that
cannot be applied. The checker then reports a problem under an overridden path at ``override N`` instead of a
file line (``override 2: ks[0]: must be >= 1``). ``wmprobe run`` records the overrides in config.yaml.
"""
from __future__ import annotations

import copy
import re
from typing import Any, Sequence

import yaml

_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_path(key: str) -> list[str | int] | None:
    """``"datasets[0].episodes"`` or ``"datasets.0.episodes"`` -> ``["datasets", 0, "episodes"]``; None if
    malformed."""
    tokens: list[str | int] = []
    pos = 0
    key = key.strip()
    while pos < len(key):
        if key[pos] == "." and tokens:
            pos += 1
        m = _TOKEN.match(key, pos)
        if not m:
            return None
        tokens.append(int(m.group(2)) if m.group(2) is not None else
                      (int(m.group(1)) if m.group(1).isdigit() and tokens else m.group(1)))
        pos = m.end()
    return tokens or None


def where_of(tokens: Sequence[str | int]) -> str:
    """``["datasets", 0, "episodes"]`` -> ``"datasets[0].episodes"`` (the checker's locations)."""
    out = ""
    for t in tokens:
        out += f"[{t}]" if isinstance(t, int) else (f".{t}" if out else str(t))
    return out


def parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(doc: dict[str, Any], overrides: Sequence[str]) -> tuple[dict[str, Any], dict[str, int],
                                                                             list[tuple[int, str, str]]]:
    """``(new doc, {where: override number}, [(number, where, problem), ...])``; numbers start at 1."""
    doc = copy.deepcopy(doc)
    where_map: dict[str, int] = {}
    problems: list[tuple[int, str, str]] = []
    for n, item in enumerate(overrides or (), start=1):
        key, sep, value = str(item).partition("=")
        tokens = parse_path(key) if sep else None
        if tokens is None or not isinstance(tokens[0], str):
            problems.append((n, "", f"'{item}': expected KEY=VALUE with a dotted KEY (probe.steps=200, ks=[1,4], "
                                    "datasets[0].episodes=8)"))
            continue
        where = where_of(tokens)
        node: Any = doc
        for i, t in enumerate(tokens[:-1]):
            nxt = tokens[i + 1]
            if isinstance(node, dict) and isinstance(t, str):
                if node.get(t) is None:
                    node[t] = {} if isinstance(nxt, str) else []
                node = node[t]
            elif isinstance(node, list) and isinstance(t, int) and t < len(node):
                node = node[t]
            else:
                node = None
                break
        last = tokens[-1]
        if isinstance(node, dict) and isinstance(last, str):
            node[last] = parse_value(value)
        elif isinstance(node, list) and isinstance(last, int) and last < len(node):
            node[last] = parse_value(value)
        else:
            parent = where_of(tokens[:-1]) or "the config"
            problems.append((n, where, f"cannot set {where}: {parent} is not a mapping with that key or a list "
                                       "with that index (write that entry as a mapping in the file)"))
            continue
        where_map[where] = n
    return doc, where_map, problems
