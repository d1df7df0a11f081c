"""`wmprobe` command line. Every subcommand is a thin shell over the Python API of the same name.

Errors are one sentence (exit code 2); ``--debug`` shows the traceback. ``--quiet`` hides progress bars.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

from wmprobe import presets
from wmprobe.errors import ConfigError, WmprobeError

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


OVERRIDES_HELP = ("dotted overrides of the study config, values parsed as YAML, e.g. probe.steps=200 ks=[1,4] "
                  "datasets[0].episodes=8; checked like the file (location 'override N') and recorded in "
                  "config.yaml")


def _api(target: str) -> Callable[..., Any]:
    from wmprobe.registry import ResolveError, resolve
    try:
        fn: Callable[..., Any] = resolve(target)
    except ResolveError as exc:
        raise WmprobeError(f"this wmprobe install lacks {target} ({exc.cause or exc}); reinstall with "
                           "`pip install -c constraints.txt -e '.[all]'`") from None
    return fn


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=1, default=str))


def encoder_options(pairs: Sequence[str] | None) -> dict[str, Any]:
    """``["t=200", "bf16=true", "window=8"]`` -> ``{"t": 200, "bf16": True, "window": 8}`` (YAML-typed values)."""
    import yaml
    out: dict[str, Any] = {}
    for item in pairs or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise WmprobeError(f"--encoder-option expects KEY=VALUE, got '{item}'")
        try:
            out[key.strip().replace("-", "_")] = yaml.safe_load(value)
        except yaml.YAMLError:
            out[key.strip().replace("-", "_")] = value
    return out


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str], indent: str = "  ") -> str:
    """Rows as an aligned text table with a header (values str()-ed; floats with 4 significant digits)."""
    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else ("-" if v is None else str(v))
    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(indent + ln.rstrip() for ln in lines)


def zoo_checkpoints(root: Path) -> list[dict[str, Any]]:
    """Every trained mini-zoo checkpoint under ``root`` (``CACHE/zoo``): family, preset, id_weight, objective,
    seed, the training data's fingerprint and the path, sorted by family, preset and id_weight."""
    out = []
    for d in sorted(Path(root).glob("*/recipe.json")) if Path(root).is_dir() else []:
        try:
            meta = json.loads(d.read_text())
            r = meta.get("recipe", meta)
            out.append({"family": r["family"], "preset": r.get("preset"), "id_weight": float(r.get("id_weight", 0)),
                        "objective": r.get("objective", "l1") if r.get("id_weight") else "-", "seed": r.get("seed"),
                        "data": r.get("data"), "path": str(d.parent)})
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a checkpoint being written or a foreign file: not listed
    return sorted(out, key=lambda c: (c["family"], str(c["preset"]), c["id_weight"], c["path"]))


# ---- subcommands ----------------------------------------------------------------------------------
def cmd_demo(a: argparse.Namespace) -> int:
    out = _api("wmprobe.demo:run_demo")(out=a.out, seed=a.seed, preset=a.preset, cache=a.cache,
                                         progress=not a.quiet, overrides=a.overrides, log=a.log or ())
    print(f"report: {Path(out) / 'report.html'}")
    return _failed_summary(out)


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


