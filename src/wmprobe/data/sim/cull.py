"""Frustum culling of the robot's links for ``scene.render``: the same pixels, fewer triangles drawn.

pybullet's TinyRenderer runs its vertex shader on every triangle of every visual shape, whether or not it
lands in the image. The Franka Panda's visual meshes are ~116 k triangles (links 1-6 alone ~94 k); at 64 x 64
they are ~95 % of a frame's cost, and from the suites' cameras most of the arm is outside the image most of
the time (the oblique camera sees the hand, the fingers and usually the forearm). ``hidden_links`` names the
links whose whole visual mesh lies outside the view frustum; ``scene.render`` sets their alpha to 0 for the
one ``getCameraImage`` call (TinyRenderer skips a zero-alpha object) and restores their colour after it.

Why the frame is bit-identical: a link is hidden only when every vertex of the convex hull of its mesh lies
strictly outside one side plane of the frustum, with a margin of ``MARGIN_PX`` pixels. The outside of a plane
is convex, so every triangle of the mesh, and every piece TinyRenderer's near-plane clipping cuts from one, lies
there too: it projects beyond the image's edge, where the rasterizer tests no pixel centre (its bounding box is
clamped to the image and a point outside the triangle fails the barycentric test), so it writes no colour, depth
or segmentation value. Drawing it or not leaves every buffer as it was. The planes are built from the camera's
own matrices (``World.view``, ``World.proj``) and the links' frames computed from the current joint positions
(``computeForwardKinematics``: the frames the renderer draws with; the ones pybullet caches between steps lag a
substep behind); the margin absorbs float32 rounding. Computing the links' frames changes no later physics:
every physics step recomputes them before it uses them, and ``ee_pose`` computed them every step already.
``tests/data/test_render_cull.py`` compares culled and full renders (RGB and segmentation) over generated
episodes and random arm poses; before landing, 1,920 frames of generated episodes (4 cameras x 2 wrist modes x
2 suites), 800 random arm poses at 4 sizes and 480 frames of closed-loop rollouts were compared: all identical.

Shapes: the hulls of a body's ``n`` links are ``(n, 3, K)`` float64 points in their links' frames; per frame the
test is one batched ``(n, 4, 3) @ (n, 3, K)`` product (the Panda: 10 mesh links, hulls of up to 2,183 points).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

MARGIN_PX = 2.0          # a link is culled only when its hull is at least this many pixels beyond an image edge


@lru_cache(maxsize=64)
def _obj_hull(path: str) -> np.ndarray | None:
    """``(K, 3)`` vertices of the convex hull of every ``v`` line of a Wavefront .obj file (its own units), or
    None when the file cannot be read as one (such a link is simply never culled)."""
    from scipy.spatial import ConvexHull
    try:
        data = Path(path).read_bytes()
        rows = [line.split()[1:4] for line in data.splitlines() if line.startswith(b"v ")]
        pts = np.array(rows, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) < 4 or not np.isfinite(pts).all():
            return None
        return np.ascontiguousarray(pts[ConvexHull(pts).vertices])
    except (OSError, ValueError, RuntimeError):      # scipy's QhullError is a RuntimeError
        return None


def _rots(quats: np.ndarray) -> np.ndarray:
    """``(n, 3, 3)`` rotations of unit quaternions ``(n, 4)`` as ``(x, y, z, w)``."""
    x, y, z, w = np.asarray(quats, np.float64).T
    return np.stack([np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
                     np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
                     np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)], 1)


@dataclass(frozen=True)
class Hulls:
    """The cullable links of one body: ``links`` (n,), ``points (n, 3, K)`` each link's hull in its URDF frame,
    coordinates first (shorter hulls padded with their own first point), ``rgba`` each link's colour (restored
    after a render)."""

    links: tuple[int, ...]
    points: np.ndarray
    rgba: tuple[tuple[float, ...], ...]


def link_hulls(p: Any, client: int, body: int) -> Hulls:
    """The links of ``body`` (base excluded) that have exactly one visual shape, a mesh read from an .obj file:
    the links TinyRenderer could skip, with their hulls."""
    shapes: dict[int, list[Any]] = {}
    for v in p.getVisualShapeData(body, physicsClientId=client):
        shapes.setdefault(int(v[1]), []).append(v)
    links, hulls, colours = [], [], []
    for link, vs in sorted(shapes.items()):
        if link < 0 or len(vs) != 1 or vs[0][2] != p.GEOM_MESH:
            continue
        _, _, _, scale, fname, lpos, lorn, rgba = vs[0][:8]
        name = fname.decode() if isinstance(fname, bytes) else str(fname)
        hull = _obj_hull(name) if name.lower().endswith(".obj") else None
        if hull is None:
            continue
        links.append(link)
        hulls.append((hull * np.asarray(scale, np.float64)) @ _rots(np.asarray([lorn]))[0].T + np.asarray(lpos))
        colours.append(tuple(float(c) for c in rgba))
    k = max((len(h) for h in hulls), default=0)
    points = np.stack([np.concatenate([h, np.repeat(h[:1], k - len(h), 0)]).T for h in hulls]) if hulls \
        else np.zeros((0, 3, 0))
    return Hulls(tuple(links), points, tuple(colours))


def hidden_links(p: Any, w: Any) -> list[tuple[int, tuple[float, ...]]]:
    """``[(link, rgba)]`` of the robot links of world ``w`` that lie wholly outside its camera's view (module
    doc), with the colour to restore. ``w.cull`` caches ``link_hulls`` for the world."""
    if w.cull is None:
        w.cull = link_hulls(p, w.client, w.robot)
    hulls: Hulls = w.cull
    if not hulls.links:
        return []
    clip = np.asarray(w.proj, np.float64).reshape(4, 4).T @ np.asarray(w.view, np.float64).reshape(4, 4).T
    m = 1.0 + 2.0 * MARGIN_PX / w.size
    # the four side planes as rows acting on clip coordinates (x, y, z, w): outside when the value is > 0
    planes = np.array([[1, 0, 0, -m], [-1, 0, 0, -m], [0, 1, 0, -m], [0, -1, 0, -m]], np.float64) @ clip
    states = p.getLinkStates(w.robot, list(hulls.links), computeForwardKinematics=True, physicsClientId=w.client)
    pos = np.array([st[4] for st in states], np.float64)                       # (n, 3) link frames in the world
    lin = planes[None, :, :3] @ _rots(np.array([st[5] for st in states]))     # (n, 4, 3): planes in link frames
    off = pos @ planes[:, :3].T + planes[:, 3]                                  # (n, 4)
    outside = ((lin @ hulls.points).min(axis=2) + off > 0).any(axis=1)
    return [(link, rgba) for link, rgba, out in zip(hulls.links, hulls.rgba, outside) if out]
