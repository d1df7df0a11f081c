"""The golden records of the ``tiny`` preset: what the redesign (issue 20) must never change.

``tests/test_golden.py`` runs ``wmprobe demo --preset tiny`` (seed 0, a fresh cache) and compares its records
with the golden file of this machine's CPU class, written by this script:

    PYTHONPATH=src python tests/golden/regen.py          # rerun the tiny demo and rewrite the golden file
    PYTHONPATH=src python tests/golden/regen.py --from DIR   # from an existing results directory instead

One file per CPU class (``cpu_class()``: the vector ISA torch dispatches to, ``AVX512`` or ``AVX2`` on x86):
``tiny_records.json`` for AVX512 machines, ``tiny_records.CLASS.json`` for the others. The class decides the
kernels every float goes through (oneDNN's convolutions, OpenBLAS's GEMMs, numpy's SIMD loops), and they round
differently: on an AVX2 machine the tiny demo's episodes differ from an AVX-512 machine's in one frame's
physics (a last-bit difference in the scripted expert's arithmetic), and with the same episodes the
convolution kernels alone (``ONEDNN_MAX_CPU_ISA=SSE41``) move 248 record values past the tolerance: 40 zoo
steps and a small probe amplify the last bits. So records are compared with the file of the class they were
computed on; a class with no file yet is skipped with the command that writes one.

Regenerate ONLY when a change is meant to move the numbers (a new probe default, a fixed bug) and say so in
the commit message; a refactor must pass the test unchanged (with ``WMPROBE_GOLDEN_STRICT=1``: bit for bit).

The file holds every column in record order (``columns``), each column's kind, and every row sorted by the
cell key, floats at full precision (``repr`` round-trips exactly; NaN is written as ``NaN``). Columns that
say when, where and with what code a row was computed (``VOLATILE``) are kept in ``columns`` but not stored.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "tiny_records.json"   # the AVX512 class's file (the first one written); others: golden_path()
# wall time and provenance (host, git commit, versions): differ between runs of the same code
VOLATILE = ("train_seconds", "host", "git_commit", "wmprobe_version", "torch_version")
# a hash of trained weights: on another CPU the weights may differ in the last bits, so outside strict mode
# these keys are compared by which rows share one, not by value (untrained encoders are compared exactly)
WEIGHT_KEYS = ("encoder_key",)
# JSON text holding floats (the MLP's chosen lr and its validation R2): compared parsed, floats with tolerance
JSON_FLOATS = ("probe_config",)
COMMAND = ["--quiet", "demo", "--preset", "tiny", "--seed", "0"]


def run_tiny(out: Path, cache: Path) -> Path:
    """``wmprobe demo --preset tiny`` into ``out`` with its own cache, as a user runs it (a subprocess)."""
    env = {**os.environ, "WMPROBE_CACHE": str(cache)}
    r = subprocess.run([sys.executable, "-m", "wmprobe.cli", *COMMAND, "--out", str(out), "--cache", str(cache)],
                       capture_output=True, text=True, timeout=1800, env=env)
    if r.returncode:
        raise SystemExit(f"the tiny demo failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    return out


def kind_of(dtype: Any) -> str:
    s = str(dtype)
    return "float" if s.startswith("float") else "int" if s.startswith("int") else "str"


def table(df: Any) -> dict[str, Any]:
    """The golden document of a records DataFrame: columns, kinds, key and rows sorted by the key."""
    from wmprobe.records import cell_key
    key = cell_key(df)
    df = df.sort_values(key, kind="stable").reset_index(drop=True)
    kinds = {c: kind_of(df[c].dtype) for c in df.columns}
    stored = [c for c in df.columns if c not in VOLATILE]
    rows = []
    for rec in df[stored].to_dict("records"):
        rows.append({c: (float(v) if kinds[c] == "float" else int(v) if kinds[c] == "int" else str(v))
                     for c, v in rec.items()})
    return {"command": "wmprobe " + " ".join(COMMAND), "cpu_class": cpu_class(), "columns": list(df.columns),
            "kinds": kinds, "key": key, "volatile": list(VOLATILE), "rows": rows}


def dump(doc: dict[str, Any]) -> str:
    """JSON with one row per line (readable diffs when numbers move on purpose)."""
    head = {k: v for k, v in doc.items() if k != "rows"}
    lines = [json.dumps(r, allow_nan=True) for r in doc["rows"]]
    body = json.dumps(head, indent=1)[:-2]
    return body + ',\n "rows": [\n  ' + ",\n  ".join(lines) + "\n ]\n}\n"


def cpu_class() -> str:
    """The CPU class whose kernels computed this process's floats: torch's vector ISA (AVX512, AVX2, ...)."""
    import torch
    return str(torch.backends.cpu.get_cpu_capability())


def golden_path(cls: str | None = None) -> Path:
    """The golden file of CPU class ``cls`` (default: this machine's)."""
    cls = cls or cpu_class()
    return GOLDEN if cls == "AVX512" else HERE / f"tiny_records.{cls}.json"


def load(cls: str | None = None) -> dict[str, Any]:
    return json.loads(golden_path(cls).read_text())


def _close(a: Any, b: Any, rtol: float, atol: float) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
            return False
        a, b = float(a), float(b)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return abs(a - b) <= atol + rtol * abs(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], rtol, atol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, rtol, atol) for x, y in zip(a, b))
    return a == b


