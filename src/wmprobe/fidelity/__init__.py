"""Visual fidelity of frozen latents: PSNR / SSIM (``metrics``), a decoder probe of the same size and budget for
every encoder (``decoder``, fed through ``rows.RowGather``) and encoders' own decoders (``own``).

PSNR and SSIM are means of per-image values over the test set; CIs are percentile bootstraps over test
EPISODES (``wmprobe.metrics.bootstrap_mean_ci``). The names below are the package's public interface.
"""
from __future__ import annotations

from wmprobe.fidelity.decoder import PRESETS, DecoderPreset, DecoderProbe, decoder_fidelity
from wmprobe.fidelity.metrics import PSNR_CAP, Scores, psnr, psnr_per_image, ssim, ssim_per_image, summarise
from wmprobe.fidelity.own import has_own_decoder, own_decoder_fidelity, own_decoder_fidelity_clips
from wmprobe.fidelity.rows import RowGather

__all__ = ["PRESETS", "PSNR_CAP", "DecoderPreset", "DecoderProbe", "RowGather", "Scores", "decoder_fidelity",
           "has_own_decoder", "own_decoder_fidelity", "own_decoder_fidelity_clips", "psnr", "psnr_per_image",
           "ssim", "ssim_per_image", "summarise"]
