"""Deprecated location of the corruptions: a re-export of ``wmprobe.data.corruptions`` (kept importable for
code written against it; new code imports ``wmprobe.data.corruptions``)."""
from wmprobe.data.corruptions import (
                                      CHUNK_ELEMENTS,
                                      CORRUPTIONS,
                                      SEVERITY_DEFAULT,
                                      ClipRng,
                                      Corruption,
                                      CorruptionType,
                                      corruption,
                                      list_specs,
                                      parse_corruption,
                                      types,
)
from wmprobe.data.corruptions.blur import defocus_blur, gaussian_blur, glass_blur, motion_blur, paper_blur, zoom_blur
from wmprobe.data.corruptions.digital import (
                                      brightness,
                                      contrast,
                                      elastic_transform,
                                      jpeg_compression_u8,
                                      pixelate,
                                      pixelate_u8,
)
from wmprobe.data.corruptions.noise import additive_noise, gaussian_noise, impulse_noise, shot_noise, speckle_noise
from wmprobe.data.corruptions.weather import fog, frost, snow

__all__ = ["CHUNK_ELEMENTS", "CORRUPTIONS", "SEVERITY_DEFAULT", "ClipRng", "Corruption", "CorruptionType",
           "additive_noise", "brightness", "contrast", "corruption", "defocus_blur", "elastic_transform", "fog",
           "frost", "gaussian_blur", "gaussian_noise", "glass_blur", "impulse_noise", "jpeg_compression_u8",
           "list_specs", "motion_blur", "paper_blur", "parse_corruption", "pixelate", "pixelate_u8", "shot_noise",
           "snow", "speckle_noise", "types", "zoom_blur"]
