"""Data loss (issue 18): wmprobe never deletes or writes into a directory it did not write. Generated and imported
stores, LeRobot exports, features, results and cache roots carry a ``.wmprobe.json`` marker; anything else that
is not empty is refused with exit 2 and left byte for byte as it was; a marked directory is replaced only after
the new content is complete; modes follow the umask."""
from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import moving_square_store, write_tiny_store
from wmprobe._dest import MARKER, DestinationError, dir_kind, read_marker
from wmprobe.cli import main
from wmprobe.data.store import EpisodeStore, write_store


def run_cli(capsys, *args) -> tuple[int, str]:
    code = main(["--quiet", *map(str, args)])
    cap = capsys.readouterr()
    return code, cap.err + cap.out


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes), and every directory (-> b'<dir>')."""
    return {str(p.relative_to(root)): (b"<dir>" if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


@pytest.fixture
def precious(tmp_path) -> Path:
    """A user's directory that wmprobe did not write (including a ``data/`` folder, as a cache has)."""
    d = tmp_path / "precious"
    (d / "data" / "old-experiment").mkdir(parents=True)
    (d / "thesis.tex").write_text("three years of work")
    (d / "data" / "old-experiment" / "meta.json").write_text("{}")
    old = time.time() - 400 * 86400
    for p in [d, *d.rglob("*")]:
        os.utime(p, (old, old))
    return d


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("src") / "square"
    write_tiny_store(path, episodes=8, steps=6, size=16, tasks=4)
    return path


# ---- refused: a directory wmprobe did not write -------------------------------------------------------------
def test_gen_into_a_foreign_directory_is_refused_before_generating(precious, capsys):
    before = snapshot(precious)
    for extra in ([], ["--force"]):
        code, err = run_cli(capsys, "data", "gen", "dynamic", precious, "--episodes", "2", *extra)
        assert code == 2 and str(precious) in err and "not an EpisodeStore" in err and MARKER in err, err
        assert "choose a new or empty directory" in err
    assert snapshot(precious) == before


def test_import_into_a_foreign_directory_is_refused(precious, store, capsys):
    before = snapshot(precious)
    code, err = run_cli(capsys, "data", "import", store, precious)
    assert code == 2 and "not an EpisodeStore" in err, err
    assert snapshot(precious) == before


def test_export_over_a_lerobot_dataset_wmprobe_did_not_write(tmp_path, store, capsys):
    """A LeRobot dataset from the hub (meta/info.json without wmprobe's key, a README) is never replaced."""
    hub = tmp_path / "hub"
    (hub / "meta").mkdir(parents=True)
    (hub / "meta" / "info.json").write_text(json.dumps({"codebase_version": "v3.0", "fps": 10}))
    (hub / "README.md").write_text("dataset card")
    before = snapshot(hub)
    code, err = run_cli(capsys, "data", "export", store, hub)
    assert code == 2 and "not a LeRobot dataset written by" in err, err
    assert snapshot(hub) == before


def test_cache_gc_refuses_a_directory_that_is_not_a_cache(precious, capsys):
    before = snapshot(precious)
    for days in ("0", "30"):
        code, err = run_cli(capsys, "cache", "gc", "--cache", precious, "--keep-days", days)
        assert code == 2 and "not a wmprobe cache" in err and "refusing to delete" in err, err
    assert snapshot(precious) == before


@pytest.mark.parametrize("days", ["-5", "-0.001", "nan", "inf"])
def test_cache_gc_negative_or_non_finite_age_is_a_usage_error(tmp_path, days, capsys):
    from wmprobe.study.cache import Cache
    c = Cache(tmp_path / "cache")
    c.put_cell("k", [{"r2": 1.0}], {})
    before = snapshot(c.root)
    code, err = run_cli(capsys, "cache", "gc", "--cache", c.root, "--keep-days", days)
    assert code == 2 and "keep-days" in err, err
    assert snapshot(c.root) == before


def test_results_into_a_foreign_directory_refused_before_any_work(precious, store, tmp_path, capsys):
    before = snapshot(precious)
    z = tmp_path / "z.npy"
    np.save(z, np.random.default_rng(0).normal(size=(48, 4)).astype(np.float32))
    code, err = run_cli(capsys, "probe", "--latents", z, "--store", store, "--probe", "ridge", "--out", precious)
    assert code == 2 and "not a wmprobe results directory" in err, err
    study = tmp_path / "s.yaml"
    study.write_text(f"name: s\nencoders: [pixels]\ndatasets: [{{name: sq, path: {store}}}]\nprobes: [ridge]\n")
    code, err = run_cli(capsys, "run", study, "--out", precious, "--cache", tmp_path / "cache")
    assert code == 2 and "not a wmprobe results directory" in err, err
    assert snapshot(precious) == before


