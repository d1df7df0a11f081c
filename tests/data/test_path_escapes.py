"""Reading outside the dataset (issue 18): every path built from dataset metadata (LeRobot info.json templates
and image paths, CALVIN step files, LIBERO files and HDF5 links, store files) resolves inside the dataset or the
read is refused with exit 2 naming the field and the path; symbolic links out are followed only when allowed."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from helpers import write_tiny_store  # noqa: E402
from fixtures.formats import (CAM, episodes_data, write_calvin, write_lerobot_v3, write_lerobot_v21,  # noqa: E402
                          write_libero, write_mp4)
from wmprobe.cli import main  # noqa: E402
from wmprobe.data.formats import import_dataset, validate_dataset  # noqa: E402
from wmprobe.data.formats._paths import PathTemplate  # noqa: E402
from wmprobe.data.store import EpisodeStore  # noqa: E402
from wmprobe.errors import StoreError  # noqa: E402


@pytest.fixture(scope="module")
def eps():
    return episodes_data()


@pytest.fixture(autouse=True)
def _no_env_allow(monkeypatch):
    monkeypatch.delenv("WMPROBE_ALLOW_SYMLINKS_OUT", raising=False)


def set_info(root: Path, **fields) -> None:
    f = root / "meta" / "info.json"
    info = json.loads(f.read_text())
    info.update(fields)
    f.write_text(json.dumps(info))


def run_cli(capsys, *args) -> tuple[int, str]:
    code = main(["--quiet", *map(str, args)])
    cap = capsys.readouterr()
    return code, cap.err + cap.out


def outside_copy(root: Path, tmp_path: Path) -> Path:
    """A complete, valid copy of a v3 dataset's data and video outside the dataset (what an escape would read)."""
    out = tmp_path / "outside"
    shutil.copytree(root / "data", out / "data")
    shutil.copytree(root / "videos", out / "videos")
    return out


@pytest.fixture
def v3(tmp_path, eps):
    return write_lerobot_v3(tmp_path / "ds", eps)


# ---- templates ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("template, needle", [
    ("{chunk_index.__class__.__mro__}/x.parquet", "attribute or index access"),
    ("data/{chunk_index[0]}/x.parquet", "attribute or index access"),
    ("data/{bogus}/file.parquet", "{bogus}: unknown field"),
    ("data/{}.parquet", "positional"),
    ("data/{0}.parquet", "positional"),
    ("data/{file_index!r}.parquet", "conversion"),
    ("data/{file_index:>40}.parquet", "zero-padding"),
    ("data/{file_index:0999999d}.parquet", "zero-padding"),
    ("data/{file_index:{chunk_index}}.parquet", "zero-padding"),
    ("data/{file_index", "not a valid path template"),
    ("/etc/{file_index}.parquet", "absolute path"),
    (5, "non-empty string"),
])
def test_bad_templates_are_refused_naming_field_and_file(v3, capsys, template, needle, tmp_path):
    set_info(v3, data_path=template)
    code, err = run_cli(capsys, "data", "import", v3, tmp_path / "out")
    assert code == 2, err
    assert needle in err and "data_path" in err and "info.json" in err, err
    assert "internal error" not in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_template_fields_and_padding_format_as_lerobot_does():
    t = PathTemplate("videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4", "video_path", "info")
    assert t.format(video_key="cam", chunk_index=2, file_index=17) == "videos/cam/chunk-002/file-017.mp4"
    t = PathTemplate("data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet", "data_path", "info")
    assert t.format(episode_chunk=0, episode_index=42) == "data/chunk-000/episode_000042.parquet"
    assert PathTemplate("a/{episode_index}_{{literal}}.parquet", "data_path", "i").format(episode_index=3) == \
        "a/3_{literal}.parquet"


# ---- absolute paths and '..' ---------------------------------------------------------------------------------
def test_absolute_data_path_to_a_valid_outside_parquet_is_refused(v3, tmp_path, capsys):
    out = outside_copy(v3, tmp_path)
    set_info(v3, data_path=str(out) + "/data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet")
    code, err = run_cli(capsys, "data", "import", v3, tmp_path / "store")
    assert code == 2 and "data_path" in err and "absolute path" in err, err
    assert not (tmp_path / "store").exists()


