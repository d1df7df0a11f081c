"""Records: one row per measured cell, with the provenance to reproduce it.

Layout of a results directory (stable; scripts depend on it):
    DIR/records.parquet   all rows (typed)
    DIR/records.csv       the same rows as CSV
    DIR/config.yaml       resolved config + provenance (versions, git hash, host, time) of the latest run

A cell is identified by ``CELL_KEY`` plus the ``OPTIONAL_KEY`` columns a table has (``train_corruption``: the
corruption the probe was fit on, only written by studies with ``corrupt_train``; rows without it, and records
that predate it, are ``clean``; ``latents``: ``imagined`` for probes of a world model's own k-step rollout
z_hat_t+k in place of z_t+k, ``real`` elsewhere); writing rows for a cell that is already present replaces it (so runs
merge and a re-run never duplicates). Rows are sorted by the cell key, so identical inputs give identical
files. Columns of ``RECORD_COLUMNS`` are always present (NaN / "" when not measured); extra columns are kept
(e.g. ``r2_<group>`` of a group other than translation / rotation / gripper). ``r2`` is the mean of the R2 of
the groups named in ``headline_groups`` (``translation+gripper``: each group counts once; ``all-dims``: every
target dim, for data without groups; "" in records that predate the column, whose r2 averaged every dim).
``r2_norm`` is derived on every write from all the rows together (NaN without a ceiling; docs/protocol.md).
Every row carries ``ROW_PROVENANCE`` (host, git commit, wmprobe and torch versions of the process that computed
it), so rows merged from several runs, machines or cluster nodes each say where they came from.
"""
from __future__ import annotations

import datetime as _dt
import functools
import json
import os
import platform
import socket
import subprocess
from importlib import metadata
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, get_type_hints

import numpy as np
import yaml

from wmprobe._plain import plain
from wmprobe.errors import WmprobeError

if TYPE_CHECKING:
    import pandas as pd

NAN = float("nan")

@dataclass(frozen=True)
class Record:
    """One row of the records: the columns of ``RECORD_COLUMNS``, in this order, with their kinds (``str``,
    ``int`` or ``float``) and the value a row that does not measure a column gets (``""``, ``-1``, NaN; 0 for
    ``id_weight``). Everything about the columns is derived from this class: add a column here (at the end of
    its group) and it is written, typed and defaulted everywhere. Rows themselves are plain dicts built by
    ``row`` (they travel through the cache as JSON and may carry extra columns, e.g. ``r2_<group>``)."""

    # the cell: what was measured (with ``seed``, the key; see CELL_KEY)
    encoder: str = ""
    family: str = ""
    id_weight: float = 0.0
    dataset: str = ""
    split: str = ""
    corruption: str = ""
    layer: str = ""
    probe: str = ""
    k: int = -1
    seed: int = -1
    # the scores
    r2: float = NAN
    r2_ci_low: float = NAN
    r2_ci_high: float = NAN
    headline_groups: str = ""
    r2_translation: float = NAN
    r2_rotation: float = NAN
    r2_gripper: float = NAN
    acc_gripper: float = NAN
    bacc_gripper: float = NAN
    pearson: float = NAN
    mse: float = NAN
    psnr: float = NAN
    ssim: float = NAN
    n_train: int = -1
    n_test: int = -1
    n_test_episodes: int = -1
    train_seconds: float = NAN
    probe_config: str = ""
    # what it was computed from
    encoder_key: str = ""
    dataset_fingerprint: str = ""
    error: str = ""
    # where and with what code (ROW_PROVENANCE)
    host: str = ""
    git_commit: str = ""
    wmprobe_version: str = ""
    torch_version: str = ""


def _kinds() -> dict[str, type]:
    hints = get_type_hints(Record)
    return {f.name: hints[f.name] for f in fields(Record)}


COLUMN_KINDS: dict[str, type] = _kinds()            # column -> str | int | float
RECORD_COLUMNS: tuple[str, ...] = tuple(COLUMN_KINDS)
CELL_KEY = ("encoder", "id_weight", "dataset", "split", "corruption", "layer", "probe", "k", "seed")
# key columns present only when some row sets them -> their default
OPTIONAL_KEY = {"train_corruption": "clean", "task_split": "", "task": "", "latents": "real"}
# where and with what code each row was computed (set when the cell is computed, so a study's cached rows
# keep the provenance of the run that measured them; config.yaml has the full versions of the latest run)
ROW_PROVENANCE = ("host", "git_commit", "wmprobe_version", "torch_version")
_STR = {c for c, kind in COLUMN_KINDS.items() if kind is str}
_INT = {c for c, kind in COLUMN_KINDS.items() if kind is int}
_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(Record)}