def test_extract_into_a_foreign_directory_is_refused(precious, store, capsys):
    before = snapshot(precious)
    code, err = run_cli(capsys, "extract", "pixels", store, "--out", precious)
    assert code == 2 and "not a features directory" in err, err
    assert snapshot(precious) == before


def test_a_foreign_cache_root_is_refused(precious, store, capsys):
    from wmprobe.study.cache import Cache
    before = snapshot(precious)
    with pytest.raises(DestinationError, match="not a wmprobe cache"):
        Cache(precious)
    code, err = run_cli(capsys, "zoo", "train", "vae", "--data", store, "--preset", "tiny", "--cache", precious)
    assert code == 2 and "not a wmprobe cache" in err, err
    assert snapshot(precious) == before


def test_a_file_as_destination_is_refused(tmp_path, store, capsys):
    f = tmp_path / "notes.txt"
    f.write_text("keep me")
    for args in (("data", "import", store, f), ("data", "export", store, f), ("extract", "pixels", store, "--out", f)):
        code, err = run_cli(capsys, *args)
        assert code == 2 and "is a file" in err, (args, err)
    assert f.read_text() == "keep me"


def test_a_directory_of_another_kind_is_refused(tmp_path, store, capsys):
    """An import over a LeRobot export, an export over a store, features over a store: the kinds never mix."""
    lr = tmp_path / "lr"
    assert run_cli(capsys, "data", "export", store, lr)[0] == 0
    assert read_marker(lr)["kind"] == "lerobot"
    before = snapshot(lr)
    code, err = run_cli(capsys, "data", "import", store, lr)
    assert code == 2 and "it is a LeRobot dataset written by" in err, err
    assert snapshot(lr) == before
    s2 = tmp_path / "s2"
    write_store(s2, *_arrays(moving_square_store(episodes=2, steps=4, size=16)))
    before = snapshot(s2)
    for args in (("data", "export", store, s2), ("extract", "pixels", store, "--out", s2)):
        code, err = run_cli(capsys, *args)
        assert code == 2 and "it is an EpisodeStore" in err, (args, err)
    assert snapshot(s2) == before


# ---- replaced: a marked directory, only after the new content is complete -------------------------------------
def _arrays(s: EpisodeStore):
    return s.frames, s.actions, s.episode_ends, s.tasks, s.meta


