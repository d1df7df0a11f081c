"""`wmprobe zoo ls|train`: the embedded mini-zoo's checkpoints and its training."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from wmprobe import presets
from wmprobe.cli._common import SEED_MAX, _api, _print_json, _table, at_least, choices, device_name


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


def cmd_zoo(a: argparse.Namespace) -> int:
    if a.zoo_cmd == "ls":
        ckpts = zoo_checkpoints(_api("wmprobe.study.cache:Cache")(a.cache).zoo_dir)
        if a.json:
            _print_json({"checkpoints": ckpts, "families": _api("wmprobe.zoo.families:describe_families")()})
            return 0
        root = _api("wmprobe.study.cache:Cache")(a.cache).zoo_dir
        print(f"trained checkpoints in {root} (probe one as encoder 'zoo:PATH'):")
        if ckpts:
            print(_table(ckpts, ["family", "preset", "id_weight", "objective", "seed", "data", "path"]))
        else:
            print("  none yet (`wmprobe zoo train FAMILY --data STORE`, or a study with `zoo: {families: [...]}`)")
        print("families:")
        for name, desc in _api("wmprobe.zoo.families:describe_families")().items():
            print(f"  {name:16s} {desc}")
        print(f"  {'ceiling':16s} the shared trunk trained by inverse dynamics alone (+ID, no family loss)")
        print("+ID objectives (--objective, with --id-weight > 0):")
        for name, desc in _api("wmprobe.zoo.objective_names:OBJECTIVES").items():
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



def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`wmprobe zoo ...` and its actions."""
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
    zt.add_argument("--objective", default="l1", choices=choices("wmprobe.zoo.objective_names:OBJECTIVES", "l1"),
                    help="+ID objective (with --id-weight > 0; `wmprobe zoo ls`)")
    zt.add_argument("--id-groups", default=None, metavar="G1,G2",
                    help="action groups +ID trains on (default: translation where the data have it)")
    zt.add_argument("--split", default="task", choices=choices("wmprobe.data.splits:SPLITS", "task"),
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