@dataclass(frozen=True)
class Source:
    """What a row was measured on: an encoder (label, family, +ID weight, spec key) on a dataset (name, split,
    fingerprint). ``row`` starts every row from one."""

    encoder: str
    family: str
    dataset: str
    split: str
    id_weight: float = 0.0
    encoder_key: str = ""
    dataset_fingerprint: str = ""

    def columns(self) -> dict[str, Any]:
        return {"encoder": self.encoder, "family": self.family, "id_weight": self.id_weight, "dataset": self.dataset,
                "split": self.split, "encoder_key": self.encoder_key, "dataset_fingerprint": self.dataset_fingerprint}


def row(source: Source | Mapping[str, Any], *measured: Mapping[str, Any], **columns: Any) -> dict[str, Any]:
    """One record row: ``source``'s columns (a ``Source``, or a row to extend), then each ``measured`` mapping
    (e.g. a probe's scores) and ``columns`` over it, later ones winning. ``columns`` must name record columns or
    ``OPTIONAL_KEY`` columns (a typo is a ValueError, not a silently extra column); ``measured`` may carry
    extra columns."""
    unknown = [c for c in columns if c not in COLUMN_KINDS and c not in OPTIONAL_KEY]
    if unknown:
        raise ValueError(f"not record columns: {unknown} (records.Record lists them)")
    out = source.columns() if isinstance(source, Source) else dict(source)
    for m in measured:
        out.update(m)
    out.update(columns)
    return out


PACKAGES = ("wmprobe", "torch", "numpy", "scipy", "transformers", "diffusers", "pybullet", "pyarrow")


