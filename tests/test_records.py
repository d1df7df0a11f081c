import math

import pandas as pd
import pytest
import yaml

from wmprobe.errors import WmprobeError
from wmprobe.records import CELL_KEY, RECORD_COLUMNS, read_records, write_records


def row(enc="pixels", seed=0, r2=0.5, **kw):
    return dict(encoder=enc, family="pixels", dataset="d", split="task", corruption="clean", layer="out",
                probe="mlp", k=1, seed=seed, r2=r2, **kw)


def test_rows_have_every_column_and_provenance(tmp_path):
    write_records([row(), row(seed=1)], tmp_path, {"seed": 0, "layers": ("a", "b")})
    df = read_records(tmp_path)
    assert list(df.columns[: len(RECORD_COLUMNS)]) == list(RECORD_COLUMNS)
    assert len(df) == 2 and math.isnan(df.loc[0, "r2_gripper"])
    csv = pd.read_csv(tmp_path / "records.csv")
    assert csv["r2"].tolist() == df["r2"].tolist()
    cfg = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert cfg["config"]["layers"] == ["a", "b"]
    assert cfg["provenance"]["versions"]["torch"].startswith("2.13")


def test_rerun_replaces_cells_instead_of_duplicating(tmp_path):
    write_records([row(r2=0.1), row(seed=1)], tmp_path)
    write_records([row(r2=0.9), row(enc="random-conv")], tmp_path)
    df = read_records(tmp_path)
    assert len(df) == 3
    assert df[(df.encoder == "pixels") & (df.seed == 0)].r2.item() == 0.9


def test_identical_inputs_give_identical_files(tmp_path):
    rows = [row(enc=e, seed=s, r2=s / 10) for e in ("b", "a") for s in (2, 0)]
    write_records(rows, tmp_path / "x")
    write_records(list(reversed(rows)), tmp_path / "y")
    assert (tmp_path / "x" / "records.csv").read_bytes() == (tmp_path / "y" / "records.csv").read_bytes()
    assert read_records(tmp_path / "x")[list(CELL_KEY)].values.tolist()[0][0] == "a"


def test_missing_records_is_a_clear_error(tmp_path):
    with pytest.raises(WmprobeError, match="no records at"):
        read_records(tmp_path)
    (tmp_path / "records.parquet").write_bytes(b"garbage")
    with pytest.raises(WmprobeError, match="unreadable"):
        read_records(tmp_path)


def test_every_row_says_where_and_with_what_code_it_was_computed(tmp_path):
    import socket

    from wmprobe.records import ROW_PROVENANCE
    write_records([row(), {**row(seed=1), "host": "node-17", "git_commit": "abc123"}], tmp_path)
    df = read_records(tmp_path).set_index("seed")
    assert set(ROW_PROVENANCE) <= set(df.columns)
    assert df.loc[0, "host"] == socket.gethostname() and df.loc[0, "torch_version"].startswith("2.13")
    assert df.loc[0, "wmprobe_version"] != ""
    assert (df.loc[1, "host"], df.loc[1, "git_commit"]) == ("node-17", "abc123")   # a worker's own stamp is kept
    write_records([row(seed=2)], tmp_path)                                            # a later run merges in
    assert read_records(tmp_path).set_index("seed").loc[1, "host"] == "node-17"


def test_records_written_before_the_headline_columns_still_read_and_merge(tmp_path):
    """Records from before ``headline_groups`` / ``acc_gripper`` / ``bacc_gripper`` read with those columns
    empty, and new rows merge into them (old cells keep their numbers)."""
    new_cols = ("headline_groups", "acc_gripper", "bacc_gripper")
    write_records([row(seed=s, r2=0.1 * s) for s in range(2)], tmp_path)
    old = pd.read_parquet(tmp_path / "records.parquet")
    old.drop(columns=list(new_cols)).to_parquet(tmp_path / "records.parquet", index=False)
    df = read_records(tmp_path)
    assert set(new_cols) <= set(df.columns) and (df["headline_groups"] == "").all() and df["acc_gripper"].isna().all()
    write_records([row(seed=5, r2=0.7, headline_groups="translation", acc_gripper=0.9, bacc_gripper=0.6)], tmp_path)
    df = read_records(tmp_path).set_index("seed")
    assert df.loc[5, "headline_groups"] == "translation" and df.loc[5, "bacc_gripper"] == 0.6
    assert df.loc[1, "r2"] == pytest.approx(0.1) and df.loc[1, "headline_groups"] == ""
    assert pd.read_csv(tmp_path / "records.csv")["headline_groups"].fillna("").tolist() == ["", "", "translation"]


def test_the_record_schema_gives_the_columns_their_kinds_and_defaults(tmp_path):
    """Columns, kinds and defaults come from records.Record: a row measuring nothing gets each column's
    default, typed, in the written files."""
    from dataclasses import fields

    from wmprobe.records import COLUMN_KINDS, Record
    assert RECORD_COLUMNS == tuple(f.name for f in fields(Record)) and set(CELL_KEY) <= set(RECORD_COLUMNS)
    assert COLUMN_KINDS["k"] is int and COLUMN_KINDS["r2"] is float and COLUMN_KINDS["encoder"] is str
    write_records([{"encoder": "e", "dataset": "d", "probe": "mlp"}], tmp_path)
    got = read_records(tmp_path).iloc[0]
    assert got["k"] == -1 and got["seed"] == -1 and got["id_weight"] == 0.0 and got["layer"] == ""
    assert math.isnan(got["r2"]) and got["error"] == ""


def test_one_row_builder_starts_from_what_was_measured():
    from wmprobe.records import Source
    from wmprobe.records import row as build
    src = Source("zoo:vae", "vae", "dynamic", "task", 1.0, "ekey", "fp")
    r = build(src, {"r2": 0.5, "r2_extra_group": 0.1}, corruption="clean", k=4, train_corruption="blur:11")
    assert r == {"encoder": "zoo:vae", "family": "vae", "id_weight": 1.0, "dataset": "dynamic", "split": "task",
                 "encoder_key": "ekey", "dataset_fingerprint": "fp", "r2": 0.5, "r2_extra_group": 0.1,
                 "corruption": "clean", "k": 4, "train_corruption": "blur:11"}
    assert build(r, seed=2)["seed"] == 2 and "seed" not in r          # extends a row without changing it
    with pytest.raises(ValueError, match="not record columns: \\['corruptoin'\\]"):
        build(src, corruptoin="clean")
