"""The embedded simulator: deterministic, well-formed, physically consistent, static vs dynamic as promised."""
import numpy as np
import pytest

from wmprobe.data.sim import (SUITES, cache_key, cached_generate, check_params, episode_world, generate,
                              run_episode)
from wmprobe.data.sim import scene as S
from wmprobe.data.sim.tasks import Expert, suite_tasks
from wmprobe.data.splits import make_split
from wmprobe.data.store import EpisodeStore
from wmprobe.errors import ConfigError


@pytest.fixture(scope="module")
def static():
    return generate("static", 4, steps=12, seed=3, workers=2, progress=False)


def test_deterministic_for_a_seed_with_any_number_of_workers(static):
    # one worker, fewer episodes: episode i depends only on (suite, seed, i)
    again = generate("static", 2, steps=12, seed=3, workers=1, progress=False)
    np.testing.assert_array_equal(again.frames, static.frames[:24])
    np.testing.assert_array_equal(again.actions, static.actions[:24])
    np.testing.assert_array_equal(again.tasks, static.tasks[:2])
    other = generate("static", 1, steps=12, seed=4, workers=1, progress=False)
    assert not np.array_equal(other.frames, static.frames[:12])


def test_store_layout_and_meta(static):
    assert static.frames.shape == (48, 64, 64, 3) and static.frames.dtype == np.uint8
    assert static.actions.shape == (48, 4) and static.actions.dtype == np.float32  # wrist fixed: x y z gripper
    assert np.isfinite(static.actions).all()
    np.testing.assert_array_equal(static.episode_ends, [12, 24, 36, 48])
    assert static.meta["action_names"] == ["x", "y", "z", "gripper"]
    assert static.meta["action_groups"] == {"translation": [0, 1, 2], "gripper": [3]}
    assert static.meta["fps"] == 20.0
    src = static.meta["source"]
    assert {k: src[k] for k in ("suite", "seed", "size", "camera", "episodes", "steps", "wrist")} == {
        "suite": "static", "seed": 3, "size": 64, "camera": "oblique", "episodes": 4, "steps": 12, "wrist": "fixed"}
    assert set(np.unique(static.actions[:, 3])) <= {-1.0, 1.0}
    # the proprioceptive state of every frame, and what the audit needs to project motion into the image
    assert static.states.shape == (48, 4) and static.states.dtype == np.float32
    assert static.state_names == ["ee_x", "ee_y", "ee_z", "finger_opening"]
    cam = static.meta["camera"]
    assert cam["name"] == "oblique" and cam["size"] == 64 and len(cam["view"]) == len(cam["proj"]) == 16
    assert len(static.meta["expert_noise"]["translation_std_m"]) == 4
    # the frames show a scene: many distinct colours (arm, four blocks, table), not a blank image
    assert len(np.unique(static.frames[0].reshape(-1, 3), axis=0)) > 20


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_each_suite_has_at_least_ten_distinct_tasks(suite):
    if suite == "metaworld":                      # no metaworld import needed: the names are wmprobe's own list
        from wmprobe.data.sim.metaworld import ALL_TASKS, resolve_tasks
        names = resolve_tasks(None)
        assert set(names) <= set(ALL_TASKS) and len(ALL_TASKS) == 50
    else:
        names = [t.name for t in suite_tasks(suite)]
    assert len(names) == len(set(names)) >= 10