def _ls_data(what: str) -> dict[str, dict[str, str]]:
    """``{section: {name: description}}`` for `wmprobe ls` (text or --json)."""
    out: dict[str, dict[str, str]] = {}
    if what in ("encoders", "all"):
        out["encoders"] = {n: f"{r.family}: {r.description}" for n, r in
                           sorted(_api("wmprobe.encoders.registry:list_encoders")().items())}
    if what in ("families", "all"):
        out["families"] = dict(_api("wmprobe.zoo:FAMILIES"))
    if what in ("probes", "all"):
        from wmprobe.probes.spec import CONTROLS, probe_spec
        out["probes"] = {**{n: probe_spec(n).description for n in _api("wmprobe.probes:PROBES")},
                         **{f"PROBE-{c}": desc for c, desc in CONTROLS.items()}}
    if what in ("datasets", "all"):
        out["datasets"] = {**dict(_api("wmprobe.data.sim:SUITES")),
                           **{f: "readable by `wmprobe data import`" for f in _api("wmprobe.data.formats:READERS")}}
    if what in ("corruptions", "all"):
        out["corruptions"] = dict(_api("wmprobe.data.corruptions:CORRUPTIONS"))
    if what in ("presets", "all"):
        out["presets"] = {n: p.describe() for n, p in _api("wmprobe.demo:PRESETS").items()}
    return out


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
         lambda: _api("wmprobe.zoo:FAMILIES").items(), 16),
        ("probes", "probes (wmprobe probe --probe NAME ...; study `probes:`):",
         lambda: _ls_data("probes")["probes"].items(), 16),
        ("datasets", "embedded simulator suites (wmprobe data gen SUITE DEST):",
         lambda: _api("wmprobe.data.sim:SUITES").items(), 16),
        ("datasets", "readable formats (wmprobe data import SRC DEST):",
         lambda: ((n, e.meta.get("description", ""))
                  for n, e in _api("wmprobe.data.formats:READERS").entries().items()), 16),
        ("corruptions", "corruptions (NAME:PARAM, e.g. noise:0.15, blur:11, fog:3):",
         lambda: _api("wmprobe.data.corruptions:CORRUPTIONS").items(), 18))
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


