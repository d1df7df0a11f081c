"""Helpers every `wmprobe` subcommand module shares: the lazy API lookup, JSON and table printing, the
failed-task summary (exit code 4) and the argparse ``type`` checks (numbers in range, device names)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from wmprobe.errors import WmprobeError

OVERRIDES_HELP = ("dotted overrides of the study config, values parsed as YAML, e.g. probe.steps=200 ks=[1,4] "
                  "datasets[0].episodes=8; checked like the file (location 'override N') and recorded in "
                  "config.yaml")


def _api(target: str) -> Any:
    """The object ``"module:attr"`` names (a function, a registry, a class), imported only when a command needs
    it; a missing optional part of the install is one sentence (WmprobeError), not an ImportError."""
    from wmprobe.registry import ResolveError, resolve
    try:
        fn = resolve(target)
    except ResolveError as exc:
        raise WmprobeError(f"this wmprobe install lacks {target} ({exc.cause or exc}); reinstall with "
                           "`pip install -c constraints.txt -e '.[all]'`") from None
    return fn


def choices(target: str, default: str | None = None) -> list[str]:
    """An option's choices, read from the registry or name list that owns the concept (``"module:attr"``: a
    ``Registry``, a mapping or a sequence of names), with ``default`` first so usage lines read as before."""
    found = _api(target)
    names = list(found.names() if hasattr(found, "names") else found)
    if default is None or default not in names:
        return names
    return [default, *(n for n in names if n != default)]


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=1, default=str))


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str], indent: str = "  ") -> str:
    """Rows as an aligned text table with a header (values str()-ed; floats with 4 significant digits)."""
    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else ("-" if v is None else str(v))
    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(indent + ln.rstrip() for ln in lines)



FAILED_TASKS = 4   # exit code: the run finished, but some tasks failed (their rows carry the error)


def _failed_summary(out: str | os.PathLike) -> int:
    """One line on stderr (printed under --quiet too) and exit code 4 when tasks of the run failed."""
    fails = _api("wmprobe.study.runner:failed_tasks")(out)
    if not fails:
        return 0
    first = str(fails[0].get("error", "")).splitlines()[0][:300] if isinstance(fails[0], dict) else ""
    print(f"wmprobe: {len(fails)} task(s) failed; their rows carry the error (all in {Path(out) / 'config.yaml'} "
          f"run.failures); the first: {first}", file=sys.stderr)
    return FAILED_TASKS


def at_least(lo: float, kind: type = int, strict: bool = False, hi: float | None = None) -> Callable[[str], Any]:
    """An argparse ``type``: a number ``>= lo`` (``> lo`` when ``strict``; ``<= hi`` when given), else exit 2 with
    one sentence naming the option."""
    def parse(text: str) -> Any:
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got '{text}'") from None
        if not (v > lo if strict else v >= lo) or v != v or v in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {lo:g}, got {text}")
        if hi is not None and v > hi:
            raise argparse.ArgumentTypeError(f"must be <= {hi:g}, got {text}")
        return v
    parse.__name__ = kind.__name__
    return parse


SEED_MAX = 2**32 - 1   # numpy and torch generators take seeds up to this


def device_name(text: str) -> str:
    """An argparse ``type``: cpu, cuda, cuda:N, mps or auto."""
    from wmprobe.study.checks import DEVICE
    if not DEVICE.match(text):
        raise argparse.ArgumentTypeError(f"unknown device '{text}': use cpu, cuda, cuda:N, mps or auto")
    return text


__all__ = ["FAILED_TASKS", "OVERRIDES_HELP", "SEED_MAX", "at_least", "choices", "device_name"]
