"""`wmprobe` command line. Every subcommand is a thin shell over the Python API of the same name.

Errors are one sentence (exit code 2); ``--debug`` shows the traceback. ``--quiet`` hides progress bars.

The parser is assembled here; each command group lives in its own module: ``data`` (gen / import / info /
validate / audit / export), ``probe`` (extract, probe), ``study`` (demo, report, run, validate), ``zoo``
(ls, train), ``misc`` (ls, cache); ``_common`` holds what they share.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path
from typing import Sequence

from wmprobe._malloc import keep_freed_memory
from wmprobe.cli import data, misc, probe, study, zoo
from wmprobe.cli._common import FAILED_TASKS, OVERRIDES_HELP, SEED_MAX, at_least, device_name
from wmprobe.cli.data import cmd_data
from wmprobe.cli.misc import cmd_cache, cmd_ls
from wmprobe.cli.probe import ABSURD_R2, MIN_TEST_EPISODES, cmd_extract, cmd_probe, encoder_options, probe_warnings
from wmprobe.cli.study import cmd_demo, cmd_report, cmd_run, cmd_validate
from wmprobe.cli.zoo import cmd_zoo, zoo_checkpoints
from wmprobe.errors import WmprobeError

EPILOG = """examples:
  wmprobe demo --out wmprobe-demo                 generate data, train the mini-zoo, probe, report
  wmprobe ls encoders                             what can be probed
  wmprobe data gen dynamic data/dyn --episodes 60 --seed 0
  wmprobe data import ~/lerobot/pusht data/pusht --format lerobot --camera observation.image
  wmprobe extract dinov2:/ckpt/dinov2-base data/dyn --out feats/dino --layers layer_8 out
  wmprobe probe feats/dino data/dyn --probe ridge --k 1 4 --out results/
  wmprobe probe --latents Z.npy --store data/dyn --probe ridge mlp --k 1 4 --out results/
  wmprobe run study.yaml --dry-run                the plan of a config-driven study
  wmprobe report results/                         HTML report, figures and tables
"""


class _Fmt(argparse.RawDescriptionHelpFormatter):
    """Keeps epilogs as written and ends every option's help with its default, unless the help says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        h = action.help or ""
        if (action.default is argparse.SUPPRESS or "default" in h.lower() or action.required
                or (not action.option_strings and (action.nargs not in ("?", "*") or action.default is None))
                or isinstance(action, (argparse._HelpAction, argparse._VersionAction))):
            return h
        d = action.default
        if isinstance(action, argparse._StoreTrueAction):
            shown = "off"
        elif d is None or d == []:
            shown = "none"
        else:
            shown = " ".join(map(str, d)) if isinstance(d, (list, tuple)) else str(d)
        return f"{h} (default: {shown.replace('%', '%%')})"


def _finish(parser: argparse.ArgumentParser, top: bool = True) -> None:
    """Every (sub)parser gets the help formatter, and every subcommand takes --quiet / --debug after its name
    too (``wmprobe run s.yaml --quiet``): SUPPRESS defaults leave the top-level value alone when absent."""
    parser.formatter_class = _Fmt
    if not top:
        parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                            help="show tracebacks (also before the command; default: off)")
        parser.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS,
                            help="no progress bars (also before the command; default: off)")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sp in dict.fromkeys(action.choices.values()):
                _finish(sp, top=False)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wmprobe", description="Which representation knows what the robot did? "
                                "Inverse-dynamics probing of visual encoders and world models.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--debug", action="store_true", help="show tracebacks (also after the command)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars (CI; also after the command)")
    p.add_argument("--version", action="version", version=f"wmprobe {_version()}")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    study.add_demo_parser(sub)
    misc.add_ls_parser(sub)
    data.add_parsers(sub)
    probe.add_parsers(sub)
    study.add_parsers(sub)
    zoo.add_parsers(sub)
    misc.add_cache_parser(sub)
    _finish(p)
    return p


def _version() -> str:
    from wmprobe import __version__
    return __version__


def _os_error(exc: OSError, args: argparse.Namespace) -> str | None:
    """One sentence for an OSError the environment caused (None for one that looks like a bug)."""
    import errno
    from wmprobe.errors import disk_full
    where = exc.filename or next((str(Path(v).resolve()) for k in ("out", "dest", "cache")
                                  if isinstance(v := getattr(args, k, None), (str, Path)) and v), None)
    if disk_full(exc):
        return (f"disk full while writing {where or 'the output'}: free space, or write elsewhere (--out / "
                "--cache / WMPROBE_CACHE); what was finished is kept and a rerun resumes")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO, errno.ENAMETOOLONG, errno.ENOTDIR,
                     errno.EISDIR, errno.ENOENT, errno.EEXIST, errno.ENOTEMPTY, errno.EMFILE):
        return f"{exc.strerror or exc}: {where or '(no path given)'}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    try:   # the parser's choices come from the registries and preset files: a broken one is reported here
        parser = build_parser()
    except WmprobeError as exc:
        print(f"wmprobe: error: {exc}", file=sys.stderr)
        return 2
    args, extra = parser.parse_known_args(argv)
    if extra:  # overrides after an option (`run s.yaml --dry-run ks=[1]`) land here; anything else is an error
        if hasattr(args, "overrides") and all("=" in x and not x.startswith("-") for x in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    keep_freed_memory()   # glibc reuses freed tensor memory instead of faulting in new pages (_malloc)
    quiet_before = os.environ.get("WMPROBE_QUIET")
    if args.quiet:   # worker processes inherit it; restored after the command (main() called in-process)
        os.environ["WMPROBE_QUIET"] = "1"
    try:
        return _dispatch(args)
    finally:
        if quiet_before is None:
            os.environ.pop("WMPROBE_QUIET", None)
        else:
            os.environ["WMPROBE_QUIET"] = quiet_before


def _dispatch(args: argparse.Namespace) -> int:
    """Run the parsed command; every error becomes one line and an exit code (docs/reliability.md)."""
    try:
        rc = int(args.fn(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at interpreter exit
        return rc
    except BrokenPipeError:  # `wmprobe ls | head`: the reader left; say nothing more, and flush nowhere
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except WmprobeError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"wmprobe: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wmprobe: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:   # the environment, not a bug: disk full, permissions, a read-only file system
        if args.debug:
            traceback.print_exc()
        message = _os_error(exc, args)
        if message is None:
            print(f"wmprobe: internal error: {type(exc).__name__}: {exc} (re-run with --debug for the traceback "
                  "and please report it)", file=sys.stderr)
            return 3
        print(f"wmprobe: error: {message}", file=sys.stderr)
        return 2
    except Exception as exc:  # an unexpected bug: still one line unless --debug
        if args.debug:
            raise
        print(f"wmprobe: internal error: {type(exc).__name__}: {exc} (re-run with --debug for the traceback "
              "and please report it)", file=sys.stderr)
        return 3


__all__ = ["ABSURD_R2", "EPILOG", "FAILED_TASKS", "MIN_TEST_EPISODES", "OVERRIDES_HELP", "SEED_MAX", "at_least",
           "build_parser", "cmd_cache", "cmd_data", "cmd_demo", "cmd_extract", "cmd_ls", "cmd_probe", "cmd_report",
           "cmd_run", "cmd_validate", "cmd_zoo", "device_name", "encoder_options", "main", "probe_warnings",
           "zoo_checkpoints"]