def cmd_data(a: argparse.Namespace) -> int:
    if a.data_cmd == "gen":
        params = dict(episodes=a.episodes, size=a.size, seed=a.seed, steps=a.steps, camera=a.camera, tasks=a.tasks,
                      wrist=a.wrist)
        if not a.force and _api("wmprobe.data.sim.generate:up_to_date")(a.suite, a.dest, **params):
            print(f"{a.dest} is up to date (generated with these parameters; --force regenerates)")
            return 0
        _api("wmprobe._dest:check_dest")(a.dest, "store")  # before generating: refuse what wmprobe did not write
        dest = _api("wmprobe.data.sim:generate_to")(a.suite, a.dest, workers=a.workers, progress=not a.quiet,
                                                    **params)
        print(f"wrote {dest}")
    elif a.data_cmd == "import":
        dest = _api("wmprobe.data.formats:import_dataset")(a.src, a.dest, format=a.format, camera=a.camera,
                                                           action_key=a.action_key, size=a.size,
                                                           max_episodes=a.max_episodes, progress=not a.quiet,
                                                           split=a.calvin_split, action_groups=a.action_groups,
                                                           revision=a.revision,
                                                           allow_symlinks_out=a.allow_symlinks_out or None)
        src_meta = json.loads((Path(dest) / "meta.json").read_text())
        how = src_meta.get("source", {})
        print(f"{how.get('resize', '')}")
        print(f"action groups: {_api('wmprobe.data.formats.groups:format_groups')(src_meta['action_groups'])} "
              f"(from {how.get('action_groups_from', '?')})")
        print(f"wrote {dest}")
    elif a.data_cmd == "info":
        info = _api("wmprobe.data.formats:dataset_info")(a.path, format=a.format, split=a.calvin_split,
                                                         revision=a.revision, allow_symlinks_out=a.allow_symlinks_out or None)
        if a.json:
            _print_json(info)
        else:
            print(_info_table(info))
    elif a.data_cmd == "validate":
        problems = _api("wmprobe.data.formats:validate_dataset")(a.path, format=a.format, camera=a.camera,
                                                                 action_key=a.action_key, split=a.calvin_split,
                                                                 revision=a.revision, allow_symlinks_out=a.allow_symlinks_out or None)
        for p in problems:
            print(f"problem: {p}")
        print(f"{a.path}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
        return 1 if problems else 0
    elif a.data_cmd == "audit":
        from wmprobe.data import load_dataset
        from wmprobe.data.audit import audit, format_audit
        heads = None if a.headline is None else [h.strip() for h in a.headline.split(",") if h.strip()]
        result = audit(load_dataset(a.store), a.split, k=a.k, headline=heads, test_frac=a.test_frac, seed=a.seed)
        if a.json:
            _print_json(result)
        else:
            print(format_audit(result))
    elif a.data_cmd == "export":
        _api("wmprobe._dest:check_dest")(a.dest, "lerobot")  # before reading the store
        store = _api("wmprobe.data.store:EpisodeStore").load(a.store, allow_symlinks_out=a.allow_symlinks_out or None)
        dest = _api("wmprobe.data.formats:export_lerobot")(store, a.dest, data_files_size_in_mb=a.data_file_mb,
                                                           video_files_size_in_mb=a.video_file_mb,
                                                           chunks_size=a.chunks_size)
        print(f"wrote {dest}")
    return 0


def _info_table(info: dict[str, Any]) -> str:
    """`wmprobe data info` for people: one aligned ``key  value`` line per field (nested values compact)."""
    width = max(len(k) for k in info) if info else 0
    lines = []
    for k, v in info.items():
        if isinstance(v, dict):
            v = ", ".join(f"{kk}: {json.dumps(vv) if isinstance(vv, (list, dict)) else vv}" for kk, vv in v.items())
        elif isinstance(v, list):
            v = ", ".join(map(str, v)) if len(v) <= 8 or not all(isinstance(x, str) for x in v) else \
                ", ".join(map(str, v[:8])) + f", ... ({len(v)} in all)"
        lines.append(f"{k.replace('_', ' '):{width}s}  {v}")
    return "\n".join(lines)


def cmd_extract(a: argparse.Namespace) -> int:
    from wmprobe.data import load_dataset
    from wmprobe.encoders.registry import load_encoder
    from wmprobe.extract import extract
    from wmprobe._dest import check_dest, replacing_dir
    check_dest(a.out, "features")  # before any work: a directory wmprobe did not write is never written into
    device = a.device
    if device == "auto":
        import torch
        device = "cuda" if torch.cuda.is_available() else "cpu"
    enc = load_encoder(a.encoder, device=device, **encoder_options(a.encoder_option))
    store = load_dataset(a.store)
    feats = extract(enc, store, layers=a.layers, corruption=a.corruption, keep_tokens=a.tokens,
                    token_pool=a.token_pool, batch_size=a.batch_size, progress=not a.quiet)
    feats.spec.update(encoder=a.encoder, dataset=store.name, dataset_fingerprint=store.fingerprint)
    with replacing_dir(a.out, "features") as tmp:  # complete features replace the old ones, or nothing changes
        feats.save(tmp)
    path = Path(a.out)
    print(f"wrote {feats.n_steps} steps x {len(feats.layers)} layer(s) to {path}")
    return 0


def _probe_mode(a: argparse.Namespace) -> str:
    """``"features"`` (FEATURES STORE) or ``"latents"`` (--latents Z.npy --store STORE_DIR); ConfigError otherwise."""
    positional = a.features is not None or a.store is not None
    latents = a.latents is not None or a.latents_store is not None
    usage = "give either FEATURES STORE (saved by `wmprobe extract`) or --latents Z.npy --store STORE_DIR"
    if positional and latents:
        raise ConfigError(f"wmprobe probe: {usage}, not both")
    if not positional and not latents:
        raise ConfigError(f"wmprobe probe: {usage}")
    if positional and (a.features is None or a.store is None):
        raise ConfigError("wmprobe probe: the saved-features form needs both FEATURES and STORE")
    if latents and (a.latents is None or a.latents_store is None):
        raise ConfigError("wmprobe probe: --latents Z.npy and --store STORE_DIR go together; give both")
    return "latents" if latents else "features"


def _probe_latents(a: argparse.Namespace) -> list[dict[str, Any]]:
    """`wmprobe probe --latents Z.npy --store STORE_DIR`: latents ``(N, D) | (N, tokens, D)``, one row per frame."""
    from wmprobe.data import load_dataset
    from wmprobe.probes.api import load_latents, probe
    z = load_latents(a.latents)
    store = load_dataset(a.latents_store)
    cfg = {} if a.steps is None else {"steps": a.steps}
    return probe(z, store, probe=a.probe, k=a.k, split=a.split, seeds=a.seeds, out=a.out,
                 encoder=Path(a.latents).stem, source=str(a.latents), progress=not a.quiet,
                 headline_groups=a.headline_groups, **cfg)


def cmd_probe(a: argparse.Namespace) -> int:
    mode = _probe_mode(a)
    _api("wmprobe._dest:check_dest")(a.out, "results", merge=True)  # before probing, not after
    if mode == "latents":
        rows = _probe_latents(a)
    else:
        rows = _api("wmprobe.pipeline:probe_features_dir")(a.features, a.store, probes=a.probe, ks=a.k,
                                                           split=a.split, seeds=a.seeds, out=a.out,
                                                           progress=not a.quiet,
                                                           probe_cfg=None if a.steps is None else {"steps": a.steps},
                                                           headline_groups=a.headline_groups)
    from wmprobe.probes.headline import describe
    from wmprobe.records import read_config
    for name, head in (read_config(a.out).get("config", {}).get("headline") or {}).items():
        print(describe(name, head))
    for r in rows:
        print(f"{r['layer']:>10s} {r['probe']:>14s} k={r['k']} seed={r['seed']} "
              f"R2={r['r2']:.3f} [{r['r2_ci_low']:.3f}, {r['r2_ci_high']:.3f}] ({r['headline_groups']})")
    for w in probe_warnings(rows):
        print(f"wmprobe: warning: {w}", file=sys.stderr)
    print(f"records: {Path(a.out) / 'records.csv'}")
    return 0


MIN_TEST_EPISODES = 5      # below this the bootstrap CI over test episodes says little
ABSURD_R2 = -10.0          # an R2 below this means the fit diverged, not that the features are poor


def probe_warnings(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Warnings `wmprobe probe` prints after its rows: too few test episodes for a CI, absurd R2 values."""
    out = []
    n_eps = sorted({int(r["n_test_episodes"]) for r in rows if r.get("n_test_episodes") is not None})
    if n_eps and n_eps[0] < MIN_TEST_EPISODES:
        out.append(f"only {n_eps[0]} test episode(s): the bootstrap CI over test episodes is unreliable below "
                   f"{MIN_TEST_EPISODES}; the test split needs more episodes")
    for r in rows:
        cfg = r.get("probe_config")
        try:
            cfg = json.loads(cfg) if isinstance(cfg, str) else (cfg or {})
        except ValueError:
            cfg = {}
        vals = [c.get("val_r2") for c in cfg.get("chosen", []) if isinstance(c, dict)] if isinstance(cfg, dict) else []
        worst = min([v for v in vals if v is not None] + [r.get("r2", 0.0)], default=0.0)
        if worst < ABSURD_R2:
            which = "validation" if vals and min(v for v in vals if v is not None) == worst else "test"
            out.append(f"{r.get('layer')} {r.get('probe')} k={r.get('k')} seed={r.get('seed')}: {which} R2 "
                       f"{worst:.3g} is absurd (< {ABSURD_R2:g}): the fit diverged (unnormalised features, or a "
                       "learning rate too high); do not read this row as a measurement")
    return out


def cmd_report(a: argparse.Namespace) -> int:
    path = _api("wmprobe.report:build_report")(a.results)
    print(f"report: {path}")
    for kind, where in _api("wmprobe.trackers:log_results")(a.results, a.log or ()).items():
        print(f"logged to {kind}: {where}")
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


def cmd_zoo(a: argparse.Namespace) -> int:
    if a.zoo_cmd == "ls":
        ckpts = zoo_checkpoints(_api("wmprobe.study.cache:Cache")(a.cache).zoo_dir)
        if a.json:
            _print_json({"checkpoints": ckpts, "families": dict(_api("wmprobe.zoo:FAMILIES"))})
            return 0
        root = _api("wmprobe.study.cache:Cache")(a.cache).zoo_dir
        print(f"trained checkpoints in {root} (probe one as encoder 'zoo:PATH'):")
        if ckpts:
            print(_table(ckpts, ["family", "preset", "id_weight", "objective", "seed", "data", "path"]))
        else:
            print("  none yet (`wmprobe zoo train FAMILY --data STORE`, or a study with `zoo: {families: [...]}`)")
        print("families:")
        for name, desc in _api("wmprobe.zoo:FAMILIES").items():
            print(f"  {name:16s} {desc}")
        print(f"  {'ceiling':16s} the shared trunk trained by inverse dynamics alone (+ID, no family loss)")
        print("+ID objectives (--objective, with --id-weight > 0):")
        for name, desc in _api("wmprobe.zoo.objectives:OBJECTIVES").items():
            print(f"  {name:14s} {desc}")
        return 0
    from wmprobe.data import load_dataset, make_split
    zoo_dir = _api("wmprobe.study.cache:Cache")(a.cache).zoo_dir  # first: a foreign --cache is refused before work
    store = load_dataset(a.data)
    split = make_split(store, kind=a.split, seed=a.split_seed)
    path = _api("wmprobe.zoo:train")(a.family, store, train_episodes=list(split.train), preset=a.preset,
                                     id_weight=a.id_weight, objective=a.objective, seed=a.seed,
                                     cache_dir=zoo_dir,
                                     forbid_episodes=list(split.test),
                                     progress=not a.quiet, device=a.device, bf16=a.bf16, threads=a.threads,
                                     id_groups=a.id_groups.split(",") if a.id_groups else None)
    print(f"checkpoint: {path}  (probe it as encoder 'zoo:{path}')")
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


# ---- parser ---------------------------------------------------------------------------------------
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

    ls = sub.add_parser("ls", help="list encoders, families, probes, datasets, corruptions, presets")
    ls.add_argument("what", nargs="?", default="all",
                    choices=["all", "encoders", "families", "probes", "datasets", "corruptions", "presets"],
                    help="what to list")
    ls.add_argument("--json", action="store_true", help="one JSON object {section: {name: description}}")
    ls.set_defaults(fn=cmd_ls)

    data = sub.add_parser("data", help="generate, import, inspect, validate and export datasets")
    dsub = data.add_subparsers(dest="data_cmd", required=True, metavar="ACTION")
    g = dsub.add_parser("gen", help="generate an embedded simulator suite into an EpisodeStore")
    g.add_argument("suite", help="simulator suite: dynamic, static or metaworld (`wmprobe ls datasets`)")
    g.add_argument("dest", help="directory of the EpisodeStore to write")
    g.add_argument("--episodes", type=at_least(1), default=60, help="episodes to generate, spread over the tasks")
    g.add_argument("--size", type=at_least(16), default=64, help="rendered frame size (square, pixels)")
    g.add_argument("--seed", type=at_least(0, hi=SEED_MAX), default=0,
                   help="seed of the scenes, scripted policies and noise")
    g.add_argument("--steps", type=at_least(2), default=None,
                   help="control steps per episode (default: the suite's: 40 for dynamic/static, 100 for metaworld)")
    g.add_argument("--camera", default=None,
                   help="oblique (the default of static/dynamic: every translation axis has its own image "
                   "direction), front, side, top; metaworld: corner (default), corner2..4, topview, ...")
    g.add_argument("--wrist", default=None, choices=["fixed", "free"],
                   help="static/dynamic: fixed (default; actions x y z gripper) or free (7-dim, the wrist turns)")
    g.add_argument("--workers", type=at_least(1), default=None, help="rendering processes (default: one per core)")
    g.add_argument("--tasks", default=None, metavar="all|N|NAME,NAME,...",
                   help="which of the suite's tasks: all, a count N, or comma-separated names (default: all of "
                   "static/dynamic, the 16 DEFAULT_TASKS of metaworld; docs/data.md)")
    g.add_argument("--force", action="store_true",
                   help="regenerate even if DEST already holds a store generated with these parameters")
    formats = ["auto", *_api("wmprobe.data.formats:READERS").names()]
    i = dsub.add_parser("import", help="convert LeRobot / CALVIN / LIBERO data (or a store) into an EpisodeStore")
    i.add_argument("src", help="LeRobot / CALVIN / LIBERO dataset (a directory, or a LIBERO .hdf5), a store, or a "
                   "hub dataset id (lerobot/pusht, read from the Hugging Face cache)")
    i.add_argument("dest", help="directory of the EpisodeStore to write")
    x = dsub.add_parser("info", help="summarise a dataset or store (a table; --json for scripts)")
    x.add_argument("path", help="a LeRobot / CALVIN / LIBERO dataset or an EpisodeStore")
    x.add_argument("--json", action="store_true", help="the summary as one JSON object")
    v = dsub.add_parser("validate", help="list every problem")
    v.add_argument("path", help="a LeRobot / CALVIN / LIBERO dataset or an EpisodeStore")
    for sp in (i, x, v):
        sp.add_argument("--format", default="auto", choices=formats,
                        help="source format; auto detects it from the files present")
        sp.add_argument("--calvin-split", default=None, metavar="SPLIT",
                        help="CALVIN only: the split directory to read, training (default) or validation")
        sp.add_argument("--revision", default=None,
                        help="with a hub dataset id (lerobot/pusht): branch, tag or commit (default: main)")
    for sp in (i, v):
        sp.add_argument("--camera", default=None,
                        help="image stream (default: the format's first camera; docs/data.md)")
        sp.add_argument("--action-key", default=None,
                        help="action feature (default: `action` for LeRobot, `rel_actions` for CALVIN, "
                        "`actions` for LIBERO)")
    i.add_argument("--size", type=at_least(1), default=None, metavar="N",
                   help="centre-crop each frame to a square (aspect kept) and resize it to N x N (default: keep "
                   "the native size)")
    i.add_argument("--action-groups", nargs="+", default=None, metavar="GROUP=I,J",
                   help="which action dims are translation / rotation / gripper, e.g. translation=0,1,2 "
                   "rotation=3,4,5 gripper=6, or none (no groups: per-dimension targets). Default: the format's "
                   "convention (CALVIN, LIBERO) or the dataset's action names; refused when neither says")
    i.add_argument("--max-episodes", type=at_least(1), default=None, help="keep the first N episodes (default: all)")
    au = dsub.add_parser("audit", help="which action groups a probe can be scored on: variance shares under the "
                         "split, constant and binary axes, state ceiling, image motion (docs/data.md)")
    au.add_argument("store", help="the EpisodeStore to audit")
    au.add_argument("--split", default="task", choices=["task", "episode"],
                    help="the split the probe would use: held-out tasks or episodes")
    au.add_argument("--test-frac", type=at_least(0, float, strict=True), default=0.25,
                    help="share of tasks (or episodes) held out for test")
    au.add_argument("--seed", type=at_least(0, hi=SEED_MAX), default=0, help="seed of the split")
    au.add_argument("--k", type=at_least(1), default=4, help="probe horizon in steps (default 4)")
    au.add_argument("--headline", default=None, metavar="GROUP,GROUP",
                    help="override the rule's headline groups, e.g. translation,gripper (the evidence is still shown)")
    au.add_argument("--json", action="store_true", help="print the audit as JSON")
    e = dsub.add_parser("export", help="write a store as a LeRobot v3.0 dataset")
    e.add_argument("store", help="the EpisodeStore to export")
    e.add_argument("dest", help="directory of the LeRobot v3.0 dataset to write")
    e.add_argument("--format", default="lerobot", choices=["lerobot"], help="output format")
    e.add_argument("--data-file-mb", type=at_least(0, float, strict=True), default=100,
                   help="a data parquet takes episodes until it holds this many MB (default 100)")
    e.add_argument("--video-file-mb", type=at_least(0, float, strict=True), default=500,
                   help="an mp4 takes episodes until it holds this many MB (default 500)")
    e.add_argument("--chunks-size", type=at_least(1), default=1000, help="files per chunk directory (default 1000)")
    for sp in (i, x, v, e):
        sp.add_argument("--allow-symlinks-out", action="store_true",
                        help="follow symbolic links that lead out of the dataset (for files shared across datasets "
                        "on purpose; default: refused). Absolute paths and '..' in its metadata are always refused")
    data.set_defaults(fn=cmd_data)

    x = sub.add_parser("extract", help="encode a store with one encoder and save per-step features")
    x.add_argument("encoder", help="registry name, NAME:ARG (e.g. dinov2:/ckpt/dir, zoo:PATH) or "
                   "package.module:factory (`wmprobe ls encoders`)")
    x.add_argument("store", help="the EpisodeStore to encode")
    x.add_argument("--out", required=True, help="features directory to write")
    x.add_argument("--layers", nargs="*", default=None,
                   help="layers to keep, e.g. layer_8 out (default: the encoder's default layer)")
    x.add_argument("--corruption", default=None, help="e.g. noise:0.15, blur:11, fog:3")
    x.add_argument("--tokens", action="store_true", help="also keep patch tokens (for attentive probes)")
    x.add_argument("--token-pool", type=at_least(1), default=None,
                   help="with --tokens: average-pool the patch grid to at most this many tokens (default: keep all)")
    x.add_argument("--batch-size", type=at_least(1), default=32, help="frames per forward pass")
    x.add_argument("--device", default="auto", type=device_name,
                   help="auto (CUDA when available, else CPU), cpu, cuda, cuda:N or mps")
    x.add_argument("--encoder-option", action="append", metavar="KEY=VALUE",
                   help="passed to the encoder factory, e.g. t=200, bf16=true, window=8, trust_remote_code=true")
    x.set_defaults(fn=cmd_extract)

    pr = sub.add_parser("probe", help="probe saved features (or your own latents) for action recoverability",
                        usage="wmprobe probe (FEATURES STORE | --latents Z.npy --store STORE_DIR) --out DIR "
                              "[options]")
    pr.add_argument("features", nargs="?", default=None, help="features directory written by `wmprobe extract`")
    pr.add_argument("store", nargs="?", default=None, help="the EpisodeStore the features were extracted from")
    pr.add_argument("--latents", metavar="Z.npy", default=None,
                    help="your own latents, (N, D) pooled or (N, tokens, D), one row per store frame")
    pr.add_argument("--store", dest="latents_store", metavar="STORE_DIR", default=None,
                    help="the EpisodeStore whose frames --latents are aligned with")
    pr.add_argument("--probe", nargs="+", default=["mlp", "ridge", "mlp-shuffled"],
                    help="probes to fit (`wmprobe ls probes`); -shuffled / -single are controls")
    pr.add_argument("--k", type=at_least(1), nargs="+", default=[1, 4],
                    help="step sizes: the pair (o_t, o_t+k) predicts a_t..a_t+k-1; 4 is the headline k of the "
                    "report, 1 the single-step reference")
    pr.add_argument("--split", default="task", choices=["task", "episode"],
                    help="hold out whole tasks (task-OOD) or episodes")
    pr.add_argument("--seeds", type=at_least(0, hi=SEED_MAX), nargs="+", default=[0, 1, 2],
                    help="probe seeds (one row each)")
    pr.add_argument("--steps", type=at_least(1), default=None,
                    help="training steps of the mlp probes (with --latents also of attentive). Default budget: "
                    "mlp 3000 steps x batch 256 x 2 learning rates (1e-3, 3e-4) per seed, attentive its own, "
                    "ridge closed form (docs/protocol.md)")
    pr.add_argument("--headline-groups", nargs="+", default=None, metavar="GROUP",
                    help="the action groups the headline R2 averages, each counted once (e.g. translation "
                         "gripper; default: the action-space audit's choice, else every group)")
    pr.add_argument("--out", required=True, help="results directory (records.parquet/csv, config.yaml; rows merge)")
    pr.set_defaults(fn=cmd_probe)

    rp = sub.add_parser("report", help="build report.html, figures and tables from a results directory")
    rp.add_argument("results", help="results directory holding records.parquet (from run, demo or probe)")
    rp.set_defaults(fn=cmd_report)

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
    r.add_argument("--executor", default=None, choices=["local", "submitit", "ray"],
                   help="override the study's executor.kind (default: the study's, local)")
    r.add_argument("--dry-run", action="store_true", help="print the plan and estimated work; run nothing")
    r.set_defaults(fn=cmd_run)

    v = sub.add_parser("validate", help="check a study config and report every problem",
                       epilog="example: wmprobe validate study.yaml   (exit code 1 when there are problems)")
    v.add_argument("study", help="study YAML")
    v.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=OVERRIDES_HELP)
    v.set_defaults(fn=cmd_validate)

    z = sub.add_parser("zoo", help="train or list the embedded mini-zoo")
    zsub = z.add_subparsers(dest="zoo_cmd", required=True, metavar="ACTION")
    zl = zsub.add_parser("ls", help="list trained checkpoints (family, preset, id_weight, path) and the families")
    zl.add_argument("--cache", default=None, help="cache dir whose zoo/ to list (default $WMPROBE_CACHE or "
                    "~/.cache/wmprobe)")
    zl.add_argument("--json", action="store_true", help="checkpoints and families as JSON")
    zt = zsub.add_parser("train", help="train one family on a store's train split")
    zt.add_argument("family", help="zoo family (`wmprobe ls families`)")
    zt.add_argument("--data", required=True, help="EpisodeStore to train on")
    zt.add_argument("--preset", default="demo", choices=presets.names(),
                    help="training budget (docs/zoo.md)")
    zt.add_argument("--id-weight", type=at_least(0, float), default=0.0,
                    help="weight of the inverse-dynamics (+ID) loss; 0 trains the frozen-objective model")
    zt.add_argument("--objective", default="l1", choices=["l1", "l2", "single", "forward", "contrastive"],
                    help="+ID objective (with --id-weight > 0; `wmprobe zoo ls`)")
    zt.add_argument("--id-groups", default=None, metavar="G1,G2",
                    help="action groups +ID trains on (default: translation where the data have it)")
    zt.add_argument("--split", default="task", choices=["task", "episode"],
                    help="split whose train episodes the model sees (the probe's test episodes never)")
    zt.add_argument("--split-seed", type=at_least(0, hi=SEED_MAX), default=0, help="seed of that split")
    zt.add_argument("--seed", type=at_least(0, hi=SEED_MAX), default=0, help="training seed")
    zt.add_argument("--cache", default=None, help="cache dir (default $WMPROBE_CACHE or ~/.cache/wmprobe); the "
                    "checkpoint goes to CACHE/zoo/, where studies look for it")
    zt.add_argument("--device", default="cpu", type=device_name, help="cpu, cuda or cuda:N")
    zt.add_argument("--bf16", action="store_true", help="bfloat16 autocast (CPU or CUDA)")
    zt.add_argument("--threads", type=at_least(1), default=None,
                    help="torch CPU threads while training (default: torch's)")
    z.set_defaults(fn=cmd_zoo)

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
    for sp in (d, rp, r):
        sp.add_argument("--log", nargs="+", default=None, choices=["wandb", "mlflow", "tensorboard"],
                        metavar="TRACKER", help="also log the resolved config, one entry per record row, the "
                        "findings and the figures to wandb, mlflow and/or tensorboard (optional extras; W&B "
                        "offline with WANDB_MODE=offline; MLflow to $MLFLOW_TRACKING_URI or DIR/mlruns; "
                        "TensorBoard under DIR/tensorboard)")
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
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # overrides after an option (`run s.yaml --dry-run ks=[1]`) land here; anything else is an error
        if hasattr(args, "overrides") and all("=" in x and not x.startswith("-") for x in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.quiet:
        os.environ["WMPROBE_QUIET"] = "1"
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
