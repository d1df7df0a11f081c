"""Digital corruptions (ImageNet-C): brightness, contrast, elastic_transform, pixelate and jpeg_compression.

Each float op maps ``x: (M, 3, H, W)`` float32 in [0, 1] to the same shape (the caller clips and rounds), with
the parameters of ``imagecorruptions`` 1.1.2 indexed by severity 1-5. pixelate and jpeg_compression also run
Pillow's own code on 8-bit frames (``u8`` ops, bit-identical to the reference; version 2 of both: each
version 1 was within about one grey level of it).
"""
from __future__ import annotations

import functools
import io
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
import torch.nn.functional as F

from wmprobe.data.corruptions.ops import ClipRng, gaussian
from wmprobe.data.corruptions.registry import corruption

if TYPE_CHECKING:
    from PIL import Image


@corruption("brightness", "ImageNet-C HSV value shift, severity 1-5")
def brightness(x: torch.Tensor, s: int, rng: ClipRng) -> torch.Tensor:
    """HSV value + c, exactly: scaling RGB by V'/V keeps hue and saturation (black becomes grey V')."""
    c = [.1, .2, .3, .4, .5][s - 1]
    v = x.amax(1, keepdim=True)
    v2 = (v + c).clamp(0, 1)
    return torch.where(v > 0, x * v2 / v.clamp_min(1e-12), v2)


@corruption("contrast", "ImageNet-C contrast reduction around the per-channel mean, severity 1-5")
def contrast(x: torch.Tensor, s: int, rng: ClipRng) -> torch.Tensor:
    c = [0.4, .3, .2, .1, .05][s - 1]
    mean = x.mean((2, 3), keepdim=True)
    return (x - mean) * c + mean


def _reflect_coord(c: torch.Tensor, n: int) -> torch.Tensor:
    """scipy ``mode='reflect'`` (about pixel edges) for bilinear sampling: map into ``[0, n-1]``."""
    u = (c + 0.5).remainder(2 * n)
    u = torch.where(u >= n, 2 * n - u, u) - 0.5
    return u.clamp(0, n - 1)