def test_arm_moves_as_commanded():
    # over one control step, the real end-effector displacement follows the commanded translation
    params = check_params("static", 3, size=16, steps=40, wrist="free")
    eps = [run_episode(params, i) for i in range(3)]
    cmd = np.concatenate([e.actions[:, :3] for e in eps])
    moved = np.concatenate([np.diff(e.ee, axis=0) for e in eps])
    for axis in range(3):
        assert np.corrcoef(cmd[:, axis], moved[:, axis])[0, 1] > 0.85, axis
    assert np.abs(cmd).max() > 0.02  # and it moves a lot, not millimetres only
    # the wrist turns as commanded too (XYZ Euler angles of the end effector, wrapped differences)
    from scipy.spatial.transform import Rotation
    rot_cmd = np.concatenate([e.actions[:, 3:6] for e in eps])
    euler = [Rotation.from_quat(e.ee_quat).as_euler("xyz") for e in eps]
    turned = np.concatenate([(np.diff(u, axis=0) + np.pi) % (2 * np.pi) - np.pi for u in euler])
    for axis in range(3):
        assert np.corrcoef(rot_cmd[:, axis], turned[:, axis])[0, 1] > 0.7, axis
    assert np.abs(rot_cmd[:, 2]).max() > 0.1  # yaw: the wrist aligns with the block


def test_actions_are_noisy_not_a_function_of_the_scene():
    # the same task in the same scene, two expert draws: different actions, same skill (direction)
    params = check_params("static", 1, size=16, steps=2)
    with episode_world(params, 0) as (p, w, task_id, _):
        scene = S.snapshot(p, w)
        task = suite_tasks("static")[task_id]
        acts = [Expert(task, scene, np.random.default_rng(s)).act(scene, w.target_pos, w.target_euler,
                                                                  w.target_pos)
                for s in (1, 2)]
    assert not np.allclose(acts[0][:6], acts[1][:6])
    assert np.dot(acts[0][:3], acts[1][:3]) > 0


def _still_motion(suite: str) -> tuple[int, int]:
    """Summed |frame change| over 3 zero-command steps, on pixels that show neither the robot nor a block
    (in either frame), and on the whole image."""
    with episode_world(check_params(suite, 1, steps=8), 0) as (p, w, _, _):
        still = np.zeros(4)
        still[3] = 1.0  # gripper stays open: a zero command
        S.apply_action(p, w, still)
        rgb0, seg0 = S.render(p, w, seg=True)
        for _ in range(3):
            S.apply_action(p, w, still)
        rgb1, seg1 = S.render(p, w, seg=True)
        touchable = [w.robot, *w.blocks.values()]
    outside = ~np.isin(seg0, touchable) & ~np.isin(seg1, touchable)
    diff = np.abs(rgb1.astype(int) - rgb0.astype(int)).sum(-1)
    return int(diff[outside].sum()), int(diff.sum())


def test_static_scene_changes_only_where_the_robot_is():
    outside, _ = _still_motion("static")
    assert outside == 0
    params = check_params("static", 1, size=64, steps=20)
    ep = run_episode(params, 1, seg=True)
    touchable = [ep.bodies["robot"], *(b for n, b in ep.bodies.items() if n != "robot")]
    away = ~np.isin(ep.seg[1:], touchable) & ~np.isin(ep.seg[:-1], touchable)   # (T-1, H, W)
    diff = np.abs(ep.frames[1:].astype(int) - ep.frames[:-1].astype(int)).sum(-1)
    assert away.mean() > 0.3 and diff[away].max() == 0
    assert diff.sum() > 0  # while the robot does move


def test_dynamic_scene_moves_without_the_robot():
    outside, total = _still_motion("dynamic")
    assert outside > 3000  # the distractors glide on while the arm holds still


def test_task_ood_split_of_a_generated_store(tmp_path):
    store = cached_generate("static", tmp_path, 24, steps=3, size=32, seed=0, workers=2, progress=False)
    again = cached_generate("static", tmp_path, 24, steps=3, size=32, seed=0, progress=False)
    assert again.path == store.path  # reused, not regenerated
    assert (store.path / "used").exists()  # marked, so `wmprobe cache gc` keeps what studies use
    assert isinstance(EpisodeStore.load(store.path), EpisodeStore)
    assert np.bincount(store.tasks, minlength=12).min() >= 2  # balanced tasks
    sp = make_split(store, kind="task", seed=0)
    train_t, test_t = set(store.tasks[list(sp.train)]), set(store.tasks[list(sp.test)])
    assert test_t and train_t and not train_t & test_t
    assert all(np.sum(store.tasks == t) >= 2 for t in test_t)  # several episodes per held-out task