def provenance() -> dict[str, Any]:
    """Versions, git commit, host and time: travels with every results directory."""
    versions: dict[str, str | None] = {}
    for p in PACKAGES:
        try:
            versions[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            versions[p] = None
    return {"versions": versions, "python": platform.python_version(), "git": git_commit(),
            "host": socket.gethostname(), "platform": platform.platform(),
            "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


@functools.lru_cache(maxsize=1)
def row_provenance() -> dict[str, str]:
    """The ``ROW_PROVENANCE`` values of this process (host, git commit, wmprobe and torch versions)."""
    def version(p: str) -> str:
        try:
            return metadata.version(p)
        except metadata.PackageNotFoundError:
            return ""
    return {"host": socket.gethostname(), "git_commit": git_commit() or "", "wmprobe_version": version("wmprobe"),
            "torch_version": version("torch")}


def stamp(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` with this process's ``row_provenance()`` wherever a row does not carry its own yet."""
    prov = row_provenance()
    return [{**r, **{k: v for k, v in prov.items() if not r.get(k)}} for r in rows]


def git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def normalise_row(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with every ``Record`` column (missing or None: the column's default), text columns as text (a
    dict or list as sorted JSON), integer columns as int (-1 for NaN) and ``id_weight`` as float."""
    r = dict(row)
    for c in RECORD_COLUMNS:
        if c not in r or r[c] is None:
            r[c] = _DEFAULTS[c]
    for c in _STR:
        if not isinstance(r[c], str):
            r[c] = json.dumps(r[c], sort_keys=True, default=str) if isinstance(r[c], (dict, list)) else str(r[c])
    for c in _INT:
        v = r[c]
        r[c] = -1 if v is None or (isinstance(v, float) and np.isnan(v)) else int(v)
    r["id_weight"] = float(r["id_weight"])
    return r


def cell_key(df: pd.DataFrame) -> list[str]:
    """The columns that identify a cell of ``df``: ``CELL_KEY`` plus the ``OPTIONAL_KEY`` columns it has."""
    return list(CELL_KEY) + [c for c in OPTIONAL_KEY if c in df.columns]


def _with_optional_key(df: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """``df`` with every ``OPTIONAL_KEY`` column of ``columns``, missing values set to that column's default."""
    for c, default in OPTIONAL_KEY.items():
        if c in columns:
            df = df.assign(**{c: df[c].fillna(default).astype(str) if c in df else default})
    return df


def _frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd
    rows = [normalise_row(r) for r in stamp(rows)]
    df = pd.DataFrame(rows)
    if df.empty:
        df = pd.DataFrame(columns=list(RECORD_COLUMNS))
    df = _with_optional_key(df, df.columns)
    extra = sorted(c for c in df.columns if c not in RECORD_COLUMNS)
    return df[list(RECORD_COLUMNS) + extra]


def merge(old: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``new`` replace rows of ``old`` with the same cell key; sorted by the key. An ``OPTIONAL_KEY``
    column that only one side has is given its default on the other."""
    import pandas as pd
    if old is None or old.empty:
        df = new
    else:
        old = with_all_columns(old)
        cols = set(old.columns) | set(new.columns)
        old, new = _with_optional_key(old, cols), _with_optional_key(new, cols)
        key = cell_key(new)
        keys = set(map(tuple, new[key].astype(str).values))
        keep = ~old[key].astype(str).apply(tuple, axis=1).isin(keys)
        df = pd.concat([old[keep], new], ignore_index=True)
    return df.sort_values(cell_key(df), kind="stable").reset_index(drop=True)


def _atomic_write(path: Path, write: Callable[[Any], Any]) -> None:
    from wmprobe._fs import make_temp_file
    tmp = make_temp_file(path.parent, f".{path.name}.")  # mode from the umask, not mkstemp's 0600
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_records(rows: Iterable[dict[str, Any]], out_dir: str | os.PathLike[str], config: dict[str, Any] | None = None,
                  *, merge_existing: bool = True) -> Path:
    """Write/merge ``rows`` into ``out_dir`` (parquet + csv) and the resolved ``config`` with provenance."""
    from wmprobe._dest import check_dest, claim
    out = check_dest(out_dir, "results", merge=True)  # never write into a directory wmprobe did not make
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WmprobeError(f"cannot create results directory {out}: {exc}") from None
    claim(out, "results")
    new = _frame(rows)
    old = read_records(out) if merge_existing and (out / "records.parquet").exists() else None
    df = _derived(merge(old, new))
    _atomic_write(out / "records.parquet", lambda p: df.to_parquet(p, index=False))
    _atomic_write(out / "records.csv", lambda p: df.to_csv(p, index=False))
    if config is not None:
        doc = {"config": config, "provenance": provenance()}
        _atomic_write(out / "config.yaml",
                      lambda p: Path(p).write_text(yaml.safe_dump(plain(doc), sort_keys=False)))
    return out


def _derived(df: pd.DataFrame) -> pd.DataFrame:
    """Columns derived from every cell at once, recomputed on each write: ``r2_norm`` (each row's place between
    the best floor and the ceiling of its (dataset, split, corruption, probe, k); ``analysis.add_r2_norm``)."""
    from wmprobe.analysis import add_r2_norm
    return add_r2_norm(df)


def read_records(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The records of a results directory (or a records.parquet/.csv file) as a pandas DataFrame."""
    import pandas as pd
    p = Path(path)
    f = p / "records.parquet" if p.is_dir() else p
    if not f.exists():
        raise WmprobeError(f"no records at {p} (expected {f.name}; run a study or `wmprobe demo` first)")
    try:
        df = pd.read_parquet(f) if f.suffix == ".parquet" else pd.read_csv(f)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise WmprobeError(f"{f} is unreadable: {exc}") from None
    missing = [c for c in CELL_KEY if c not in df.columns]
    if missing:
        raise WmprobeError(f"{f} is not a wmprobe records file: missing columns {missing}")
    return with_all_columns(df)


def with_all_columns(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every ``RECORD_COLUMNS`` column, those it lacks (records written before they existed, e.g.
    ``headline_groups``) filled with "" (text) or NaN (numbers)."""
    lacking = [c for c in RECORD_COLUMNS if c not in df.columns]
    if not lacking:
        return df
    return df.assign(**{c: "" if c in _STR else np.nan for c in lacking})


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    f = Path(path) / "config.yaml"
    if not f.exists():
        return {}
    doc: dict[str, Any] = yaml.safe_load(f.read_text()) or {}
    return doc