def test_marked_store_is_replaced_only_after_the_new_one_is_complete(tmp_path, monkeypatch):
    dest = tmp_path / "store"
    old = moving_square_store(episodes=3, steps=5, size=16, seed=0)
    write_store(dest, *_arrays(old))
    assert read_marker(dest)["kind"] == "store"
    before = snapshot(dest)
    new = moving_square_store(episodes=4, steps=5, size=16, seed=1)
    calls = {"n": 0}
    real_save = np.save

    def failing_save(path, arr, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:   # frames and actions written, then the disk "fills"
            raise OSError(28, "No space left on device")
        return real_save(path, arr, *a, **k)
    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(OSError):
        write_store(dest, *_arrays(new))
    monkeypatch.setattr(np, "save", real_save)
    assert snapshot(dest) == before                                  # the old store, byte for byte
    assert EpisodeStore.load(dest).fingerprint == old.fingerprint
    assert [p.name for p in tmp_path.iterdir()] == ["store"]         # no temp directory left behind
    write_store(dest, *_arrays(new))                                  # and a write that completes replaces it
    assert EpisodeStore.load(dest).fingerprint == new.fingerprint and read_marker(dest)["kind"] == "store"


def test_interrupted_import_over_a_store_keeps_the_old_one(tmp_path, store, monkeypatch):
    from wmprobe.data.formats import _common, import_dataset
    dest = tmp_path / "imported"
    import_dataset(store, dest, progress=False, max_episodes=2)
    before = snapshot(dest)
    real = _common.StoreWriter.add_episode

    def boom(self, *a, **k):
        if self.n_ep == 2:
            raise KeyboardInterrupt
        return real(self, *a, **k)
    monkeypatch.setattr(_common.StoreWriter, "add_episode", boom)
    with pytest.raises(KeyboardInterrupt):
        import_dataset(store, dest, progress=False)
    assert snapshot(dest) == before and sorted(p.name for p in tmp_path.iterdir()) == ["imported"]
    monkeypatch.setattr(_common.StoreWriter, "add_episode", real)
    import_dataset(store, dest, progress=False)
    assert EpisodeStore.load(dest).n_episodes == 8


def test_a_marked_directory_with_extra_files_is_not_replaced(tmp_path, store, capsys):
    """The issue's case: a store or an export that also holds the user's files. Replacing it would delete them,
    so it is refused, naming them; --force does not change that."""
    dest = tmp_path / "imported"
    assert run_cli(capsys, "data", "import", store, dest)[0] == 0
    (dest / "notes.md").write_text("my notes")
    before = snapshot(dest)
    code, err = run_cli(capsys, "data", "import", store, dest)
    assert code == 2 and "notes.md" in err and "would delete them" in err, err
    assert snapshot(dest) == before
    lr = tmp_path / "lr"
    assert run_cli(capsys, "data", "export", store, lr)[0] == 0
    (lr / "README.md").write_text("card")
    code, err = run_cli(capsys, "data", "export", store, lr)
    assert code == 2 and "README.md" in err, err
    assert (lr / "README.md").read_text() == "card"


def test_gen_force_replaces_only_a_marked_store(tmp_path, capsys):
    pytest.importorskip("pybullet")
    dest = tmp_path / "gen"
    args = ("data", "gen", "static", dest, "--episodes", "1", "--steps", "3", "--size", "16", "--workers", "1")
    assert run_cli(capsys, *args)[0] == 0
    assert read_marker(dest)["kind"] == "store"
    first = EpisodeStore.load(dest).fingerprint
    code, out = run_cli(capsys, *args)
    assert code == 0 and "up to date" in out
    assert run_cli(capsys, *args, "--force")[0] == 0 and EpisodeStore.load(dest).fingerprint == first


def test_empty_directories_are_fine(tmp_path, store, capsys):
    for name in ("imp", "exp", "feat", "res", "cache"):
        (tmp_path / name).mkdir()
    assert run_cli(capsys, "data", "import", store, tmp_path / "imp")[0] == 0
    assert run_cli(capsys, "data", "export", store, tmp_path / "exp")[0] == 0
    assert run_cli(capsys, "extract", "pixels", store, "--out", tmp_path / "feat",
                   "--encoder-option", "size=8")[0] == 0
    z = tmp_path / "z.npy"
    np.save(z, np.random.default_rng(0).normal(size=(48, 4)).astype(np.float32))
    code, err = run_cli(capsys, "probe", "--latents", z, "--store", store, "--probe", "ridge", "--seeds", "0",
                        "--out", tmp_path / "res")
    assert code == 0, err
    from wmprobe.study.cache import Cache
    Cache(tmp_path / "cache")
    assert {n: dir_kind(tmp_path / n) for n in ("imp", "exp", "feat", "res", "cache")} == \
        {"imp": "store", "exp": "lerobot", "feat": "features", "res": "results", "cache": "cache"}
    # and each is written again in place (results merge, the others are replaced)
    assert run_cli(capsys, "data", "import", store, tmp_path / "imp")[0] == 0
    assert run_cli(capsys, "data", "export", store, tmp_path / "exp")[0] == 0
    assert run_cli(capsys, "probe", "--latents", z, "--store", store, "--probe", "ridge", "--seeds", "1",
                   "--out", tmp_path / "res")[0] == 0


# ---- written before markers existed: recognised by layout --------------------------------------------------
def test_unmarked_legacy_directories_keep_working(tmp_path, store, capsys):
    from wmprobe.study.cache import Cache, cache_gc
    legacy = tmp_path / "legacy"
    write_store(legacy, *_arrays(moving_square_store(episodes=2, steps=4, size=16)))
    (legacy / MARKER).unlink()
    assert dir_kind(legacy) == "store"
    assert run_cli(capsys, "data", "import", store, legacy)[0] == 0 and read_marker(legacy)["kind"] == "store"
    cache = tmp_path / "oldcache"
    c = Cache(cache)
    c.put_cell("k", [{"r2": 1.0}], {})
    (cache / MARKER).unlink()
    old = time.time() - 100 * 86400
    os.utime(c.cell_path("k"), (old, old))
    assert dir_kind(cache) == "cache"
    assert cache_gc(cache, keep_days=30).startswith("1 entries") and not c.cell_path("k").exists()
    assert read_marker(cache)["kind"] == "cache"


def test_cache_gc_on_a_missing_cache_or_a_file(tmp_path, capsys):
    code, out = run_cli(capsys, "cache", "gc", "--cache", tmp_path / "never-made")
    assert code == 0 and "0 entries" in out and not (tmp_path / "never-made").exists()
    (tmp_path / "f").write_text("x")
    code, err = run_cli(capsys, "cache", "gc", "--cache", tmp_path / "f")
    assert code == 2 and "not a wmprobe cache" in err and (tmp_path / "f").read_text() == "x"


def test_cache_gc_on_a_marked_cache_still_works(tmp_path, capsys):
    from wmprobe.study.cache import Cache
    c = Cache(tmp_path / "cache")
    c.put_cell("old", [{"r2": 1.0}], {})
    c.put_cell("new", [{"r2": 2.0}], {})
    old = time.time() - 60 * 86400
    os.utime(c.cell_path("old"), (old, old))
    code, out = run_cli(capsys, "cache", "gc", "--cache", c.root, "--keep-days", "30")
    assert code == 0 and "removed 1 entries" in out, out
    assert not c.cell_path("old").exists() and c.cell_path("new").exists() and (c.root / MARKER).exists()


# ---- modes follow the umask ---------------------------------------------------------------------------------
@pytest.fixture
def umask():
    def set_(mask: int) -> None:
        os.umask(mask)
    old = os.umask(0o022)
    yield set_
    os.umask(old)


def modes(root: Path) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {"dirs": set(), "files": set()}
    for p in [root, *root.rglob("*")]:
        if p.is_symlink():
            continue
        out["dirs" if p.is_dir() else "files"].add(oct(stat.S_IMODE(p.stat().st_mode)))
    return out


@pytest.mark.parametrize("mask, dmode, fmode", [(0o022, "0o755", "0o644"), (0o002, "0o775", "0o664"),
                                                (0o077, "0o700", "0o600")])
def test_everything_written_follows_the_umask(tmp_path, store, umask, mask, dmode, fmode, capsys):
    umask(mask)
    from wmprobe.data.formats import export_lerobot, import_dataset
    from wmprobe.probes.api import probe
    from wmprobe.report import build_report
    from wmprobe.study.cache import Cache
    write_tiny_store(tmp_path / "store", episodes=4, steps=6, size=16)
    import_dataset(store, tmp_path / "imported", progress=False)
    export_lerobot(store, tmp_path / "lerobot")
    assert run_cli(capsys, "extract", "pixels", store, "--out", tmp_path / "feat", "--encoder-option", "size=8")[0] == 0
    z = np.random.default_rng(0).normal(size=(48, 4)).astype(np.float32)
    probe(z, store, probe="ridge", seeds=(0,), out=tmp_path / "results")
    build_report(tmp_path / "results")
    c = Cache(tmp_path / "cache")
    c.put_cell("k", [{"r2": 1.0}], {})
    with c.lock("k"):
        pass
    for name in ("store", "imported", "lerobot", "feat", "results", "cache"):
        assert modes(tmp_path / name) == {"dirs": {dmode}, "files": {fmode}}, (name, modes(tmp_path / name))


def test_a_link_to_a_store_is_replaced_where_it_points(tmp_path, store, capsys):
    """``data/dyn -> /scratch/dyn``: the store on the other disk is replaced, the link stays a link."""
    from wmprobe.data.formats import import_dataset
    real = tmp_path / "scratch" / "dyn"
    import_dataset(store, real, progress=False, max_episodes=2)
    (tmp_path / "data").mkdir()
    link = tmp_path / "data" / "dyn"
    link.symlink_to(real, target_is_directory=True)
    assert run_cli(capsys, "data", "import", store, link)[0] == 0
    assert link.is_symlink() and EpisodeStore.load(real).n_episodes == 8
    assert sorted(p.name for p in (tmp_path / "scratch").iterdir()) == ["dyn"]     # nothing left beside it
    write_store(link, *_arrays(moving_square_store(episodes=2, steps=4, size=16)))
    assert link.is_symlink() and EpisodeStore.load(real).n_episodes == 2


def test_a_broken_link_as_destination_is_refused(tmp_path, store, capsys):
    link = tmp_path / "dangling"
    link.symlink_to(tmp_path / "nowhere", target_is_directory=True)
    code, err = run_cli(capsys, "data", "import", store, link)
    assert code == 2 and "broken symbolic link" in err, err
    assert link.is_symlink() and not (tmp_path / "nowhere").exists()


def test_a_failed_swap_puts_the_old_directory_back(tmp_path, monkeypatch):
    """The rename of the new content into place fails (say, EXDEV or a full inode table): the old directory,
    already renamed aside, is renamed back, and the error is raised."""
    import wmprobe._fs as fs
    dest = tmp_path / "store"
    old = moving_square_store(episodes=2, steps=4, size=16)
    write_store(dest, *_arrays(old))
    before = snapshot(dest)
    real, calls = os.rename, {"n": 0}

    def second_fails(a, b):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(18, "Invalid cross-device link")
        return real(a, b)
    monkeypatch.setattr(fs.os, "rename", second_fails)
    with pytest.raises(OSError):
        write_store(dest, *_arrays(moving_square_store(episodes=3, steps=4, size=16, seed=2)))
    monkeypatch.undo()
    assert snapshot(dest) == before and [p.name for p in tmp_path.iterdir()] == ["store"]