def test_bad_parameters():
    with pytest.raises(ConfigError, match="unknown simulator suite 'dynamc'"):
        generate("dynamc", 2)
    with pytest.raises(ConfigError, match="unknown camera"):
        generate("static", 2, camera="fisheye")
    with pytest.raises(ConfigError, match="episodes >= 1"):
        generate("static", 0)
    with pytest.raises(ConfigError, match="unknown wrist mode 'loose'"):
        generate("static", 2, wrist="loose")
    with pytest.raises(ConfigError, match="no free wrist"):
        check_params("metaworld", 2, wrist="free")


def test_tasks_option_of_the_pybullet_suites():
    """tasks picks which of a suite's tasks a run uses; it changes the task an episode gets, never its scene."""
    assert check_params("static", 2, tasks="all") == check_params("static", 2) == check_params("static", 2, tasks=12)
    assert "tasks" not in check_params("static", 2)  # the default run keeps its cache key
    keys = {cache_key("static", 2, tasks=t) for t in (None, 3, "reach-red,lift-blue", ["lift-blue", "reach-red"])}
    assert len(keys) == 4
    assert check_params("dynamic", 2, tasks=13)["tasks"][-1] == "follow-ball"
    with pytest.raises(ConfigError, match="'reach-rde' .did you mean reach-red"):
        check_params("static", 2, tasks="reach-rde")
    with pytest.raises(ConfigError, match="1..12, got 13"):
        check_params("static", 2, tasks=13)
    with pytest.raises(ConfigError, match="tasks is all, a count or task names, not True"):
        check_params("static", 2, tasks=True)   # a YAML `tasks: yes` is no count
    picked = generate("static", 2, size=16, steps=2, workers=1, progress=False, tasks=["lift-blue", "reach-red"])
    assert picked.meta["task_names"] == ["lift-blue", "reach-red"] and sorted(picked.tasks.tolist()) == [0, 1]
    assert picked.meta["source"]["tasks"] == ["lift-blue", "reach-red"]
    every = generate("static", 2, size=16, steps=2, workers=1, progress=False)
    np.testing.assert_array_equal(picked.frames[[0, 2]], every.frames[[0, 2]])  # same scenes before acting


def test_cli_data_gen_writes_a_store_then_reuses_it(tmp_path, monkeypatch, capsys):
    import time
    from wmprobe.cli import main
    monkeypatch.setenv("WMPROBE_QUIET", "1")
    dest = tmp_path / "dyn"
    args = ["--quiet", "data", "gen", "dynamic", str(dest), "--episodes", "2", "--size", "16", "--steps", "3",
            "--workers", "1", "--seed", "5"]
    assert main(args) == 0 and "wrote" in capsys.readouterr().out
    store = EpisodeStore.load(dest)
    assert store.frames.shape == (6, 16, 16, 3) and store.actions.shape == (6, 4)
    np.testing.assert_array_equal(store.episode_ends, [3, 6])
    assert {k: store.meta["source"][k] for k in ("suite", "seed", "episodes", "steps", "size")} == {
        "suite": "dynamic", "seed": 5, "episodes": 2, "steps": 3, "size": 16}
    assert store.meta["task_names"] == [t.name for t in suite_tasks("dynamic")]
    written = (dest / "frames.npy").stat().st_mtime_ns
    t0 = time.perf_counter()
    assert main(args) == 0 and "up to date" in capsys.readouterr().out  # the same parameters: nothing to do
    assert time.perf_counter() - t0 < 1.0 and (dest / "frames.npy").stat().st_mtime_ns == written
    assert main([*args, "--tasks", "2"]) == 0 and "wrote" in capsys.readouterr().out  # other tasks: regenerated
    assert EpisodeStore.load(dest).meta["task_names"] == ["reach-red", "reach-blue"]
    assert main([*args, "--tasks", "nope"]) == 2 and "no task 'nope'" in capsys.readouterr().err