def test_dotdot_data_path_is_refused_even_with_the_flag(v3, tmp_path, capsys):
    outside_copy(v3, tmp_path)
    set_info(v3, data_path="../outside/data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet")
    for extra in ([], ["--allow-symlinks-out"]):
        code, err = run_cli(capsys, "data", "import", v3, tmp_path / "store", *extra)
        assert code == 2 and "data_path" in err and "'..'" in err and "../outside" in err, err
    problems = validate_dataset(v3)
    assert problems and all("'..'" in p for p in problems)


def test_dotdot_video_path_v21_is_refused(tmp_path, eps, capsys):
    root = write_lerobot_v21(tmp_path / "v21", eps)
    set_info(root, video_path="videos/../../../../../../etc/{video_key}.mp4")
    code, err = run_cli(capsys, "data", "import", root, tmp_path / "store")
    assert code == 2 and "video_path" in err and "'..'" in err, err


def test_a_camera_key_that_climbs_out_is_refused(tmp_path, eps, capsys):
    """``{video_key}`` comes from info.json's feature names: '../..' there is refused like in the template."""
    root = write_lerobot_v21(tmp_path / "v21", eps)
    info = json.loads((root / "meta" / "info.json").read_text())
    bad = "../../outside"
    info["features"][bad] = info["features"].pop(CAM)
    (root / "meta" / "info.json").write_text(json.dumps(info))
    code, err = run_cli(capsys, "data", "import", root, tmp_path / "store", "--camera", bad)
    assert code == 2 and "'..'" in err, err


