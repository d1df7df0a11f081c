"""`wmprobe data gen|import|info|validate|audit|export`: datasets in and out of an EpisodeStore."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from wmprobe.cli._common import SEED_MAX, _api, _print_json, at_least, choices


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
                                                         revision=a.revision,
                                                         allow_symlinks_out=a.allow_symlinks_out or None)
        if a.json:
            _print_json(info)
        else:
            print(_info_table(info))
    elif a.data_cmd == "validate":
        problems = _api("wmprobe.data.formats:validate_dataset")(a.path, format=a.format, camera=a.camera,
                                                                 action_key=a.action_key, split=a.calvin_split,
                                                                 revision=a.revision,
                                                                 allow_symlinks_out=a.allow_symlinks_out or None)
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
        dest = _api("wmprobe.data.formats:WRITERS").get(a.format)(store, a.dest, data_files_size_in_mb=a.data_file_mb,
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



def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`wmprobe data ...` and its actions."""
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
    g.add_argument("--wrist", default=None, choices=choices("wmprobe.data.sim.tasks:WRIST_MODES"),
                   help="static/dynamic: fixed (default; actions x y z gripper) or free (7-dim, the wrist turns)")
    g.add_argument("--workers", type=at_least(1), default=None, help="rendering processes (default: one per core)")
    g.add_argument("--tasks", default=None, metavar="all|N|NAME,NAME,...",
                   help="which of the suite's tasks: all, a count N, or comma-separated names (default: all of "
                   "static/dynamic, the 16 DEFAULT_TASKS of metaworld; docs/data.md)")
    g.add_argument("--force", action="store_true",
                   help="regenerate even if DEST already holds a store generated with these parameters")
    formats = ["auto", *choices("wmprobe.data.formats:READERS")]
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
    au.add_argument("--split", default="task", choices=choices("wmprobe.data.splits:SPLITS", "task"),
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
    e.add_argument("--format", default="lerobot", choices=choices("wmprobe.data.formats:WRITERS", "lerobot"),
                   help="output format")
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

