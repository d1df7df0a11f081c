"""Image corruptions, batched on torch tensors and deterministic for a seed.

``parse_corruption(spec) -> Corruption``; ``Corruption.apply_clips(frames, seeds)`` with
``frames: (B, T, H, W, 3) uint8`` and one seed per clip returns the same shape and dtype. Every random draw of
clip ``b`` comes from its own ``torch.Generator`` seeded with ``seeds[b]``, so a clip's output is identical
whether it is corrupted alone or inside any batch (the extraction layer passes a seed derived from the episode
index). ``apply(frames, seed)`` is shorthand for per-clip seeds ``seed * 1_000_003 + b`` (it DOES depend on a
clip's position in the batch; use ``apply_clips`` when that matters). Frames within a clip get independent
draws (each frame is one ImageNet-C image). Work is done in float32 on ``(n, 3, H, W)`` in [0, 1], one clip at a
time in chunks of ``n = CHUNK_ELEMENTS // (H * W * 3)`` frames (cache-sized: on CPU this is several times faster
than one batch of every frame; a clip's draws continue across its chunks, so the result depends only on the
clip, its seed and the frame size), on one intra-op thread; outputs are rounded to the nearest integer
(imagecorruptions truncates with ``np.uint8``, ~0.5 lower on average).

Specs (the canonical string is ``Corruption.spec`` and the records' ``corruption`` column):
- ``clean``: identity.
- ``noise:SIGMA`` (default 0.15): the paper's additive Gaussian noise, sigma on [0, 1] pixels, then clipped.
- ``blur:K`` (default 11, odd): the paper's Gaussian blur with a K x K kernel; sigma follows OpenCV's rule for
  ``sigma=0``: ``0.3 * ((K - 1) / 2 - 1) + 0.8`` (2.0 for K = 11); borders reflect (OpenCV's REFLECT_101).
- ImageNet-C ``NAME:SEVERITY`` (1-5, default 3) with the parameters of ``imagecorruptions`` 1.1.2 (one module
  per family: noise.py, blur.py, weather.py, digital.py; shared kernels and filters in ops.py). Known
  differences from the reference: glass_blur replaces the sequential random pixel swaps by one random local
  gather per iteration (same displacement range); frost uses a procedural ridged-noise ice texture with the
  reference images' mean colour and contrast instead of its six photographs (not shipped); pixelate and
  jpeg_compression run Pillow's own code on 8-bit frames (bit-identical to the reference); fog's plasma
  fractal and every other random field use torch's generator, so draws match the reference in distribution,
  not value.

Layout: ``registry.py`` (``CorruptionType`` and the ``@corruption`` decorator), ``ops.py`` (random draws,
padding, filters), one module per family registering its types, ``corruption.py`` (``Corruption``,
``parse_corruption``, ``list_specs``). Adding a type: one ``@corruption(...)`` op in its family module.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping

# the family modules register their types on import, in this order (the order of ``list_specs``)
# isort: off
from wmprobe.data.corruptions import noise  # noqa: F401
from wmprobe.data.corruptions import blur  # noqa: F401
from wmprobe.data.corruptions import weather  # noqa: F401
from wmprobe.data.corruptions import digital  # noqa: F401
# isort: on
from wmprobe.data.corruptions.corruption import CHUNK_ELEMENTS, Corruption, list_specs, parse_corruption
from wmprobe.data.corruptions.ops import ClipRng
from wmprobe.data.corruptions.registry import SEVERITY_DEFAULT, TYPES, CorruptionType, corruption, lookup, types


class _Descriptions(Mapping[str, str]):
    """``name -> description`` of every registered type, read live from the registry."""

    def __getitem__(self, name: str) -> str:
        t = lookup(name)
        if t is None:
            raise KeyError(name)
        return t.description

    def __iter__(self) -> Iterator[str]:
        return iter(types())

    def __len__(self) -> int:
        return len(types())


#: name -> one-line description (``wmprobe ls corruptions``)
CORRUPTIONS: Mapping[str, str] = _Descriptions()

__all__ = ["CHUNK_ELEMENTS", "CORRUPTIONS", "SEVERITY_DEFAULT", "TYPES", "ClipRng", "Corruption", "CorruptionType",
           "corruption", "list_specs", "lookup", "parse_corruption", "types"]
