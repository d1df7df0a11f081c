"""`wmprobe extract` (encode a store, save per-step features) and `wmprobe probe` (fit probes on saved
features or on your own latents)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from wmprobe.cli._common import SEED_MAX, _api, at_least, choices, device_name
from wmprobe.errors import ConfigError, WmprobeError


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



def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`wmprobe extract` and `wmprobe probe`."""
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
    pr.add_argument("--split", default="task", choices=choices("wmprobe.data.splits:SPLITS", "task"),
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

