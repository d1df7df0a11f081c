"""One look for every report figure: a palette keyed by family, +ID by marker and line style (never by colour),
a y (or x) range that one outlier cannot squash, labels that never overlap, PNGs at ``DPI``.

- ``family_colour(f)``: a fixed colour per known family (``FAMILY_COLOURS``; the floors grey, the ceiling black,
  the state ceiling olive), a colour derived from the name's CRC32 for any other family, so a family has the
  same colour in every figure of every report, whatever else the figure shows.
- ``style(id_weight, i)``: frozen = solid line, filled circle; +ID = dashed line, filled square; ``i`` > 0 (a
  second encoder of the same family and variant) takes the next marker of the variant's list.
- ``robust_limits(values)``: the axis range of the bulk of ``values``; values below its lower edge are drawn on
  the edge with ``CLIP_MARKER`` (see ``clip``).
- ``repel_labels(ax, ...)``: point labels that never overlap each other (each in the nearest free slot beside
  its point; in a tight cluster, numbers and a key beside the axes).
"""
from __future__ import annotations

import io
import zlib
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

DPI = 160            # PNG resolution (>= 150: readable when the page is zoomed or printed)
_T20 = plt.get_cmap("tab20").colors
FAMILY_COLOURS: dict[str, Any] = {
    "image-ssl": _T20[0], "dinov2": _T20[1], "dinov3": _T20[19], "webdino": _T20[18], "web-dino": _T20[18],
    "siglip": _T20[17], "siglip2": _T20[17], "vae": _T20[2], "autoencoder": _T20[3], "diffusion": _T20[4],
    "videomae": _T20[6], "video-mae": _T20[6], "vjepa": _T20[8], "vjepa2": _T20[9], "video-jepa": _T20[9],
    "dynamics": _T20[10], "dynamics-actin": _T20[12],
    "pixels": "#6e6e6e", "random": "#a8a8a8", "ceiling": "#000000", "state": "#6b8e23",
}
_SPARE = plt.get_cmap("tab20b").colors
MARKERS = {False: ("o", "^", "D", "v", "P", "<"), True: ("s", "X", "*", "p", "h", ">")}
CLIP_MARKER = {"below": "v", "left": "<"}
HATCH_ID = "////"    # bars of +ID encoders


def family_colour(family: object) -> Any:
    f = str(family)
    return FAMILY_COLOURS.get(f, _SPARE[zlib.crc32(f.encode()) % len(_SPARE)])


def family_colours(families) -> dict[str, Any]:
    """``{family: colour}`` for the given families (the same colour a family gets everywhere)."""
    return {str(f): family_colour(f) for f in families}


def is_id(id_weight: Any) -> bool:
    try:
        return float(id_weight) > 0
    except (TypeError, ValueError):
        return False


def style(id_weight: object, i: int = 0) -> dict[str, Any]:
    """Marker and line style of a frozen (solid, circle) or +ID (dashed, square) encoder; ``i``: its index among
    encoders of the same family and variant in one figure."""
    idv = is_id(id_weight)
    return {"marker": MARKERS[idv][i % len(MARKERS[idv])], "ls": "--" if idv else "-"}


def marker_index(d: pd.DataFrame) -> pd.Series:
    """Index of each row among rows of the same (family, variant): picks its marker (``style``)."""
    fam = d["family"].astype(str) if "family" in d else pd.Series("", index=d.index)
    var = d["id_weight"].map(is_id) if "id_weight" in d else pd.Series(False, index=d.index)
    return d.assign(_f=fam, _v=var).groupby(["_f", "_v"]).cumcount()


def note(fig, *parts: str) -> None:
    """Set ``fig.wmprobe_note``, the sentence the report adds to the figure's caption (empty parts left out)."""
    fig.wmprobe_note = " ".join(p for p in parts if p)


