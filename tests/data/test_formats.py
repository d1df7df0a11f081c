"""Readers and writers of wmprobe.data.formats: datasets written with independent writers (pyarrow, PyAV, h5py,
numpy; tests/fixtures/formats.py), read back and compared; one malformed variant per kind of problem."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fixtures.formats import (CAM, EE_NAMES, FPS, TASK_NAMES, episodes_data, libero_tasks, write_calvin,
                              write_lerobot_v3, write_lerobot_v21, write_libero)
from wmprobe.data import EpisodeStore
from wmprobe.errors import StoreError

av = pytest.importorskip("av")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def assert_store_matches(store: EpisodeStore, eps, *, exact: bool, tasks=None):
    assert store.n_episodes == len(eps)
    assert store.episode_lengths.tolist() == [len(a) for _, a in eps]
    for e, (fr, ac) in enumerate(eps):
        s = store.episode_slice(e)
        np.testing.assert_allclose(store.actions[s], ac, rtol=0, atol=1e-6)
        got = np.asarray(store.frames[s]).astype(int)
        if exact:
            assert np.array_equal(got, fr)
        else:
            err = np.abs(got - fr).mean(axis=(1, 2, 3))
            assert err.max() < 6, err
    if tasks is not None:
        assert [store.meta["task_names"][t] for t in store.tasks] == tasks


# ---- LeRobot --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def eps():
    return episodes_data()


@pytest.fixture(scope="module")
def v3_video(tmp_path_factory, eps):
    return write_lerobot_v3(tmp_path_factory.mktemp("v3") / "ds", eps)


def test_lerobot_v3_video_round_trip(tmp_path, eps, v3_video):
    from wmprobe.data.formats import detect_format, import_dataset
    assert detect_format(v3_video) == "lerobot"
    out = import_dataset(v3_video, tmp_path / "store", progress=False)
    store = EpisodeStore.load(out)
    assert_store_matches(store, eps, exact=False, tasks=[TASK_NAMES[0], TASK_NAMES[1], TASK_NAMES[0]])
    assert store.meta["action_groups"] == {"translation": [0, 1, 2], "rotation": [3, 4, 5], "gripper": [6]}
    assert store.meta["fps"] == FPS and store.meta["source"]["camera"] == CAM
    assert store.meta["source"]["version"] == "v3.0"


def test_lerobot_v3_png_images_exact(tmp_path, eps):
    from wmprobe.data.formats import import_dataset
    src = write_lerobot_v3(tmp_path / "ds", eps, image=True)
    store = EpisodeStore.load(import_dataset(src, tmp_path / "store", progress=False))
    assert_store_matches(store, eps, exact=True)


def test_lerobot_v21_video_and_options(tmp_path, eps):
    from wmprobe.data.formats import dataset_info, import_dataset, validate_dataset
    src = write_lerobot_v21(tmp_path / "ds", eps)
    info = dataset_info(src)
    assert info["version"] == "v2.1" and info["episodes"] == 3 and info["default_camera"] == CAM
    assert info["action_keys"] == {"observation.state": 2, "action": 7} and info["tasks"] == 2
    assert validate_dataset(src) == []
    store = EpisodeStore.load(import_dataset(src, tmp_path / "store", progress=False))
    assert_store_matches(store, eps, exact=False)
    small = EpisodeStore.load(import_dataset(src, tmp_path / "small", size=16, max_episodes=2,
                                             action_key="observation.state", action_groups="none",
                                             progress=False))
    assert small.frames.shape == (11, 16, 16, 3) and small.action_dim == 2 and small.meta["action_groups"] == {}


def test_lerobot_v21_png(tmp_path, eps):
    from wmprobe.data.formats import import_dataset
    src = write_lerobot_v21(tmp_path / "ds", eps, image=True)
    assert_store_matches(EpisodeStore.load(import_dataset(src, tmp_path / "s", progress=False)), eps, exact=True)


# ---- LeRobot: bad input ---------------------------------------------------------------------------------
def _fails(src, *needles, **kw):
    from wmprobe.data.formats import import_dataset, validate_dataset
    dest = src.parent / "out-store"
    with pytest.raises(StoreError) as ei:
        import_dataset(src, dest, progress=False, **kw)
    msg = str(ei.value)
    for n in needles:
        assert n in msg, msg
    assert not dest.exists()
    assert not [p for p in src.parent.iterdir() if p.name.startswith(".out-store.tmp")]
    problems = validate_dataset(src, **{k: v for k, v in kw.items() if k in ("camera", "action_key")})
    assert problems and any(all(n in p for n in needles) for p in problems), problems
    return msg


def test_lerobot_missing_video(tmp_path, eps):
    src = write_lerobot_v3(tmp_path / "ds", eps)
    (src / f"videos/{CAM}/chunk-000/file-001.mp4").unlink()
    _fails(src, "file-001.mp4", "episode 2", "missing")


def test_lerobot_truncated_video(tmp_path, eps):
    src = write_lerobot_v21(tmp_path / "ds", eps)
    v = src / f"videos/chunk-000/{CAM}/episode_000001.mp4"
    v.write_bytes(v.read_bytes()[: len(v.read_bytes()) // 3])
    _fails(src, "episode_000001.mp4", "episode 1")


def test_lerobot_truncated_parquet(tmp_path, eps):
    src = write_lerobot_v3(tmp_path / "ds", eps)
    d = src / "data/chunk-000/file-001.parquet"
    d.write_bytes(d.read_bytes()[:100])
    _fails(src, "file-001.parquet", "episode 2")


def test_lerobot_metadata_length_disagrees(tmp_path, eps):
    src = write_lerobot_v3(tmp_path / "ds", eps)
    m = src / "meta/episodes/chunk-000/file-000.parquet"
    t = pq.read_table(m).to_pylist()
    t[1]["length"] = 9
    pq.write_table(pa.Table.from_pylist(t), m)
    _fails(src, "episode 1", "length 9")


def test_lerobot_v3_validate_lists_every_bad_row(tmp_path, eps):
    """Two bad episode rows in two metadata files and an unreadable third file: all three listed, the good
    episode still read; an import stops at the first."""
    from wmprobe.data.formats import import_dataset, validate_dataset
    src = write_lerobot_v3(tmp_path / "ds", eps)
    m = src / "meta/episodes/chunk-000/file-000.parquet"
    rows = pq.read_table(m).to_pylist()
    rows[0]["length"] = 9
    rows[2][f"videos/{CAM}/to_timestamp"] += 1.0
    pq.write_table(pa.Table.from_pylist(rows[:2]), m)
    pq.write_table(pa.Table.from_pylist(rows[2:]), m.with_name("file-001.parquet"))
    m.with_name("file-002.parquet").write_bytes(b"PAR1 not really")
    problems = validate_dataset(src)
    assert len(problems) == 3, problems
    assert "file-000.parquet, episode 0" in problems[0] and "length 9" in problems[0]
    assert "file-001.parquet, episode 2" in problems[1] and "video timestamps" in problems[1]
    assert "file-002.parquet" in problems[2] and "unreadable" in problems[2]
    with pytest.raises(StoreError, match="episode 0.*length 9"):
        import_dataset(src, tmp_path / "s", progress=False)


def test_lerobot_total_frames_disagree(tmp_path, eps):
    src = write_lerobot_v21(tmp_path / "ds", eps, image=True)
    info = json.loads((src / "meta/info.json").read_text())
    info["total_frames"] = 99
    (src / "meta/info.json").write_text(json.dumps(info))
    _fails(src, "info.json", "total_frames")


def test_lerobot_episode_length_vs_rows(tmp_path, eps):
    src = write_lerobot_v21(tmp_path / "ds", eps, image=True)
    lines = (src / "meta/episodes.jsonl").read_text().splitlines()
    row = json.loads(lines[2])
    row["length"] = 8
    lines[2] = json.dumps(row)
    (src / "meta/episodes.jsonl").write_text("\n".join(lines) + "\n")
    info = json.loads((src / "meta/info.json").read_text())
    info["total_frames"] += 1
    (src / "meta/info.json").write_text(json.dumps(info))
    _fails(src, "episode_000002.parquet", "episode 2", "7 actions")


def test_lerobot_nan_actions(tmp_path):
    eps = episodes_data()
    eps[1][1][2, 3] = np.nan
    src = write_lerobot_v3(tmp_path / "ds", eps, image=True)
    _fails(src, "file-000.parquet", "episode 1", "NaN")


def test_lerobot_missing_camera_key(tmp_path, eps):
    src = write_lerobot_v21(tmp_path / "ds", eps, image=True)
    _fails(src, "camera 'observation.images.wrist' not found", camera="observation.images.wrist")


def test_lerobot_wrong_frame_shape(tmp_path, eps):
    src = write_lerobot_v21(tmp_path / "ds", eps, image=True)
    info = json.loads((src / "meta/info.json").read_text())
    info["features"][CAM]["shape"] = [24, 24, 3]
    (src / "meta/info.json").write_text(json.dumps(info))
    _fails(src, "episode_000000.parquet", "episode 0", "24x24")


def test_lerobot_non_numeric_actions(tmp_path, eps):
    src = write_lerobot_v21(tmp_path / "ds", eps, image=True)
    d = src / "data/chunk-000/episode_000001.parquet"
    t = pq.read_table(d)
    t = t.set_column(t.column_names.index("action"), "action",
                     pa.array([["a"] * 7] * t.num_rows, pa.list_(pa.string())))
    pq.write_table(t, d)
    _fails(src, "episode_000001.parquet", "episode 1", "numeric")


def test_interrupted_import_leaves_no_store(tmp_path, eps, v3_video, monkeypatch):
    from wmprobe.data.formats import import_dataset
    from wmprobe.data.formats import lerobot as lr
    calls = {"n": 0}
    orig = lr.LeRobotSource.actions

    def boom(self, ep):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return orig(self, ep)

    monkeypatch.setattr(lr.LeRobotSource, "actions", boom)
    with pytest.raises(KeyboardInterrupt):
        import_dataset(v3_video, tmp_path / "store", progress=False)
    assert not (tmp_path / "store").exists() and list(tmp_path.iterdir()) == []


def test_import_refuses_to_overwrite_a_non_store(tmp_path, v3_video):
    from wmprobe.data.formats import import_dataset
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.txt").write_text("x")
    with pytest.raises(StoreError, match="not an EpisodeStore"):
        import_dataset(v3_video, tmp_path / "precious", progress=False)
    assert (tmp_path / "precious" / "thesis.txt").exists()


# ---- export -----------------------------------------------------------------------------------------------
def test_export_lerobot_round_trip(tmp_path):
    from helpers import moving_square_store
    from wmprobe.data.formats import dataset_info, export_lerobot, import_dataset, validate_dataset
    store = moving_square_store(episodes=4, steps=6, size=16, tasks=2)
    store.save(tmp_path / "s")
    out = export_lerobot(tmp_path / "s", tmp_path / "lr")
    for f in ("meta/info.json", "meta/tasks.parquet", "meta/episodes/chunk-000/file-000.parquet",
              "data/chunk-000/file-000.parquet", "videos/observation.images.main/chunk-000/file-000.mp4"):
        assert (out / f).is_file(), f
    info = dataset_info(out)
    assert info["version"] == "v3.0" and info["episodes"] == 4 and info["tasks"] == 2
    assert validate_dataset(out) == []
    back = EpisodeStore.load(import_dataset(out, tmp_path / "back", progress=False))
    assert back.episode_lengths.tolist() == store.episode_lengths.tolist()
    assert back.tasks.tolist() == store.tasks.tolist() and back.meta["task_names"] == store.meta["task_names"]
    assert np.array_equal(back.actions, store.actions)
    err = np.abs(np.asarray(back.frames).astype(int) - store.frames).mean(axis=(1, 2, 3))
    assert err.max() < 6, err
    assert back.meta["action_names"] == store.meta["action_names"]
    tasks = pq.read_table(out / "meta/tasks.parquet").to_pandas()
    assert list(tasks.index) == store.meta["task_names"] and tasks["task_index"].tolist() == [0, 1]


def _exported_files(root: Path, pattern: str) -> list[tuple[int, int, Path]]:
    """(chunk, file, path) of every ``pattern`` file under ``root``, in order."""
    out = []
    for f in root.glob(pattern):
        out.append((int(f.parent.name.split("-")[1]), int(f.stem.split("-")[1]), f))
    return sorted(out)


def test_export_lerobot_rolls_over_files_by_size(tmp_path):
    """Tiny size limits: several data parquets and mp4s in several chunk directories, each holding whole
    episodes; importing the export gives back the store."""
    from helpers import moving_square_store
    from wmprobe.data.formats import export_lerobot, import_dataset, validate_dataset
    store = moving_square_store(episodes=16, steps=10, size=16, tasks=3)
    store.save(tmp_path / "s")
    data_mb, video_mb = 0.004, 0.002
    out = export_lerobot(tmp_path / "s", tmp_path / "lr", data_files_size_in_mb=data_mb,
                         video_files_size_in_mb=video_mb, chunks_size=2)
    info = json.loads((out / "meta/info.json").read_text())
    sizes = (info["data_files_size_in_mb"], info["video_files_size_in_mb"], info["chunks_size"])
    assert sizes == (data_mb, video_mb, 2)
    key = "observation.images.main"
    data_files = _exported_files(out, "data/chunk-*/file-*.parquet")
    video_files = _exported_files(out, f"videos/{key}/chunk-*/file-*.mp4")
    assert len(data_files) >= 3 and len(video_files) >= 2, (data_files, video_files)
    for files, mb in ((data_files, data_mb), (video_files, video_mb)):
        assert [(c, f) for c, f, _ in files] == [(k // 2, k % 2) for k in range(len(files))]  # 2 files a chunk
        assert all(p.stat().st_size >= mb * 2 ** 20 for _, _, p in files[:-1])  # rolled over at the limit
    assert len({c for c, _, _ in data_files}) >= 2

    meta = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [m["episode_index"] for m in meta] == list(range(16))
    for c, f, path in data_files:  # every row of an episode is in the file its metadata names, none elsewhere
        mine = [m for m in meta if (m["data/chunk_index"], m["data/file_index"]) == (c, f)]
        rows = pq.read_table(path, columns=["episode_index", "index"])
        want = [m["episode_index"] for m in mine for _ in range(m["length"])]
        assert rows.column("episode_index").to_pylist() == want
        assert rows.column("index").to_pylist() == list(range(mine[0]["dataset_from_index"],
                                                              mine[-1]["dataset_to_index"]))
    assert max(len([m for m in meta if m["data/file_index"] == f and m["data/chunk_index"] == c])
               for c, f, _ in data_files) >= 2
    for c, f, path in video_files:  # timestamps from 0 in each file, one episode after another, all frames there
        mine = [m for m in meta if (m[f"videos/{key}/chunk_index"], m[f"videos/{key}/file_index"]) == (c, f)]
        t = 0.0
        for m in mine:
            assert m[f"videos/{key}/from_timestamp"] == pytest.approx(t)
            t = m[f"videos/{key}/to_timestamp"]
            assert t - m[f"videos/{key}/from_timestamp"] == pytest.approx(m["length"] / 10)
        with av.open(str(path)) as v:
            pts = [fr.pts for fr in v.decode(video=0)]
        assert len(pts) == sum(m["length"] for m in mine) and min(pts) == 0

    assert validate_dataset(out) == []
    back = EpisodeStore.load(import_dataset(out, tmp_path / "back", progress=False))
    assert back.episode_ends.tolist() == store.episode_ends.tolist() and back.tasks.tolist() == store.tasks.tolist()
    assert np.array_equal(back.actions, store.actions)
    err = np.abs(np.asarray(back.frames).astype(int) - store.frames).mean(axis=(1, 2, 3))
    assert err.max() < 6, err


def test_export_lerobot_bad_options(tmp_path):
    from helpers import moving_square_store
    from wmprobe.data.formats import export_lerobot
    from wmprobe.errors import ConfigError
    store = moving_square_store(episodes=2, steps=3, size=16)
    for kw in ({"data_files_size_in_mb": 0}, {"video_files_size_in_mb": -1}, {"chunks_size": 0}):
        with pytest.raises(ConfigError):
            export_lerobot(store, tmp_path / "lr", **kw)
    assert not (tmp_path / "lr").exists()


# ---- CALVIN -------------------------------------------------------------------------------------------------
def test_calvin_round_trip(tmp_path, eps):
    from wmprobe.data.formats import dataset_info, detect_format, import_dataset, validate_dataset
    src = write_calvin(tmp_path / "calvin", eps)
    assert detect_format(src) == "calvin" and detect_format(src / "training") == "calvin"
    info = dataset_info(src)
    assert info["split"] == "training" and info["episodes"] == 3 and info["frames"] == 18
    assert info["cameras"]["rgb_static"] == [32, 32, 3]
    assert validate_dataset(src) == []
    store = EpisodeStore.load(import_dataset(src, tmp_path / "s", progress=False))
    assert_store_matches(store, eps, exact=True, tasks=["calvin"] * 3)
    assert store.meta["source"]["action_key"] == "rel_actions" and store.meta["fps"] == 30
    g = EpisodeStore.load(import_dataset(src / "training", tmp_path / "g", camera="rgb_gripper", action_key="actions",
                                         progress=False))
    assert g.frames.shape[1:] == (16, 16, 3) and np.allclose(g.actions[:6], eps[0][1] * 10, atol=1e-5)


def test_calvin_split_is_chosen(tmp_path):
    """Both splits present: training by default, validation on request (reader, import, info, validate)."""
    from wmprobe.data.formats import dataset_info, import_dataset, validate_dataset
    from wmprobe.data.formats.calvin import CalvinSource
    train, val = episodes_data((6, 5), seed=1), episodes_data((4, 3, 5), size=32, seed=2)
    src = write_calvin(tmp_path / "calvin", train, split="training")
    write_calvin(src, val, split="validation", start=7)
    assert CalvinSource(src).split.name == "training"
    assert CalvinSource(src, split="validation").split.name == "validation"
    default = EpisodeStore.load(import_dataset(src, tmp_path / "t", progress=False))
    assert_store_matches(default, train, exact=True)
    assert default.meta["source"]["split"] == "training"
    v = EpisodeStore.load(import_dataset(src, tmp_path / "v", split="validation", progress=False))
    assert_store_matches(v, val, exact=True)
    assert v.meta["source"]["split"] == "validation"
    info = dataset_info(src, split="validation")
    assert (info["split"], info["episodes"], info["frames"], info["splits"]) == ("validation", 3, 12,
                                                                               ["training", "validation"])
    assert validate_dataset(src, split="validation") == []
    with pytest.raises(StoreError, match="no CALVIN split 'test'.*'training', 'validation'"):
        import_dataset(src, tmp_path / "x", split="test", progress=False)
    with pytest.raises(StoreError, match="is itself the CALVIN split 'training'; pass its parent"):
        dataset_info(src / "training", split="validation")
    assert dataset_info(src / "validation", split="validation")["episodes"] == 3
    only_val = write_calvin(tmp_path / "c2", val, split="validation")  # no training/: validation is taken
    assert dataset_info(only_val)["split"] == "validation"


def test_calvin_language_annotations_need_opt_in(tmp_path, eps):
    from wmprobe.data.formats import import_dataset
    src = write_calvin(tmp_path / "calvin", eps, start=0, gap=0)
    lang = src / "training" / "lang_annotations"
    lang.mkdir()
    ann = {"language": {"ann": ["open it", "push it", "overlap"], "task": ["open_drawer", "push_red", "x"]},
           "info": {"indx": [(0, 3), (6, 10), (2, 4)], "episodes": []}}
    np.save(lang / "auto_lang_ann.npy", np.array(ann, dtype=object), allow_pickle=True)
    plain = EpisodeStore.load(import_dataset(src, tmp_path / "plain", progress=False))
    assert plain.meta["task_names"] == ["calvin"] and plain.n_episodes == 3
    opt = EpisodeStore.load(import_dataset(src, tmp_path / "opt", allow_pickle=True, progress=False))
    assert opt.meta["task_names"] == ["open_drawer", "push_red"] and opt.episode_lengths.tolist() == [4, 5]
    frames = np.concatenate([f for f, _ in eps])
    assert np.array_equal(opt.frames[:4], frames[0:4]) and np.array_equal(opt.frames[4:], frames[6:11])


def test_calvin_missing_step_file(tmp_path, eps):
    src = write_calvin(tmp_path / "calvin", eps)
    (src / "training" / "episode_0000111.npz").unlink()  # episode 0: ids 100..105, episode 1: 109..113
    _fails(src, "episode_0000111.npz", "episode 1", "missing")


def test_calvin_truncated_npz(tmp_path, eps):
    src = write_calvin(tmp_path / "calvin", eps)
    f = src / "training" / "episode_0000102.npz"
    f.write_bytes(f.read_bytes()[:200])
    _fails(src, "episode_0000102.npz", "episode 0")


def test_calvin_ids_disagree_with_files(tmp_path, eps):
    src = write_calvin(tmp_path / "calvin", eps)
    ids = np.load(src / "training" / "ep_start_end_ids.npy")
    ids[2, 1] += 2  # the range runs past the last step file
    np.save(src / "training" / "ep_start_end_ids.npy", ids)
    _fails(src, "episode 2", "missing")


def test_calvin_bad_ranges(tmp_path, eps):
    src = write_calvin(tmp_path / "calvin", eps)
    ids = np.load(src / "training" / "ep_start_end_ids.npy")
    ids[1] = (ids[0, 1], ids[1, 1])  # overlaps episode 0
    np.save(src / "training" / "ep_start_end_ids.npy", ids)
    _fails(src, "ep_start_end_ids.npy", "episode 1", "overlaps")


def test_calvin_validate_lists_every_bad_range(tmp_path):
    from wmprobe.data.formats import validate_dataset
    src = write_calvin(tmp_path / "calvin", episodes_data((6, 5, 7, 4)))
    ids = np.load(src / "training" / "ep_start_end_ids.npy")
    ids[1] = (ids[0, 1], ids[1, 1])  # overlaps episode 0
    ids[2] = (ids[2, 1], ids[2, 0])  # end before start
    np.save(src / "training" / "ep_start_end_ids.npy", ids)
    problems = validate_dataset(src)
    assert len(problems) == 2, problems
    assert "episode 1" in problems[0] and "overlaps" in problems[0]
    assert "episode 2" in problems[1] and "start <= end" in problems[1]
    assert all("ep_start_end_ids.npy" in p for p in problems)


def test_calvin_nan_action_and_wrong_shape(tmp_path):
    eps = episodes_data()
    eps[2][1][1, 0] = np.inf
    src = write_calvin(tmp_path / "calvin", eps)
    _fails(src, "episode 2", "NaN or inf")
    eps = episodes_data()
    src = write_calvin(tmp_path / "c2", eps)
    f = src / "training" / "episode_0000100.npz"
    z = dict(np.load(f))
    z["rgb_static"] = z["rgb_static"].astype(np.float32)
    np.savez(f, **z)
    _fails(src, "episode_0000100.npz", "episode 0", "uint8")


def test_calvin_missing_camera_key(tmp_path, eps):
    src = write_calvin(tmp_path / "calvin", eps)
    f = src / "training" / "episode_0000110.npz"
    z = dict(np.load(f))
    del z["rgb_static"]
    np.savez(f, **z)
    _fails(src, "episode_0000110.npz", "episode 1", "'rgb_static' missing")


# ---- LIBERO -------------------------------------------------------------------------------------------------
def test_libero_round_trip_flip_and_tasks(tmp_path):
    from wmprobe.data.formats import dataset_info, detect_format, import_dataset, validate_dataset
    tasks = libero_tasks()
    src = write_libero(tmp_path / "libero", tasks)
    assert detect_format(src) == "libero"
    info = dataset_info(src)
    assert info["episodes"] == 13 and info["tasks"] == 2 and info["cameras"]["agentview_rgb"] == [32, 32, 3]
    assert validate_dataset(src) == []
    store = EpisodeStore.load(import_dataset(src, tmp_path / "s", progress=False))
    all_eps = [e for v in tasks.values() for e in v]
    assert_store_matches(store, all_eps, exact=True,
                         tasks=["open the drawer"] * 2 + ["put the bowl on the plate"] * 11)
    one = EpisodeStore.load(import_dataset(next(src.glob("*SCENE1*")), tmp_path / "one", camera="eye_in_hand_rgb",
                                           progress=False))
    assert np.array_equal(one.frames[one.episode_slice(10)], tasks["put the bowl on the plate"][10][0][..., ::-1])


def test_libero_task_from_file_name(tmp_path):
    from wmprobe.data.formats import import_dataset
    src = write_libero(tmp_path / "libero", libero_tasks((1, 1)), problem_info=False)
    store = EpisodeStore.load(import_dataset(src, tmp_path / "s", progress=False))
    assert store.meta["task_names"] == ["open the drawer", "put the bowl on the plate"]


def test_libero_frames_and_actions_differ(tmp_path):
    h5py = pytest.importorskip("h5py")
    src = write_libero(tmp_path / "libero", libero_tasks((2, 1)))
    f = next(src.glob("*SCENE0*"))
    with h5py.File(f, "a") as h:
        fr = h["data/demo_1/obs/agentview_rgb"][()]
        del h["data/demo_1/obs/agentview_rgb"]
        h["data/demo_1/obs/agentview_rgb"] = fr[:-1]
    _fails(src, f.name, "demo_1", "3 frames but actions has 4")


def test_libero_truncated_file(tmp_path):
    src = write_libero(tmp_path / "libero", libero_tasks((1, 1)))
    f = next(src.glob("*SCENE1*"))
    f.write_bytes(f.read_bytes()[:1000])
    _fails(src, f.name, "not a readable HDF5")


def test_libero_num_samples_disagrees_and_nan(tmp_path):
    h5py = pytest.importorskip("h5py")
    src = write_libero(tmp_path / "libero", libero_tasks((2, 1)))
    f = next(src.glob("*SCENE0*"))
    with h5py.File(f, "a") as h:
        h["data/demo_1"].attrs["num_samples"] = 9
    _fails(src, f.name, "demo_1", "num_samples=9")
    src = write_libero(tmp_path / "l2", libero_tasks((2, 1)))
    f = next(src.glob("*SCENE0*"))
    with h5py.File(f, "a") as h:
        h["data/demo_0/actions"][2, 1] = np.nan
    _fails(src, f.name, "demo_0", "NaN")


def broken_libero(root: Path) -> Path:
    """Three files: SCENE0 is garbage, SCENE1 has a demo without actions and one whose num_samples is wrong,
    SCENE2 has NaN actions in demo_1 and an empty demo_2."""
    h5py = pytest.importorskip("h5py")
    src = write_libero(root, {f"task {k}": episodes_data((4, 3), size=16, seed=k) for k in range(3)})
    files = sorted(src.glob("*.hdf5"))
    files[0].write_bytes(b"not an hdf5 file " * 64)
    with h5py.File(files[1], "a") as h:
        del h["data/demo_0/actions"]
        h["data/demo_1"].attrs["num_samples"] = 99
    with h5py.File(files[2], "a") as h:
        h["data/demo_1/actions"][1, 2] = np.nan
        g = h["data"].create_group("demo_2")
        g.attrs["num_samples"] = 0
        g.create_dataset("actions", data=np.zeros((0, 7)))
    return src


def test_libero_validate_lists_every_problem(tmp_path):
    from wmprobe.data.formats import import_dataset, validate_dataset
    src = broken_libero(tmp_path / "libero")
    f0, f1, f2 = (f.name for f in sorted(src.glob("*.hdf5")))
    problems = validate_dataset(src)
    expected = [(f0, "", "not a readable HDF5"), (f1, "demo_0", "no 'actions'"), (f1, "demo_1", "num_samples=99"),
                (f2, "demo_2", "empty demo"), (f2, "demo_1", "NaN")]
    assert len(problems) == len(expected), problems
    for f, demo, what in expected:
        assert any(f in p and demo in p and what in p for p in problems), (f, demo, what, problems)
    with pytest.raises(StoreError, match="not a readable HDF5"):  # an import stops at the first problem
        import_dataset(src, tmp_path / "s", progress=False)


def test_libero_demo_without_obs_is_named(tmp_path):
    """A demo group without obs: the error names its file and demo; the other demos still read."""
    h5py = pytest.importorskip("h5py")
    from wmprobe.data.formats import validate_dataset
    src = write_libero(tmp_path / "libero", {"open the drawer": episodes_data((4, 3, 5), seed=1)})
    f = next(src.glob("*.hdf5"))
    with h5py.File(f, "a") as h:
        del h["data/demo_0/obs"]
    _fails(src, f.name, "episode demo_0", "no 'obs' group")
    assert validate_dataset(src) == [f"{f.name}, episode demo_0: no 'obs' group (camera 'obs/agentview_rgb' missing)"]
    with h5py.File(f, "a") as h:  # no demo has images: the first one is named, not just the file
        for d in ("demo_1", "demo_2"):
            del h[f"data/{d}/obs"]
    _fails(src, f.name, "episode demo_0", "no *_rgb image datasets under data/demo_0/obs", "no 'obs' group")


def test_libero_missing_camera(tmp_path):
    src = write_libero(tmp_path / "libero", libero_tasks((1, 1)))
    _fails(src, "camera 'frontview_rgb' not found", camera="frontview_rgb")


def test_lerobot_v3_interleaved_files_seek(tmp_path, eps):
    """Episode 2 starts 0.6 s into a video file the reader already left: it reopens and seeks."""
    from wmprobe.data.formats import import_dataset
    src = write_lerobot_v3(tmp_path / "ds", eps, files=((0, 2), (1,)))
    store = EpisodeStore.load(import_dataset(src, tmp_path / "s", progress=False))
    assert_store_matches(store, eps, exact=False)


def test_splits_of_an_imported_dataset_never_share_episodes_or_tasks(tmp_path):
    from wmprobe.data import make_split
    from wmprobe.data.formats import import_dataset
    tasks = {f"task number {k}": episodes_data((3, 4, 3), size=16, seed=k) for k in range(4)}
    src = write_libero(tmp_path / "libero", tasks)
    store = EpisodeStore.load(import_dataset(src, tmp_path / "s", progress=False))
    assert store.n_episodes == 12 and len(store.meta["task_names"]) == 4
    for seed in range(3):
        ep = make_split(store, "episode", seed=seed)
        assert not set(ep.train) & set(ep.test) and len(ep.train) + len(ep.test) == 12
        ts = make_split(store, "task", seed=seed)
        assert not set(ts.train) & set(ts.test)
        assert not set(store.tasks[list(ts.train)].tolist()) & set(store.tasks[list(ts.test)].tolist())


def test_store_as_a_source(tmp_path):
    from helpers import moving_square_store
    from wmprobe.data.formats import dataset_info, detect_format, import_dataset, validate_dataset
    store = moving_square_store(episodes=3, steps=4, size=16, tasks=2)
    store.save(tmp_path / "s")
    assert detect_format(tmp_path / "s") == "store" and validate_dataset(tmp_path / "s") == []
    info = dataset_info(tmp_path / "s")
    assert info["format"] == "store" and info["episodes"] == 3 and info["frames"] == 12
    small = EpisodeStore.load(import_dataset(tmp_path / "s", tmp_path / "t", size=8, max_episodes=2, progress=False))
    assert small.frames.shape == (8, 8, 8, 3) and np.array_equal(small.actions, store.actions[:8])
    (tmp_path / "s" / "actions.npy").write_bytes(b"junk")
    problems = validate_dataset(tmp_path / "s")
    assert len(problems) == 1 and "actions.npy" in problems[0]


def test_detect_format_unknown(tmp_path):
    from wmprobe.data.formats import detect_format, validate_dataset
    (tmp_path / "x").mkdir()
    with pytest.raises(StoreError, match="cannot detect"):
        detect_format(tmp_path / "x")
    assert "cannot detect" in validate_dataset(tmp_path / "x")[0]


# ---- CLI ----------------------------------------------------------------------------------------------------
def cli(*args):
    exe = shutil.which("wmprobe")
    cmd = [exe] if exe else [sys.executable, "-m", "wmprobe.cli"]
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, timeout=120)


def test_cli_data_import_info_validate_export(tmp_path, eps, v3_video):
    r = cli("--quiet", "data", "info", v3_video, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["version"] == "v3.0"
    r = cli("--quiet", "data", "validate", v3_video)
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout + r.stderr
    r = cli("--quiet", "data", "import", v3_video, tmp_path / "s", "--format", "lerobot", "--camera", CAM,
            "--size", "16", "--max-episodes", "2")
    assert r.returncode == 0, r.stderr
    s = EpisodeStore.load(tmp_path / "s")
    assert s.frames.shape == (11, 16, 16, 3)
    r = cli("--quiet", "data", "export", tmp_path / "s", tmp_path / "lr", "--format", "lerobot")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "lr/meta/info.json").read_text())["codebase_version"] == "v3.0"


def test_cli_validate_lists_every_problem(tmp_path):
    src = broken_libero(tmp_path / "libero")
    r = cli("--quiet", "data", "validate", src)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("problem: ")]
    assert r.returncode == 1 and len(lines) == 5 and "5 problem(s)" in r.stdout, r.stdout + r.stderr
    r = cli("--quiet", "data", "validate", src, "--format", "libero", "--camera", "frontview_rgb")
    assert r.returncode == 1 and "camera 'frontview_rgb' not found" in r.stdout, r.stdout + r.stderr


@pytest.mark.slow
def test_cli_store_format_and_options(tmp_path, v3_video):
    from helpers import moving_square_store
    store = moving_square_store(episodes=3, steps=4, size=16, tasks=2)
    store.save(tmp_path / "s")
    r = cli("--quiet", "data", "info", tmp_path / "s", "--format", "store", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["episodes"] == 3, r.stderr
    r = cli("--quiet", "data", "import", tmp_path / "s", tmp_path / "t", "--format", "store", "--size", "8")
    assert r.returncode == 0, r.stderr
    t = EpisodeStore.load(tmp_path / "t")
    assert t.frames.shape == (12, 8, 8, 3) and np.array_equal(t.actions, store.actions)
    r = cli("--quiet", "data", "validate", tmp_path / "t", "--format", "store")
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout + r.stderr
    r = cli("--quiet", "data", "info", v3_video, "--format", "calvin")
    assert r.returncode == 2 and "not a CALVIN split" in r.stderr, r.stderr
    r = cli("--quiet", "data", "validate", v3_video, "--action-key", "observation.state", "--camera", CAM)
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout + r.stderr
    r = cli("--quiet", "data", "validate", v3_video, "--action-key", "joint")
    assert r.returncode == 1 and "action key 'joint' not found" in r.stdout, r.stdout + r.stderr
    r = cli("--quiet", "data", "export", tmp_path / "s", tmp_path / "lr", "--data-file-mb", "0.0001",
            "--video-file-mb", "0.5", "--chunks-size", "2")
    assert r.returncode == 0, r.stderr
    info = json.loads((tmp_path / "lr/meta/info.json").read_text())
    assert (info["data_files_size_in_mb"], info["video_files_size_in_mb"], info["chunks_size"]) == (0.0001, 0.5, 2)
    data = sorted(str(p.relative_to(tmp_path / "lr")) for p in (tmp_path / "lr").rglob("file-*.*"))
    assert data == ["data/chunk-000/file-000.parquet", "data/chunk-000/file-001.parquet",  # one episode a file
                    "data/chunk-001/file-000.parquet", "meta/episodes/chunk-000/file-000.parquet",
                    "videos/observation.images.main/chunk-000/file-000.mp4"]


def test_cli_calvin_split(tmp_path):
    train, val = episodes_data((6, 5), size=16, seed=1), episodes_data((4, 3, 5), size=16, seed=2)
    src = write_calvin(tmp_path / "calvin", train, split="training")
    write_calvin(src, val, split="validation")
    r = cli("--quiet", "data", "import", src, tmp_path / "v", "--calvin-split", "validation", "--size", "16")
    assert r.returncode == 0, r.stderr
    v = EpisodeStore.load(tmp_path / "v")
    assert v.episode_lengths.tolist() == [4, 3, 5] and np.allclose(v.actions, np.concatenate([a for _, a in val]))
    r = cli("--quiet", "data", "info", src, "--calvin-split", "validation", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["split"] == "validation", r.stderr
    r = cli("--quiet", "data", "validate", src, "--calvin-split", "nope")
    assert r.returncode == 1 and "no CALVIN split 'nope'" in r.stdout, r.stdout + r.stderr
    moving = tmp_path / "s"
    from helpers import moving_square_store
    moving_square_store(episodes=2, steps=3, size=16).save(moving)
    r = cli("--quiet", "data", "info", moving, "--calvin-split", "validation")
    assert r.returncode == 2 and "only for CALVIN data" in r.stderr, r.stderr


def test_cli_bad_source_is_one_sentence(tmp_path, eps):
    src = write_lerobot_v21(tmp_path / "ds", eps)
    (src / f"videos/chunk-000/{CAM}/episode_000001.mp4").unlink()
    (src / "data/chunk-000/episode_000002.parquet").write_bytes(b"PAR1 truncated")
    r = cli("--quiet", "data", "import", src, tmp_path / "s")
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "episode_000001.mp4" in r.stderr and not (tmp_path / "s").exists()
    r = cli("--quiet", "data", "validate", src)
    assert r.returncode == 1 and "2 problem(s)" in r.stdout, r.stdout
    assert "episode 1" in r.stdout and "episode 2" in r.stdout


def test_load_dataset_points_at_import(tmp_path, v3_video):
    from helpers import moving_square_store
    from wmprobe.data import load_dataset
    with pytest.raises(StoreError, match="is a lerobot dataset.*wmprobe data import"):
        load_dataset(v3_video)
    moving_square_store(episodes=2, steps=3, size=16).save(tmp_path / "s")
    (tmp_path / "s" / "meta.json").unlink()
    with pytest.raises(StoreError, match="incomplete: missing meta.json"):
        load_dataset(tmp_path / "s")


# ---- sizes and action groups: imports never guess silently ---------------------------------------------------
def striped_store(h=16, w=32):
    """Frames whose left and right quarters are red and green and whose centre is blue: a centre crop to a
    square keeps only the blue."""
    from wmprobe.data.store import from_episodes
    fr = np.zeros((3, h, w, 3), np.uint8)
    fr[:, :, : w // 4, 0] = 255
    fr[:, :, w // 4: w - w // 4, 2] = 255
    fr[:, :, w - w // 4:, 1] = 255
    acts = np.zeros((3, 7), np.float32)
    return from_episodes([(fr, acts)], [0], fps=10, action_names=EE_NAMES,
                         action_groups={"translation": [0, 1, 2], "rotation": [3, 4, 5], "gripper": [6]},
                         task_names=["t"], source={"kind": "synthetic"})


def test_import_keeps_native_size_and_size_centre_crops(tmp_path):
    from wmprobe.data.formats import import_dataset
    striped_store().save(tmp_path / "s")
    native = EpisodeStore.load(import_dataset(tmp_path / "s", tmp_path / "native", progress=False))
    assert native.frames.shape == (3, 16, 32, 3)  # the default keeps the native, non-square size
    small = EpisodeStore.load(import_dataset(tmp_path / "s", tmp_path / "small", size=8, progress=False))
    assert small.frames.shape == (3, 8, 8, 3)
    f = np.asarray(small.frames).astype(int)
    assert f[..., 2].min() == 255 and f[..., 0].max() == 0 and f[..., 1].max() == 0  # cropped, not squashed
    assert "centre-cropped to 16x16" in small.meta["source"]["resize"]
    r = cli("--quiet", "data", "import", tmp_path / "s", tmp_path / "c1")
    assert r.returncode == 0 and "native size 16x32" in r.stdout, r.stdout + r.stderr
    assert EpisodeStore.load(tmp_path / "c1").frames.shape == (3, 16, 32, 3)
    r = cli("--quiet", "data", "import", tmp_path / "s", tmp_path / "c2", "--size", "8")
    assert r.returncode == 0 and "centre-cropped to 16x16" in r.stdout and "resized to 8x8" in r.stdout, r.stdout


@pytest.mark.parametrize("names,groups", [
    (EE_NAMES, {"translation": [0, 1, 2], "rotation": [3, 4, 5], "gripper": [6]}),
    ([f"joint_{i}" for i in range(7)], {}),
    ([f"joint_{i}" for i in range(6)] + ["gripper"], {"gripper": [6]}),
    (["delta_x", "delta_y", "delta_z", "rx", "ry", "rz", "gripper_open"],
     {"translation": [0, 1, 2], "rotation": [3, 4, 5], "gripper": [6]}),
    (["shoulder_pan.pos", "shoulder_lift.pos", "elbow_flex.pos", "wrist_flex.pos", "wrist_roll.pos",
      "gripper.pos", "extra_joint"], {"gripper": [5]}),
])
def test_groups_come_from_the_action_names(names, groups):
    from wmprobe.data.formats.groups import groups_from_names
    assert groups_from_names(names) == groups
    assert groups_from_names([f"a{i}" for i in range(7)]) is None  # names that say nothing


def test_lerobot_action_groups_inferred_or_refused(tmp_path):
    from wmprobe.data.formats import FormatError, dataset_info, import_dataset
    eps = episodes_data((3, 4), size=16)
    joints = write_lerobot_v3(tmp_path / "joints", eps, image=True, size=16, tasks=(0, 1), files=((0, 1),),
                              names={"motors": [f"joint_{i}" for i in range(7)]})
    store = EpisodeStore.load(import_dataset(joints, tmp_path / "j", progress=False))
    assert store.meta["action_groups"] == {} and store.meta["action_names"][0] == "joint_0"
    assert store.meta["source"]["action_groups_from"] == "the dataset's action names"
    unnamed = write_lerobot_v3(tmp_path / "unnamed", eps, image=True, size=16, tasks=(0, 1), files=((0, 1),),
                               names=None)
    with pytest.raises(FormatError, match="cannot tell which of the 7 action dims.*--action-groups"):
        import_dataset(unnamed, tmp_path / "u", progress=False)
    assert not (tmp_path / "u").exists()
    assert dataset_info(unnamed)["action_groups"].startswith("unknown")
    given = EpisodeStore.load(import_dataset(unnamed, tmp_path / "g", progress=False,
                                             action_groups="translation=0,1,2 rotation=3,4,5 gripper=6"))
    assert given.action_groups == {"translation": [0, 1, 2], "rotation": [3, 4, 5], "gripper": [6]}
    assert given.meta["source"]["action_groups_from"] == "--action-groups"
    none = EpisodeStore.load(import_dataset(unnamed, tmp_path / "n", progress=False, action_groups="none"))
    assert none.action_groups == {}
    for bad, msg in (("translation=0,1,9", "outside 0..6"), ("wrist=0", "unknown action group 'wrist'"),
                     ("translation=0,1 gripper=1", "axis 1 is in both")):
        with pytest.raises(StoreError, match=msg):
            import_dataset(unnamed, tmp_path / "b", progress=False, action_groups=bad)
    r = cli("--quiet", "data", "import", unnamed, tmp_path / "c")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--action-groups" in r.stderr
    r = cli("--quiet", "data", "import", unnamed, tmp_path / "c", "--action-groups", "translation=0,1,2",
            "gripper=6")
    assert r.returncode == 0 and "action groups: translation=0,1,2 gripper=6 (from --action-groups)" in r.stdout
    assert EpisodeStore.load(tmp_path / "c").action_groups == {"translation": [0, 1, 2], "gripper": [6]}


def test_calvin_and_libero_groups_follow_their_convention(tmp_path):
    from wmprobe.data.formats import import_dataset
    ee = {"translation": [0, 1, 2], "rotation": [3, 4, 5], "gripper": [6]}
    calvin = write_calvin(tmp_path / "calvin", episodes_data((4, 3), size=16, seed=1), size=16)
    store = EpisodeStore.load(import_dataset(calvin, tmp_path / "c", progress=False))
    assert store.action_groups == ee and store.meta["source"]["action_groups_from"] == "the calvin convention"
    libero = write_libero(tmp_path / "libero", {"open the drawer": episodes_data((4, 3), size=16, seed=2)})
    store = EpisodeStore.load(import_dataset(libero, tmp_path / "l", progress=False))
    assert store.action_groups == ee and store.meta["action_names"] == EE_NAMES
    over = EpisodeStore.load(import_dataset(libero, tmp_path / "o", progress=False, action_groups="none"))
    assert over.action_groups == {}


# ---- proprioceptive states (issue 16: the audit's state ceiling) --------------------------------------------
def test_states_are_imported_where_the_format_records_them(tmp_path, eps, v3_video):
    from wmprobe.data.formats import import_dataset
    # LeRobot: observation.state (names absent in info.json -> state_0, state_1)
    lr = EpisodeStore.load(import_dataset(v3_video, tmp_path / "lr", progress=False))
    assert lr.state_names == ["state_0", "state_1"] and lr.states.shape == (lr.n_frames, 2)
    np.testing.assert_array_equal(lr.states, np.tile([0.0, 1.0], (lr.n_frames, 1)))
    # ... and a re-import of the store keeps them
    again = EpisodeStore.load(import_dataset(tmp_path / "lr", tmp_path / "lr2", format="store", size=16,
                                             progress=False))
    np.testing.assert_array_equal(again.states, lr.states)
    # CALVIN: robot_obs[:14] (its last entry is the gripper action)
    src = write_calvin(tmp_path / "calvin", eps)
    for k, f in enumerate(sorted((src / "training").glob("episode_*.npz"))):
        z = dict(np.load(f))
        z["robot_obs"] = np.arange(15, dtype=np.float64) + k
        np.savez(f, **z)
    cv = EpisodeStore.load(import_dataset(src, tmp_path / "cv", progress=False))
    assert cv.states.shape == (18, 14) and cv.state_names[:3] == ["tcp_x", "tcp_y", "tcp_z"]
    np.testing.assert_array_equal(cv.states[1], np.arange(14) + 1)
    # LIBERO: obs/ee_pos + obs/gripper_states
    h5py = pytest.importorskip("h5py")
    lib = write_libero(tmp_path / "libero", {"open the drawer": eps})
    with h5py.File(next(lib.glob("*.hdf5")), "a") as h:
        for d, (_, ac) in enumerate(eps):
            h[f"data/demo_{d}/obs/ee_pos"] = np.full((len(ac), 3), d, np.float64)
            h[f"data/demo_{d}/obs/gripper_states"] = np.full((len(ac), 2), -d, np.float64)
    li = EpisodeStore.load(import_dataset(lib, tmp_path / "li", progress=False))
    assert li.state_names == ["ee_x", "ee_y", "ee_z", "gripper_states_0", "gripper_states_1"]
    np.testing.assert_array_equal(li.states[li.episode_slice(2)], np.tile([2, 2, 2, -2, -2], (7, 1)))
    # a demo without them: the store has no states, and its source says why
    with h5py.File(next(lib.glob("*.hdf5")), "a") as h:
        del h["data/demo_1/obs/ee_pos"]
    part = EpisodeStore.load(import_dataset(lib, tmp_path / "part", progress=False))
    assert part.states is None and "demo_1" in part.meta["source"]["states"]
    assert "state_names" not in part.meta


def test_readers_are_a_registry_and_a_registered_reader_is_opened_with_its_options(tmp_path):
    """``--format`` names come from ``READERS``; an unknown one is one StoreError with close names; a reader
    registered at run time is opened through the same path, with only the options it declares."""
    from wmprobe.data import formats
    assert formats.FORMATS == ("lerobot", "calvin", "libero", "store") == tuple(formats.READERS.names())
    with pytest.raises(StoreError, match=r"unknown dataset format 'lerobto' \(one of auto, lerobot.*did you mean "
                                         r"lerobot"):
        formats.open_source(tmp_path, "lerobto")
    with pytest.raises(StoreError, match="only for CALVIN"):
        formats.open_source(tmp_path, "lerobot", split="training")
    seen = {}

    class Toy:
        def __init__(self, path, allow_symlinks_out=None, split=None):
            seen.update(path=path, links=allow_symlinks_out, split=split)
    formats.READERS.add("toy", Toy, runtime=True, options=("split",))
    try:
        assert isinstance(formats.open_source(tmp_path, "toy", split="a", allow_pickle=True), Toy)
        assert seen == {"path": tmp_path, "links": None, "split": "a"}
    finally:
        formats.READERS._runtime.pop("toy")