def _same_float(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def _trained(row: dict[str, Any]) -> bool:
    return str(row.get("encoder", "")).startswith("zoo:") or row.get("encoder") == "ceiling"


def compare(got: dict[str, Any], want: dict[str, Any], *, strict: bool, rtol: float = 1e-6,
            atol: float = 1e-9) -> list[str]:
    """Every difference between two golden documents, as sentences (empty: they agree).

    Always exact: the column names and order, each column's kind, the set of cells (key values) and every text
    and integer value. Floats: bit-equal (``strict``) or within ``atol + rtol * |want|`` (NaN only where the
    golden file has NaN). ``WEIGHT_KEYS`` of trained encoders and floats inside ``JSON_FLOATS``: exact when
    ``strict``, else by grouping / tolerance (see the constants)."""
    problems = []
    if got["columns"] != want["columns"]:
        problems.append(f"columns differ:\n  got  {got['columns']}\n  want {want['columns']}")
        return problems
    if got["kinds"] != want["kinds"]:
        bad = {c: (got["kinds"][c], want["kinds"][c]) for c in want["kinds"] if got["kinds"][c] != want["kinds"][c]}
        problems.append(f"column kinds differ (got, want): {bad}")
    key = want["key"]
    gk = [tuple(r[c] for c in key) for r in got["rows"]]
    wk = [tuple(r[c] for c in key) for r in want["rows"]]
    if gk != wk:
        problems.append(f"cells differ: {len(set(gk) - set(wk))} new, {len(set(wk) - set(gk))} missing "
                        f"(first new: {sorted(set(gk) - set(wk))[:3]}, first missing: {sorted(set(wk) - set(gk))[:3]})")
        return problems
    groups: dict[str, dict[str, str]] = {c: {} for c in WEIGHT_KEYS}
    for g, w in zip(got["rows"], want["rows"]):
        cell = tuple(w[c] for c in key)
        for c, kind in want["kinds"].items():
            if c in want["volatile"]:
                continue
            a, b = g[c], w[c]
            if c in WEIGHT_KEYS and not strict and _trained(w):
                seen = groups[c].setdefault(b, a)
                ok = seen == a and list(groups[c].values()).count(a) == 1
            elif c in JSON_FLOATS and not strict:
                ok = _close(json.loads(a), json.loads(b), rtol, atol) if a and b else a == b
            elif kind == "float":
                ok = _same_float(a, b) if strict else _close(a, b, rtol, atol)
            else:
                ok = a == b
            if not ok:
                problems.append(f"{c} of cell {cell}: got {a!r}, golden {b!r}")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--from", dest="src", help="an existing results directory of the tiny demo (default: run it)")
    ap.add_argument("--out", default=None, help=f"where to write (default: this CPU class's file, "
                                                f"{golden_path().name} here)")
    args = ap.parse_args(argv)
    from wmprobe.records import read_records
    if args.src:
        df = read_records(args.src)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            df = read_records(run_tiny(Path(tmp) / "out", Path(tmp) / "cache"))
    out = Path(args.out) if args.out else golden_path()
    out.write_text(dump(table(df)))
    print(f"wrote {out} (CPU class {cpu_class()}): {len(df)} rows x {len(df.columns)} columns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