def robust_limits(values: Sequence[float], *, spread: float = 3.0, min_width: float = 0.2) -> tuple[float, float]:
    """(lo, hi) for an R2 axis: ``hi`` the largest value; ``lo`` the smallest value unless it lies more than
    ``spread`` x (max - median) below the median, then that bound (the bulk keeps its resolution; values below
    are drawn on the edge and marked). 5% padding; at least ``min_width`` wide."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
    if v.size == 0:
        return -1.0, 1.0
    hi, q = float(v.max()), float(np.median(v))
    lo = max(float(v.min()), q - spread * max(hi - q, min_width / 2))
    if hi - lo < min_width:
        mid = (hi + lo) / 2
        lo, hi = mid - min_width / 2, mid + min_width / 2
    pad = 0.05 * (hi - lo)
    return lo - pad, hi + pad


def clip(values: Sequence[float], lo: float) -> tuple[np.ndarray, np.ndarray]:
    """``values`` with those below ``lo`` set to ``lo``, and the mask of the clipped ones."""
    v = np.asarray(values, float)
    mask = np.isfinite(v) & (v < lo)
    return np.where(mask, lo, v), mask


def clip_note(n: int, lo: float) -> str:
    return f"{n} value(s) below {lo:.2f} drawn at the edge ({CLIP_MARKER['below']})" if n else ""


def _place(ax, pts: np.ndarray, sizes: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Bottom-left display positions for boxes of ``sizes`` beside ``pts`` with no two overlapping (see
    ``repel_labels``)."""
    renderer = ax.figure.canvas.get_renderer()
    box = ax.get_window_extent(renderer)
    pad = 4.0 * ax.figure.dpi / 72
    placed: list[tuple[float, float, float, float]] = []
    out: list[tuple[float, float]] = [(0.0, 0.0)] * len(pts)

    def free(x0: float, y0: float, w: float, h: float) -> bool:
        return not any(x0 < bx1 + 1 and x0 + w > bx0 - 1 and y0 < by1 and y0 + h > by0
                       for bx0, by0, bx1, by1 in placed)

    for i in np.argsort(pts[:, 1], kind="stable"):
        (w, h), (px, py) = sizes[i], pts[i]
        sides = [px + pad, px - pad - w]
        if px + pad + w > box.x1:
            sides.reverse()
        start = py - h / 2
        ys = [start] + [v for bx0, by0, bx1, by1 in placed for v in (by1 + 1, by0 - h - 1)]
        cands = sorted(((abs(y - start), k, x, y) for k, x in enumerate(sides) for y in ys),
                       key=lambda c: (round(c[0], 3), c[1]))
        _, _, x0, y0 = next(c for c in cands if free(c[2], c[3], w, h))
        placed.append((x0, y0, x0 + w, y0 + h))
        out[i] = (x0, y0)
    return out


def repel_labels(ax, xs: Sequence[float], ys: Sequence[float], labels: Sequence[str], *, fontsize: float = 7,
                 colours: Sequence[Any] | None = None, max_shift_lines: float = 1.5) -> list:
    """Label each point (xs, ys in data units) so that no two labels overlap. Points are taken from the lowest
    up; each label goes to the free slot nearest its point, right or left of it (a slot: level with the point,
    or just above or below a label already placed). When a label would land more than ``max_shift_lines`` text
    lines off its point (a tight cluster), every point gets a number instead, placed the same way, and a key
    right of the axes lists number -> label (numbered by descending y). Labels moved off their point get a
    leader line in the point's colour. Call after the axis limits are final. Returns the text artists."""
    renderer = ax.figure.canvas.get_renderer()
    pts = ax.transData.transform(np.column_stack([np.asarray(xs, float), np.asarray(ys, float)]))

    def sizes(texts: Sequence[str]) -> list[tuple[float, float]]:
        probe = [ax.text(0, 0, t, fontsize=fontsize) for t in texts]
        out = [(b.width, b.height) for b in (t.get_window_extent(renderer) for t in probe)]
        for t in probe:
            t.remove()
        return out

    shown = list(labels)
    sz = sizes(shown)
    pos = _place(ax, pts, sz)
    if any(abs(y0 + h / 2 - py) > max_shift_lines * h for (y0, (_, h), py) in
           ((p[1], s_, pt[1]) for p, s_, pt in zip(pos, sz, pts))):
        order = np.argsort(-pts[:, 1], kind="stable")
        shown = [""] * len(labels)
        for n, i in enumerate(order):
            shown[i] = str(n + 1)
        sz = sizes(shown)
        pos = _place(ax, pts, sz)
        key = "\n".join(f"{n + 1}  {labels[i]}" for n, i in enumerate(order))
        ax.text(1.02, 1.0, key, transform=ax.transAxes, fontsize=fontsize, va="top", ha="left", color="0.1",
                linespacing=1.25)
    texts = []
    inv = ax.transData.inverted()
    for i, ((x0, y0), (w, h)) in enumerate(zip(pos, sz)):
        t = ax.text(*inv.transform((x0, y0)), shown[i], fontsize=fontsize, color="0.1", ha="left", va="bottom",
                    zorder=4)
        if abs(y0 + h / 2 - pts[i, 1]) > 0.6 * h:
            tip = inv.transform((x0 if x0 > pts[i, 0] else x0 + w, y0 + h / 2))
            ax.plot([xs[i], tip[0]], [ys[i], tip[1]], color=colours[i] if colours is not None else "0.5", lw=0.5,
                    alpha=0.8, zorder=2)
        texts.append(t)
    return texts


def to_png(fig) -> bytes:
    """The figure as PNG bytes at ``DPI`` (the pHYs chunk says so); closes the figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def png_dpi(png: bytes) -> float | None:
    """The resolution a PNG declares (its pHYs chunk, pixels per metre -> dots per inch); None without one."""
    import struct
    i = 8
    while i + 8 <= len(png):
        length, kind = struct.unpack(">I4s", png[i:i + 8])
        if kind == b"pHYs":
            ppx, _, unit = struct.unpack(">IIB", png[i + 8:i + 17])
            return ppx * 0.0254 if unit == 1 else None
        if kind == b"IDAT":
            return None
        i += 12 + length
    return None