def test_every_camera_renders_the_same_episode_from_its_own_viewpoint():
    views = {cam: generate("static", 1, steps=3, size=32, seed=1, camera=cam, workers=1, progress=False)
             for cam in S.CAMERAS}
    acts = [v.actions[:] for v in views.values()]
    assert all(np.array_equal(acts[0], a) for a in acts[1:])          # one episode, only the viewpoint differs
    frames = {cam: v.frames[:].astype(np.float32) for cam, v in views.items()}
    for cam, f in frames.items():
        assert f.std() > 5, f"camera {cam} renders a flat image"
    cams = list(frames)
    for i, a in enumerate(cams):
        for b in cams[i + 1:]:
            assert np.abs(frames[a] - frames[b]).mean() > 10, (a, b)     # really different viewpoints


# ---- every scored axis moves the image (issue 16): the oblique camera, the fixed wrist, the stored state ----
def _image_directions(camera: str, size: int = 64) -> np.ndarray:
    """``(3, 2)`` px per m of a move along x, y, z at the workspace centre."""
    view, proj = S.camera_matrices(camera)
    c = (S.WORKSPACE_LO + S.WORKSPACE_HI) / 2
    return np.stack([(S.project(c + d * 0.005, view, proj, size) - S.project(c - d * 0.005, view, proj, size)) / 0.01
                     for d in np.eye(3)])


def _angle(a, b) -> float:
    return float(np.degrees(np.arccos(abs(a @ b) / np.linalg.norm(a) / np.linalg.norm(b))))


def test_the_oblique_camera_gives_each_translation_axis_its_own_image_direction():
    d = _image_directions("oblique")
    for i, j in ((0, 1), (0, 2), (1, 2)):
        assert _angle(d[i], d[j]) >= 30, (i, j)
    assert np.linalg.norm(d, axis=1).min() > 60          # px per m at 64 px: a 2 cm step is > 1 px on every axis
    front = _image_directions("front")
    assert _angle(front[0], front[2]) < 1                # what it fixes: front maps x and z onto one direction


def test_the_projection_matches_the_renderer():
    # the pixel that `project` gives for a finger is on the robot in the segmentation mask (the end effector
    # itself is the empty point between the fingertips)
    params = check_params("static", 1, size=64, steps=2)
    with episode_world(params, 0) as (p, w, _, _):
        _, seg = S.render(p, w, seg=True)
        view, proj = S.camera_matrices("oblique")
        robot = np.argwhere(seg == w.robot)[:, ::-1] + 0.5          # (u, v) pixel centres
        for link in S.FINGERS:
            pos = p.getLinkState(w.robot, link, computeForwardKinematics=True, physicsClientId=w.client)[4]
            uv = S.project(pos, view, proj, 64)
            assert np.linalg.norm(robot - uv, axis=1).min() < 1.0, link


@pytest.fixture(scope="module")
def dynamic_set():
    """One episode per task of the dynamic suite (14), rendered small: motion is measured at 64 px."""
    return generate("dynamic", 14, size=16, steps=40, seed=1, workers=2, progress=False)


def test_end_effector_in_frame_and_moving_at_least_2_px_per_step(dynamic_set):
    cam = dynamic_set.meta["camera"]
    uv = S.project(dynamic_set.states[:, :3], cam["view"], cam["proj"], 64)
    assert ((uv >= 0) & (uv < 64)).all(axis=1).mean() >= 0.99
    steps = np.concatenate([np.linalg.norm(np.diff(uv[sl], axis=0), axis=1)
                            for sl in map(dynamic_set.episode_slice, range(dynamic_set.n_episodes))])
    assert np.median(steps) >= 2.0


