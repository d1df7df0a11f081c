"""`wmprobe demo`, `wmprobe report`, `wmprobe run` and `wmprobe validate`: config-driven studies, end to end."""
from __future__ import annotations

import argparse
from pathlib import Path

from wmprobe import presets
from wmprobe.cli._common import OVERRIDES_HELP, SEED_MAX, _api, _failed_summary, at_least
from wmprobe.study.executor_registry import EXECUTORS
from wmprobe.trackers import TRACKERS


def cmd_demo(a: argparse.Namespace) -> int:
    out = _api("wmprobe.demo:run_demo")(out=a.out, seed=a.seed, preset=a.preset, cache=a.cache,
                                         progress=not a.quiet, overrides=a.overrides, log=a.log or ())
    print(f"report: {Path(out) / 'report.html'}")
    return _failed_summary(out)



def cmd_report(a: argparse.Namespace) -> int:
    path = _api("wmprobe.report:build_report")(a.results)
    print(f"report: {path}")
    for kind, where in _api("wmprobe.trackers:log_results")(a.results, a.log or ()).items():
        print(f"logged to {kind}: {where}")
    return 0


def cmd_stability(a: argparse.Namespace) -> int:
    from wmprobe import stability as st
    res = st.stability_from_dirs(a.results)
    print(st.format_stability(res))
    if a.json:
        import json
        Path(a.json).write_text(json.dumps(st.to_json(res), indent=1) + "\n", encoding="utf-8")
        print(f"stability: {a.json}")
    return 0


def cmd_run(a: argparse.Namespace) -> int:
    if a.dry_run:
        print(_api("wmprobe.study.plan:describe_study")(a.study, cache=a.cache, overrides=a.overrides))
        return 0
    out = a.out or Path(a.study).with_suffix("").name + "-results"
    if not a.quiet:
        print(_api("wmprobe.study.plan:describe_study")(a.study, cache=a.cache, overrides=a.overrides), flush=True)
    _api("wmprobe.study.runner:run")(a.study, out=out, cache=a.cache, executor=a.executor,
                                     progress=not a.quiet, overrides=a.overrides, log=a.log or ())
    print(f"records: {Path(out) / 'records.csv'}")
    return _failed_summary(out)


def cmd_validate(a: argparse.Namespace) -> int:
    problems = _api("wmprobe.study.config:validate")(a.study, a.overrides)
    for p in problems:
        print(str(p))
    print(f"{a.study}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


def _add_log(sp: argparse.ArgumentParser) -> None:
    """``--log TRACKER ...`` (demo, report, run): where results are also logged."""
    sp.add_argument("--log", nargs="+", default=None, choices=TRACKERS,
                    metavar="TRACKER", help="also log the resolved config, one entry per record row, the "
                    "findings and the figures to wandb, mlflow and/or tensorboard (optional extras; W&B "
                    "offline with WANDB_MODE=offline; MLflow to $MLFLOW_TRACKING_URI or DIR/mlruns; "
                    "TensorBoard under DIR/tensorboard)")


def add_demo_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`wmprobe demo`."""
    d = sub.add_parser("demo", help="the embedded study end to end, on a CPU, no downloads")
    d.add_argument("--out", default="wmprobe-demo", help="results directory (default: wmprobe-demo)")
    d.add_argument("--seed", type=at_least(0, hi=SEED_MAX), default=0,
                   help="study seed: data, splits, zoo training, probes")
    d.add_argument("--preset", default="demo", choices=presets.names(),
                   help="size of the run: tiny (about a minute), demo (minutes), compare (<= 45 min: the frozen "
                        "families with CIs), paper (the full protocol, hours)")
    d.add_argument("--cache", default=None, help="cache dir (default $WMPROBE_CACHE or ~/.cache/wmprobe)")
    d.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=OVERRIDES_HELP)
    d.set_defaults(fn=cmd_demo)
    _add_log(d)


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`wmprobe report`, `wmprobe run` and `wmprobe validate`."""
    rp = sub.add_parser("report", help="build report.html, figures and tables from a results directory")
    rp.add_argument("results", help="results directory holding records.parquet (from run, demo or probe)")
    rp.set_defaults(fn=cmd_report)

    sp = sub.add_parser("stability", help="rank stability of the encoders across runs with different data seeds",
                        epilog="example: wmprobe stability results-seed11 results-seed12 results-seed13 "
                        "--json stability.json   (docs/protocol.md \"Rank stability across data seeds\")")
    sp.add_argument("results", nargs="+", help="results directories of the same study, one per data seed (>= 2)")
    sp.add_argument("--json", default=None, metavar="FILE", help="also write the numbers as JSON to FILE")
    sp.set_defaults(fn=cmd_stability)

    r = sub.add_parser("run", help="run a config-driven study (local, SLURM or Ray)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=(
                           "examples:\n  wmprobe run studies/lambda-sweep.yaml --dry-run\n"
                           "  wmprobe run study.yaml probe.steps=200 ks=[1,4]   # dotted overrides\n"
                           "  wmprobe run study.yaml --out results/ --cache /shared/wmprobe-cache\n"
                           "  wmprobe run study.yaml --executor submitit   # SLURM job arrays\n"
                           "A killed run resumes where it stopped; a finished one recomputes nothing "
                           "(docs/study.md)."))
    r.add_argument("study", help="study YAML (docs/study.md; presets: `preset: tiny|demo|compare|paper`)")
    r.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=OVERRIDES_HELP)
    r.add_argument("--out", default=None, help="results directory (default: NAME-results); records merge")
    r.add_argument("--cache", default=None, help="cache dir (default $WMPROBE_CACHE or ~/.cache/wmprobe)")
    r.add_argument("--executor", default=None, choices=EXECUTORS.names(),
                   help="override the study's executor.kind (default: the study's, local)")
    r.add_argument("--dry-run", action="store_true", help="print the plan and estimated work; run nothing")
    r.set_defaults(fn=cmd_run)

    v = sub.add_parser("validate", help="check a study config and report every problem",
                       epilog="example: wmprobe validate study.yaml   (exit code 1 when there are problems)")
    v.add_argument("study", help="study YAML")
    v.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=OVERRIDES_HELP)
    v.set_defaults(fn=cmd_validate)

    for sp in (rp, r):
        _add_log(sp)