def test_image_paths_inside_parquet_are_confined(tmp_path, eps, capsys):
    """Image features whose bytes are missing fall back to their ``path``: an absolute or '..' path is refused."""
    root = write_lerobot_v3(tmp_path / "img", eps, image=True)
    secret = tmp_path / "secret.png"
    from fixtures.formats import png
    secret.write_bytes(png(eps[0][0][0]))
    for target in (str(secret), "../secret.png"):
        for f in sorted((root / "data").rglob("*.parquet")):
            t = pq.read_table(f)
            col = pa.array([{"bytes": None, "path": target}] * len(t),
                           pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
            pq.write_table(t.set_column(t.column_names.index(CAM), CAM, col), f)
        code, err = run_cli(capsys, "data", "import", root, tmp_path / "store")
        assert code == 2 and "image path" in err and target in err, err
        assert not (tmp_path / "store").exists()


# ---- symbolic links -----------------------------------------------------------------------------------------
def test_symlink_out_is_refused_and_allowed_with_the_flag(v3, tmp_path, capsys, eps):
    out = outside_copy(v3, tmp_path)
    shutil.rmtree(v3 / "data")
    (v3 / "data").symlink_to(out / "data", target_is_directory=True)
    code, err = run_cli(capsys, "data", "import", v3, tmp_path / "store")
    assert code == 2 and "symbolic link" in err and "--allow-symlinks-out" in err and "data_path" in err, err
    assert not (tmp_path / "store").exists()
    code, out_text = run_cli(capsys, "data", "validate", v3)
    assert code == 1 and "symbolic link" in out_text
    code, err = run_cli(capsys, "data", "import", v3, tmp_path / "store", "--allow-symlinks-out")
    assert code == 0, err
    assert EpisodeStore.load(tmp_path / "store").n_episodes == len(eps)
    assert run_cli(capsys, "data", "validate", v3, "--allow-symlinks-out")[0] == 0


def test_symlink_out_allowed_by_environment(v3, tmp_path, monkeypatch):
    out = outside_copy(v3, tmp_path)
    shutil.rmtree(v3 / "videos")
    (v3 / "videos").symlink_to(out / "videos", target_is_directory=True)
    with pytest.raises(StoreError, match="video_path.*symbolic link"):
        import_dataset(v3, tmp_path / "a", progress=False)
    monkeypatch.setenv("WMPROBE_ALLOW_SYMLINKS_OUT", "1")
    assert import_dataset(v3, tmp_path / "b", progress=False).is_dir()


def test_symlinked_metadata_file_is_refused(v3, tmp_path, capsys):
    """meta/info.json itself as a link to a file outside (a JSON one, so it would parse): refused."""
    outside = tmp_path / "elsewhere.json"
    shutil.move(v3 / "meta" / "info.json", outside)
    (v3 / "meta" / "info.json").symlink_to(outside)
    code, err = run_cli(capsys, "data", "info", v3)
    assert code == 2 and "symbolic link" in err, err
    assert run_cli(capsys, "data", "info", v3, "--allow-symlinks-out")[0] == 0


def test_a_link_inside_the_dataset_is_fine(v3, tmp_path, eps):
    """Links that stay inside the dataset (a deduplicated file, say) need no flag."""
    f = v3 / "data" / "chunk-000" / "file-001.parquet"
    shutil.move(f, v3 / "shared.parquet")
    f.symlink_to(v3 / "shared.parquet")
    assert EpisodeStore.load(import_dataset(v3, tmp_path / "s", progress=False)).n_episodes == len(eps)


def test_video_that_is_a_playlist_of_an_outside_file_is_not_followed(v3, tmp_path, eps, capsys):
    """An .mp4 holding an HLS playlist that names a valid outside video is an unreadable video, never imported
    (the demuxer is chosen from the suffix, never probed from the content)."""
    outside = tmp_path / "outside.mp4"
    write_mp4(outside, np.concatenate([eps[0][0], eps[1][0]]))
    vid = v3 / "videos" / CAM / "chunk-000" / "file-000.mp4"
    vid.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile://{outside}\n#EXT-X-ENDLIST\n")
    code, err = run_cli(capsys, "data", "import", v3, tmp_path / "store")
    assert code == 2 and "file-000.mp4" in err, err
    assert not (tmp_path / "store").exists()


def test_video_suffix_outside_the_known_containers_is_refused(v3, tmp_path, capsys):
    """A video_path naming playlists (.m3u8) or scripts: FFmpeg would open what they list; refused by suffix."""
    for f in sorted((v3 / "videos").rglob("*.mp4")):
        f.rename(f.with_suffix(".m3u8"))
    set_info(v3, video_path="videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.m3u8")
    code, err = run_cli(capsys, "data", "import", v3, tmp_path / "store")
    assert code == 2 and "file-000.m3u8" in err and "refusing to open it" in err, err


def test_chunks_size_not_a_number_is_a_clear_error(tmp_path, eps, capsys):
    root = write_lerobot_v21(tmp_path / "v21", eps)
    for bad in ("x", -3, [1]):
        set_info(root, chunks_size=bad)
        code, err = run_cli(capsys, "data", "import", root, tmp_path / "store")
        assert code == 2 and "chunks_size" in err, err


# ---- CALVIN -------------------------------------------------------------------------------------------------
def test_calvin_step_file_linked_out(tmp_path, eps, capsys):
    root = write_calvin(tmp_path / "calvin", eps)
    step = sorted((root / "training").glob("episode_*.npz"))[3]
    shutil.move(step, tmp_path / step.name)
    step.symlink_to(tmp_path / step.name)
    code, err = run_cli(capsys, "data", "import", root, tmp_path / "store")
    assert code == 2 and step.name in err and "symbolic link" in err, err
    code, err = run_cli(capsys, "data", "import", root, tmp_path / "store", "--allow-symlinks-out")
    assert code == 0, err


def test_calvin_split_directory_linked_out(tmp_path, eps, capsys):
    real = write_calvin(tmp_path / "real", eps)
    (tmp_path / "calvin").mkdir()
    (tmp_path / "calvin" / "training").symlink_to(real / "training", target_is_directory=True)
    code, err = run_cli(capsys, "data", "validate", tmp_path / "calvin")
    assert code == 1 and "symbolic link" in err, err
    assert run_cli(capsys, "data", "validate", tmp_path / "calvin", "--allow-symlinks-out")[0] == 0


# ---- LIBERO -------------------------------------------------------------------------------------------------
def _libero(tmp_path, eps):
    return write_libero(tmp_path / "libero", {"pick the cube": eps[:2]})


def test_libero_file_linked_out(tmp_path, eps, capsys):
    root = _libero(tmp_path, eps)
    f = next(root.glob("*.hdf5"))
    shutil.move(f, tmp_path / f.name)
    f.symlink_to(tmp_path / f.name)
    code, err = run_cli(capsys, "data", "import", root, tmp_path / "store")
    assert code == 2 and "symbolic link" in err, err
    assert run_cli(capsys, "data", "import", root, tmp_path / "store", "--allow-symlinks-out")[0] == 0


@pytest.mark.parametrize("kind", ["external_storage", "external_link", "virtual"])
def test_libero_hdf5_that_reads_other_files_is_refused(tmp_path, eps, capsys, kind):
    """HDF5 can keep a dataset's bytes in raw external files (any file: /etc/passwd), link a group to another
    HDF5 file, or map other files virtually: never followed, with or without --allow-symlinks-out."""
    h5py = pytest.importorskip("h5py")
    root = _libero(tmp_path, eps)
    f = next(root.glob("*.hdf5"))
    raw = tmp_path / "outside.bin"
    n = len(eps[0][1])
    raw.write_bytes(np.ones((n, 7), np.float64).tobytes())
    other = tmp_path / "other.hdf5"
    with h5py.File(other, "w") as o:
        o.create_dataset("actions", data=np.ones((n, 7)))
    with h5py.File(f, "a") as h:
        g = h["data/demo_0"]
        del g["actions"]
        if kind == "external_storage":
            g.create_dataset("actions", shape=(n, 7), dtype="<f8", external=[(str(raw), 0, n * 7 * 8)])
        elif kind == "external_link":
            g["actions"] = h5py.ExternalLink(str(other), "/actions")
        else:
            layout = h5py.VirtualLayout(shape=(n, 7), dtype="<f8")
            layout[:] = h5py.VirtualSource(str(other), "actions", shape=(n, 7))
            g.create_virtual_dataset("actions", layout)
    for extra in ([], ["--allow-symlinks-out"]):
        code, err = run_cli(capsys, "data", "import", root, tmp_path / "store", *extra)
        assert code == 2 and "self-contained" in err and f.name in err, err
    assert not (tmp_path / "store").exists()


# ---- stores -------------------------------------------------------------------------------------------------
def test_store_file_linked_out(tmp_path, capsys, monkeypatch):
    store = tmp_path / "store"
    write_tiny_store(store, episodes=4, steps=6, size=16)
    shutil.move(store / "actions.npy", tmp_path / "actions.npy")
    (store / "actions.npy").symlink_to(tmp_path / "actions.npy")
    with pytest.raises(StoreError, match="actions.npy.*symbolic link"):
        EpisodeStore.load(store)
    assert EpisodeStore.load(store, allow_symlinks_out=True).n_episodes == 4
    code, out = run_cli(capsys, "data", "validate", store)
    assert code == 1 and "symbolic link" in out
    code, err = run_cli(capsys, "data", "export", store, tmp_path / "lr")
    assert code == 2 and "symbolic link" in err
    # a study names the store: `validate` flags it, and `allow_symlinks_out: true` accepts it
    from wmprobe.study.config import validate
    study = tmp_path / "study.yaml"
    study.write_text(f"name: s\nencoders: [pixels]\ndatasets: [{{name: sq, path: {store}}}]\n")
    assert any("symbolic link" in str(p) for p in validate(study))
    study.write_text(f"name: s\nencoders: [pixels]\ndatasets: [{{name: sq, path: {store}, "
                     "allow_symlinks_out: true}]\n")
    assert not any("symbolic link" in str(p) for p in validate(study))
    monkeypatch.setenv("WMPROBE_ALLOW_SYMLINKS_OUT", "1")
    assert EpisodeStore.load(store).n_episodes == 4


def test_nothing_outside_is_opened(v3, tmp_path, monkeypatch):
    """Whatever the template says, no file outside the dataset is opened: watch every open() of the process."""
    import builtins
    import io
    outside_copy(v3, tmp_path)
    opened: list[str] = []
    real_open, real_io_open = builtins.open, io.open

    def spy(file, *a, **k):
        opened.append(os.fspath(file) if isinstance(file, (str, os.PathLike)) else str(file))
        return real_open(file, *a, **k)
    monkeypatch.setattr(builtins, "open", spy)
    monkeypatch.setattr(io, "open", spy)
    for template in ("/etc/passwd", "../outside/data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"):
        set_info(v3, data_path=template)
        with pytest.raises(StoreError, match="data_path"):
            import_dataset(v3, tmp_path / "s", progress=False)
    monkeypatch.setattr(builtins, "open", real_open)
    monkeypatch.setattr(io, "open", real_io_open)
    assert opened and not any("passwd" in f or f.startswith(str(tmp_path / "outside")) for f in opened), opened