def test_states_follow_the_actions(dynamic_set):
    st, act = dynamic_set.states, dynamic_set.actions
    moved, cmd, opening, grip = [], [], [], []
    for e in range(dynamic_set.n_episodes):
        sl = dynamic_set.episode_slice(e)
        moved.append(np.diff(st[sl, :3], axis=0))
        cmd.append(act[sl][:-1, :3])
        opening.append(st[sl][3:, 3])        # the fingers have had 3 steps to follow the command
        grip.append(act[sl][:-3, 3])
    moved, cmd, opening, grip = map(np.concatenate, (moved, cmd, opening, grip))
    for axis in range(3):
        assert np.corrcoef(cmd[:, axis], moved[:, axis])[0, 1] > 0.85, axis
    assert opening[grip > 0].mean() > 0.07 and opening[grip < 0].mean() < 0.05
    assert (grip > 0).any() and (grip < 0).any()


def test_the_fixed_wrist_keeps_the_gripper_pointing_down_and_free_restores_7_dims():
    params = check_params("dynamic", 2, size=16, steps=30)
    ep = run_episode(params, 0)
    from scipy.spatial.transform import Rotation
    home = Rotation.from_euler("xyz", S.HOME_EULER)
    tilt = (Rotation.from_quat(ep.ee_quat) * home.inv()).magnitude()
    assert tilt.max() < 0.1                               # rad: the wrist does not turn
    free = generate("dynamic", 2, size=16, steps=30, wrist="free", workers=1, progress=False)
    assert free.actions.shape == (60, 7) and free.meta["action_groups"]["rotation"] == [3, 4, 5]
    assert free.state_names == ["ee_x", "ee_y", "ee_z", "ee_roll", "ee_pitch", "ee_yaw", "finger_opening"]
    assert np.abs(free.actions[:, 3:6]).max() > 0.05      # the free wrist does turn
    assert cache_key("dynamic", 2, wrist="free") != cache_key("dynamic", 2)


def test_study_datasets_choose_camera_and_wrist():
    from wmprobe.study.config import validate
    enc = {"encoders": ["pixels"]}
    assert not validate({**enc, "datasets": [{"name": "d", "sim": "dynamic", "wrist": "free", "camera": "front"}]})
    problems = validate({**enc, "datasets": [{"name": "d", "sim": "dynamic", "wrist": "loose"}]})
    assert [(p.where, "'loose'" in p.message) for p in problems] == [("datasets[0].wrist", True)]


def test_the_movers_follow_their_numpy_update_bit_for_bit():
    """``scene.apply_action`` moves the dynamic suite's movers with plain floats; their poses after every control
    step equal, bit for bit, the numpy update it replaced (``pos + vel / 240``, a bounce flips the velocity and
    ``np.clip``s the position), applied 12 times from the poses before the step: the same data as before.
    The movers bounce in these 90 steps (the comparison covers the edges)."""
    bounces = 0
    with episode_world(check_params("dynamic", 1, steps=8), 3) as (p, w, _, _):
        rng = np.random.default_rng(0)
        for _ in range(90):
            expect = {}
            for name, (body, vel) in w.movers.items():
                pos, v = np.array(p.getBasePositionAndOrientation(body, physicsClientId=w.client)[0]), vel.copy()
                for _ in range(S.SUBSTEPS):
                    new = pos + v / 240.0
                    for ax in (0, 1):
                        lo, hi = S.MOVER_AREA[ax]
                        if not lo < new[ax] < hi:
                            v[ax] = -v[ax]
                            new[ax] = np.clip(new[ax], lo, hi)
                            bounces += 1
                    pos = new
                expect[name] = (pos, v)
            S.apply_action(p, w, np.r_[rng.uniform(-0.01, 0.01, 3), 1.0])
            for name, (body, vel) in w.movers.items():
                got = np.array(p.getBasePositionAndOrientation(body, physicsClientId=w.client)[0])
                np.testing.assert_array_equal(got, expect[name][0])
                np.testing.assert_array_equal(vel, expect[name][1])
    assert bounces >= 2