@corruption("elastic_transform", "ImageNet-C smooth random displacement field, severity 1-5")
def elastic_transform(x: torch.Tensor, s: int, rng: ClipRng) -> torch.Tensor:
    m, c, h, w = x.shape
    alpha = [250 * 0.05, 250 * 0.065, 250 * 0.085, 250 * 0.1, 250 * 0.12][s - 1]
    sig, md = (h * 0.01, w * 0.01), h * 0.005
    disp = rng.uniform(-md, md, 2, h, w)                                 # (M, 2, H, W): dy, dx
    disp = gaussian(disp, sig, mode="symmetric", truncate=3.0) * alpha
    rows = _reflect_coord(torch.arange(h).view(1, h, 1) + disp[:, 0], h)
    cols = _reflect_coord(torch.arange(w).view(1, 1, w) + disp[:, 1], w)
    grid = torch.stack([cols / max(w - 1, 1) * 2 - 1, rows / max(h - 1, 1) * 2 - 1], -1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


@functools.lru_cache(maxsize=64)
def _box_sum(n: int, o: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pillow's BOX resampling from ``n`` to ``o`` pixels as an ``(o, n)`` 0/1 matrix (input pixel j counts for
    output i if its centre lies in i's span) and the ``(o,)`` number of inputs of each output."""
    # Pillow's precompute_coeffs with the same float64 operations (ties at a window edge are common): a window
    # [xmin, xmax) around each output centre, then the box filter evaluated at each input centre
    scale = n / o
    support = 0.5 * max(scale, 1.0)
    centre = (torch.arange(o, dtype=torch.float64) + 0.5) * scale
    xmin = (centre - support + 0.5).floor().clamp(min=0)[:, None]
    xmax = (centre + support + 0.5).floor().clamp(max=n)[:, None]
    j = torch.arange(n, dtype=torch.float64)[None]
    t = ((j - centre[:, None]) + 0.5) * (1.0 / max(scale, 1.0))
    inside = ((j >= xmin) & (j < xmax) & (t > -0.5) & (t <= 0.5)).float()
    return inside, inside.sum(1)


@functools.lru_cache(maxsize=32)
def _nearest_index(n: int, o: int) -> torch.Tensor:
    """Source pixel of each of ``o`` outputs in Pillow's NEAREST resize from ``n`` pixels: ``(i + 0.5) n / o``
    truncated, accumulated in float64 step by step as Pillow's ImagingScaleAffine does (the rounding of the
    running sum decides ties)."""
    step, pos, out = n / o, 0.5 * (n / o), []
    for _ in range(o):
        out.append(min(int(pos), n - 1))
        pos += step
    return torch.tensor(out, dtype=torch.long)


def pixelate_u8(seg: torch.Tensor, s: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """``pixelate`` on 8-bit frames ``(n, H, W, 3) uint8 -> same`` (written into ``out`` when given): Pillow's
    own ``resize(BOX)`` then ``resize(NEAREST)`` per frame, as imagecorruptions does (Pillow comes with
    matplotlib). The values are those of the float op ``pixelate`` (tested). Pillow's uint8 C code is ~2x
    faster than that op on CPU and releases the GIL, so clip workers run in parallel; one Pillow image per
    call is refilled frame by frame (``frombytes``) and each result is copied straight into ``out``, which
    saves the reference's per-frame ``fromarray`` and array conversions. (Whole-clip variants, one tall
    image or numpy/torch box sums, were measured slower: the 2-5 tap box filter is Pillow's C loop at
    ~1.4 ns per output value, and a clip-sized image falls out of the L2 cache.)"""
    from PIL import Image
    c = [0.6, 0.5, 0.4, 0.3, 0.25][s - 1]
    n, h, w, _ = seg.shape
    oh, ow = max(1, int(h * c)), max(1, int(w * c))
    src = seg.contiguous().numpy()
    if out is None:
        out = torch.empty_like(seg)
    dst = out.numpy()
    frame = Image.new("RGB", (w, h))
    rows = _nearest_index(oh, h).numpy()
    for k in range(n):
        frame.frombytes(src[k])
        # NEAREST up-sampling picks whole rows and columns: Pillow picks the columns (the small image's width
        # becomes W, its rows stay), then the rows are copied out with Pillow's row index (_nearest_index,
        # ImagingScaleAffine's running sum), so the full-size image is never built twice
        wide = frame.resize((ow, oh), Image.BOX).resize((w, oh), Image.NEAREST)
        np.take(np.asarray(wide), rows, axis=0, out=dst[k])
    return out


@corruption("pixelate", "ImageNet-C box downsample + nearest upsample, severity 1-5", version=2, u8=pixelate_u8)
def pixelate(x: torch.Tensor, s: int, rng: ClipRng) -> torch.Tensor:
    """Pillow's ``resize(BOX)`` down then ``resize(NEAREST)`` up, bit for bit: like Pillow, the horizontal pass
    runs first and rounds to 8 bits (half up) before the vertical one. The 0/1 box sums of 8-bit values are
    exact in float32, so the only rounding is Pillow's own."""
    c = [0.6, 0.5, 0.4, 0.3, 0.25][s - 1]
    h, w = x.shape[-2:]
    oh, ow = max(1, int(h * c)), max(1, int(w * c))
    (bw, cw), (bh, ch) = _box_sum(w, ow), _box_sum(h, oh)
    v = (x * 255).round_()                                              # the frame's 8-bit values
    v = (v @ bw.T).div_(cw).add_(0.5).floor_()                          # horizontal pass, 8-bit result
    v = (bh @ v).div_(ch[:, None]).add_(0.5).floor_().div_(255)         # vertical pass
    return v.index_select(-2, _nearest_index(oh, h)).index_select(-1, _nearest_index(ow, w))


@functools.lru_cache(maxsize=8)
def _jpeg_config(quality: int) -> tuple[object, ...] | None:
    """The encoder settings Pillow's ``Image.save(fp, "JPEG", quality=quality)`` passes to its libjpeg encoder
    for an RGB image without metadata (read back from a save of an 8 x 8 image, so they follow the installed
    Pillow), or None when this Pillow lacks the codec entry points (then the clip loop uses save/open)."""
    from PIL import Image
    if not (hasattr(Image, "_getencoder") and hasattr(Image, "_getdecoder")):
        return None
    im = Image.new("RGB", (8, 8))
    im.save(io.BytesIO(), "JPEG", quality=quality)
    config = getattr(im, "encoderconfig", None)
    return tuple(config) if isinstance(config, tuple) else None


def _jpeg_round_trip(src: "Image.Image", dst: "Image.Image", config: tuple[object, ...]) -> None:
    """Encode ``src`` (RGB) with Pillow's libjpeg encoder and ``config``, then decode into ``dst`` (same size):
    the calls ``Image.save`` and ``Image.open(...).load()`` make (ImageFile._save / ImageFile.load), without
    their Python around it (the file-format probe, the marker parse, the BytesIO)."""
    from PIL import Image, ImageFile
    w, h = src.size
    enc = Image._getencoder("RGB", "jpeg", "RGB", config)
    parts, err = [], 0
    try:
        enc.setimage(src.im, (0, 0, w, h))
        bufsize = max(ImageFile.MAXBLOCK, w * 4)
        while not err:
            _, err, data = enc.encode(bufsize)
            parts.append(data)
    finally:
        enc.cleanup()
    if err < 0:
        raise OSError(f"jpeg_compression: Pillow's JPEG encoder failed (error {err}) on a {w} x {h} frame")
    dec = Image._getdecoder("RGB", "jpeg", ("RGB", ""))
    try:
        dec.setimage(dst.im, (0, 0, w, h))
        used, err = dec.decode(b"".join(parts))
    finally:
        dec.cleanup()
    if used >= 0 or err < 0:
        raise OSError(f"jpeg_compression: Pillow's JPEG decoder failed (error {err}) on a {w} x {h} frame")


def jpeg_compression_u8(seg: torch.Tensor, s: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """``(n, H, W, 3) uint8 -> same`` (written into ``out`` when given): a JPEG round trip per frame through
    Pillow's libjpeg codec at quality 25, 18, 15, 10, 7 (Pillow's defaults otherwise: 4:2:0 chroma), exactly
    what imagecorruptions does, so the output is bit-identical to the reference (tested against
    ``Image.save`` + ``Image.open``). The codec is called directly with the settings ``Image.save`` would pass
    (``_jpeg_config``), on one source and one target image refilled frame by frame: ~1.5x the reference's
    speed, all of it the Python that ``save``/``open``/``fromarray`` run around libjpeg. (Version 1 was a
    float-DCT round trip in torch, within ~0.5 grey levels of it and ~5x slower than libjpeg.)"""
    from PIL import Image
    quality = [25, 18, 15, 10, 7][s - 1]
    n, h, w, _ = seg.shape
    src = seg.contiguous().numpy()
    if out is None:
        out = torch.empty_like(seg)
    dst = out.numpy()
    config = _jpeg_config(quality)
    frame, result = Image.new("RGB", (w, h)), Image.new("RGB", (w, h))
    for k in range(n):
        frame.frombytes(src[k])
        if config is None:                                             # public API: same bytes, more Python
            buf = io.BytesIO()
            frame.save(buf, "JPEG", quality=quality)
            buf.seek(0)
            with Image.open(buf) as im:                               # RGB: Pillow writes 3-channel JFIF
                dst[k] = np.asarray(im)
            continue
        _jpeg_round_trip(frame, result, config)
        dst[k] = np.asarray(result)
    return out


def _via_u8(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> Callable[..., torch.Tensor]:
    """A uint8 op ``fn((n, H, W, 3) uint8, severity)`` as a float op on ``(M, 3, H, W)`` in [0, 1]."""
    def op(x: torch.Tensor, s: int, rng: "ClipRng") -> torch.Tensor:
        u8 = (x.clamp(0, 1) * 255).round_().to(torch.uint8).permute(0, 2, 3, 1)
        return fn(u8, s).permute(0, 3, 1, 2).float().div_(255)
    op.__doc__ = fn.__doc__
    return op


corruption("jpeg_compression", "ImageNet-C JPEG round trip (quality 25,18,15,10,7), severity 1-5", version=2,
           u8=jpeg_compression_u8)(_via_u8(jpeg_compression_u8))
