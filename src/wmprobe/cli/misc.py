"""`wmprobe ls` (what can be probed, generated, imported, corrupted) and `wmprobe cache ls|gc`."""
from __future__ import annotations

import argparse
from typing import Callable

from wmprobe.cli._common import _api, _print_json


def _encoders() -> dict[str, str]:
    return {n: f"{r.family}: {r.description}" for n, r in
            sorted(_api("wmprobe.encoders.registry:list_encoders")().items())}


def _probes() -> dict[str, str]:
    from wmprobe.probes.spec import CONTROLS, probe_spec
    return {**{n: probe_spec(n).description for n in _api("wmprobe.probes:PROBES")},
            **{f"PROBE-{c}": desc for c, desc in CONTROLS.items()}}


def _datasets() -> dict[str, str]:
    return {**dict(_api("wmprobe.data.sim:SUITES")),
            **{f: "readable by `wmprobe data import`" for f in _api("wmprobe.data.formats:READERS")}}


#: what `wmprobe ls WHAT` lists (``all``: every one), in the order it prints them: section -> its
#: ``{name: description}``, read from the registry that owns the concept
LISTS: dict[str, Callable[[], dict[str, str]]] = {
    "encoders": _encoders,
    "families": lambda: _api("wmprobe.zoo.families:describe_families")(),
    "probes": _probes,
    "datasets": _datasets,
    "corruptions": lambda: dict(_api("wmprobe.data.corruptions:CORRUPTIONS")),
    "presets": lambda: {n: p.describe() for n, p in _api("wmprobe.demo:PRESETS").items()},
}


def _ls_data(what: str) -> dict[str, dict[str, str]]:
    """``{section: {name: description}}`` for `wmprobe ls` (text or --json)."""
    return {key: fn() for key, fn in LISTS.items() if what in (key, "all")}


def cmd_ls(a: argparse.Namespace) -> int:
    what = a.what
    if a.json:
        _print_json(_ls_data(what))
        return 0
    if what in ("encoders", "all"):
        print("encoders (NAME or NAME:ARG):")
        for name, reg in sorted(_api("wmprobe.encoders.registry:list_encoders")().items()):
            print(f"  {name:16s} {reg.family:12s} {reg.description}")
    sections = (
        ("families", "zoo families (zoo:CHECKPOINT after `wmprobe zoo train FAMILY`):",
         lambda: LISTS["families"]().items(), 16),
        ("probes", "probes (wmprobe probe --probe NAME ...; study `probes:`):",
         lambda: LISTS["probes"]().items(), 16),
        ("datasets", "embedded simulator suites (wmprobe data gen SUITE DEST):",
         lambda: _api("wmprobe.data.sim:SUITES").items(), 16),
        ("datasets", "readable formats (wmprobe data import SRC DEST):",
         lambda: ((n, e.meta.get("description", ""))
                  for n, e in _api("wmprobe.data.formats:READERS").entries().items()), 16),
        ("corruptions", "corruptions (NAME:PARAM, e.g. noise:0.15, blur:11, fog:3):",
         lambda: LISTS["corruptions"]().items(), 18))
    for key, title, rows, width in sections:
        if what in (key, "all"):
            print(title)
            for name, desc in rows():
                print(f"  {name:{width}s} {desc}")
    if what in ("presets", "all"):
        print("presets (wmprobe demo --preset, study `preset:`):")
        for name, p in _api("wmprobe.demo:PRESETS").items():
            print(f"  {name:8s} {p.describe()}")
    return 0



def cmd_cache(a: argparse.Namespace) -> int:
    root = _api("wmprobe.study.cache:default_cache_dir")(a.cache)
    if a.cache_cmd == "ls":
        entries = _api("wmprobe.study.cache:cache_ls")(root)
        print(f"cache {root}")
        print(f"  {'kind':8s} {'encoder':28s} {'dataset':28s} {'entries':>7s} {'size':>10s}  last used")
        for e in entries:
            print(f"  {e['kind']:8s} {e['encoder'][:28]:28s} {e['dataset'][:28]:28s} {e['entries']:7d} "
                  f"{e['size']:>10s}  {e['last_used']}")
    else:
        removed = _api("wmprobe.study.cache:cache_gc")(root, keep_days=a.keep_days)
        print(f"removed {removed}")
    return 0



def add_ls_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`wmprobe ls`."""
    ls = sub.add_parser("ls", help="list encoders, families, probes, datasets, corruptions, presets")
    ls.add_argument("what", nargs="?", default="all",
                    choices=["all", *LISTS],
                    help="what to list")
    ls.add_argument("--json", action="store_true", help="one JSON object {section: {name: description}}")
    ls.set_defaults(fn=cmd_ls)



def add_cache_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`wmprobe cache ls|gc`."""
    c = sub.add_parser("cache", help="inspect or clean the latent / zoo / data cache")
    csub = c.add_subparsers(dest="cache_cmd", required=True, metavar="ACTION")
    cls = csub.add_parser("ls", help="size per encoder and dataset")
    gc = csub.add_parser("gc", help="drop entries no recent study used")
    gc.add_argument("--keep-days", type=float, default=30,
                    help="keep entries used in the last N days (N >= 0; default 30); only a directory holding the "
                    "cache marker (or a cache's layout) is cleaned")
    c.add_argument("--cache", default=None, help="cache dir (default $WMPROBE_CACHE or ~/.cache/wmprobe)")
    for sp in (cls, gc):  # `wmprobe cache ls --cache DIR` works too
        sp.add_argument("--cache", default=argparse.SUPPRESS,
                        help="cache dir (default $WMPROBE_CACHE or ~/.cache/wmprobe)")
    c.set_defaults(fn=cmd_cache)
