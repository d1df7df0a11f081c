"""scene.render's frustum culling (data/sim/cull.py): it skips robot links outside the view and changes no pixel."""
import functools

import numpy as np
import pytest

from wmprobe.data.sim import check_params, episode_world, run_episode
from wmprobe.data.sim import cull as C
from wmprobe.data.sim import scene as S


@pytest.mark.parametrize("camera,wrist,suite", [("oblique", "fixed", "dynamic"), ("oblique", "free", "static"),
                                                ("front", "fixed", "static"), ("top", "free", "dynamic")])
def test_culled_episodes_are_bit_identical(monkeypatch, camera, wrist, suite):
    """Whole generated episodes (frames, segmentation, the expert's actions, the end-effector path) with and
    without culling: identical, so every dataset and rollout is what it was before culling existed."""
    params = check_params(suite, 2, steps=10, seed=5, camera=camera, wrist=wrist)
    full_render = functools.partial(S.render, cull=False)
    culled = [run_episode(params, i, seg=True) for i in range(2)]
    monkeypatch.setattr(S, "render", full_render)
    full = [run_episode(params, i, seg=True) for i in range(2)]
    for a, b in zip(culled, full):
        np.testing.assert_array_equal(a.frames, b.frames)
        np.testing.assert_array_equal(a.seg, b.seg)
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_array_equal(a.ee, b.ee)


def test_random_arm_poses_render_identically_and_links_are_culled():
    """Random joint configurations (links straddling every image edge, some behind the camera), rendered at
    two sizes from two cameras: culled == full, RGB and segmentation; and culling does hide links (the
    comparison is not vacuous): most of the arm at the home pose, some but not all links in many poses."""
    rng = np.random.default_rng(0)
    partial = 0
    for size, camera in ((64, "oblique"), (48, "side")):
        with episode_world(check_params("dynamic", 1, size=size, steps=4, camera=camera), 0) as (p, w, _, _):
            home = {link for link, _ in C.hidden_links(p, w)}
            if camera == "oblique":
                assert {0, 1, 2, 3} <= home and 8 not in home       # the upper arm is out of view, the hand in it
            info = [p.getJointInfo(w.robot, j, physicsClientId=w.client) for j in range(7)]
            for k in range(24):
                q = rng.uniform([i[8] for i in info], [i[9] for i in info])
                for j in range(7):
                    p.resetJointState(w.robot, j, q[j], physicsClientId=w.client)
                if k % 2:
                    p.stepSimulation(physicsClientId=w.client)
                rgb, seg = S.render(p, w, seg=True)
                rgb_full, seg_full = S.render(p, w, seg=True, cull=False)
                np.testing.assert_array_equal(rgb, rgb_full)
                np.testing.assert_array_equal(seg, seg_full)
                partial += 0 < len(C.hidden_links(p, w)) < len(w.cull.links)
    assert partial >= 8


def test_render_restores_the_links_colours():
    with episode_world(check_params("static", 1, steps=4), 0) as (p, w, _, _):
        before = [v[7] for v in p.getVisualShapeData(w.robot, physicsClientId=w.client)]
        assert C.hidden_links(p, w)
        S.render(p, w)
        assert [v[7] for v in p.getVisualShapeData(w.robot, physicsClientId=w.client)] == before


def test_a_mesh_that_cannot_be_read_is_never_culled(tmp_path):
    assert C._obj_hull(str(tmp_path / "missing.obj")) is None
    bad = tmp_path / "flat.obj"
    bad.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nf 1 2 3\n")     # coplanar: no 3-d hull
    assert C._obj_hull(str(bad)) is None
