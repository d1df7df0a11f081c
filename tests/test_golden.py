"""The golden test of issue 20: the ``tiny`` preset's records (seed 0) are those in the golden file of this
machine's CPU class (tests/golden/tiny_records.json for AVX512, tiny_records.CLASS.json for others: regen.py says
why one file cannot serve every CPU).

Every column name and its order, every cell (key values) and every text and integer value must match exactly;
floats within rtol 1e-6 / atol 1e-9 (another machine of the same class may still differ in the last bits),
or bit for bit with ``WMPROBE_GOLDEN_STRICT=1`` (for a refactor on one machine). Wall time and provenance
columns are left aside. When a change moves the numbers ON PURPOSE, regenerate the file
(``PYTHONPATH=src python tests/golden/regen.py``, see its doc) and say why in the commit message.
"""
import os

import pytest

from golden.regen import compare, cpu_class, golden_path, load, table
from wmprobe.records import read_records


@pytest.mark.slow
def test_tiny_preset_records_match_the_golden_file(tiny_demo):
    if not golden_path().exists():
        pytest.skip(f"no golden records for CPU class {cpu_class()}: write {golden_path().name} with "
                    "`PYTHONPATH=src python tests/golden/regen.py` on a commit whose records are known good")
    out, _, _ = tiny_demo
    strict = os.environ.get("WMPROBE_GOLDEN_STRICT", "") not in ("", "0")
    got = table(read_records(out))
    problems = compare(got, load(), strict=strict)
    assert not problems, (f"{len(problems)} difference(s) from tests/golden/{golden_path().name} "
                          f"({'strict' if strict else 'tolerant'}):\n" + "\n".join(problems[:20]))


def _doc():
    return load("AVX512")


def test_the_comparison_catches_what_it_must():
    """The comparison itself: a moved float, a renamed column, a lost cell and a changed text all fail; a
    last-bit float change passes unless strict."""
    want = _doc()
    assert compare(want, want, strict=True) == []
    i = next(n for n, r in enumerate(want["rows"]) if r["r2"] == r["r2"])     # a row with a finite r2

    def changed(**kw):
        import copy
        doc = copy.deepcopy(want)
        doc["rows"][i].update(kw)
        return doc

    r2 = want["rows"][i]["r2"]
    tiny = changed(r2=r2 * (1 + 1e-12) if r2 else 1e-13)
    assert compare(tiny, want, strict=False) == [] and compare(tiny, want, strict=True)
    assert compare(changed(r2=r2 + 1e-3), want, strict=False)
    import json
    cfg = json.loads(want["rows"][i]["probe_config"])
    assert compare(changed(probe_config=json.dumps({**cfg, "probe": "other"})), want, strict=False)
    assert compare(changed(n_train=want["rows"][i]["n_train"] + 1), want, strict=False)
    renamed = dict(want, columns=[c if c != "mse" else "MSE" for c in want["columns"]])
    assert compare(renamed, want, strict=False)
    lost = dict(want, rows=want["rows"][1:])
    assert compare(lost, want, strict=False)


@pytest.mark.parametrize("strict", [False, True])
def test_the_golden_file_is_read_back_exactly(strict):
    """Floats survive the JSON file bit for bit (repr round-trips), NaN included."""
    from golden.regen import dump
    import json
    want = _doc()
    assert compare(json.loads(dump(want)), want, strict=strict) == []


def test_every_cpu_class_golden_file_has_the_same_columns_and_cells():
    """The per-class files differ only in numbers (and the hashes of data and weights): a change that adds a
    column or a cell regenerates every class's file, or this fails on every machine."""
    from golden.regen import HERE
    import json
    want = load("AVX512")
    key = want["key"]
    for path in sorted(HERE.glob("tiny_records.*.json")):
        doc = json.loads(path.read_text())
        assert path.name == golden_path(doc["cpu_class"]).name
        for field in ("command", "columns", "kinds", "key", "volatile"):
            assert doc[field] == want[field], (path.name, field)
        assert [[r[c] for c in key] for r in doc["rows"]] == [[r[c] for c in key] for r in want["rows"]], path.name
