"""diffusers encoders: AutoencoderKL latents (SD / SDXL VAE) and diffusion-denoiser features.

This module is ``wmprobe.encoders.diffusers``; the library is imported as ``_df`` to avoid the name clash.

``sd-vae[:dir-or-hub-id]`` (``AutoencoderKL``): frames are resized to ``input_size`` (option ``size``, default
the checkpoint's ``sample_size``), scaled to [-1, 1]; layer ``out`` holds the posterior MEAN (no sampling,
no ``scaling_factor``) as tokens ``(B, T, h*w, C)`` with ``h = input_size / 2**(len(block_out_channels)-1)``.
``decode_latents(tokens: (B, T, N, D)) -> (B, T, H, W, 3) uint8`` runs the VAE's own decoder (at
``input_size``), so fidelity (PSNR / SSIM) needs no trained decoder probe.

``diffusion-unet[:dir-or-hub-id]``: a ``UNet2DModel`` directory, or a pipeline directory (``model_index.json``
with ``unet/``, ``scheduler/`` and, for latent models, ``vae/``). Frames in [-1, 1] (or their VAE latent
times ``scaling_factor``) are noised to timestep ``t`` with the checkpoint's scheduler config
(``sqrt(abar_t) x + sqrt(1 - abar_t) eps`` with the scheduler's ``alphas_cumprod``, i.e. what
``DDPMScheduler.add_noise`` computes; a default DDPM schedule when absent) using ONE fixed noise map drawn from
``seed`` and shared by every frame, so features are deterministic and do not depend on batching. One
denoiser forward; ``UNet2DConditionModel`` gets a zero text conditioning ``(M, 1, cross_attention_dim)``
(not the CLIP embedding of an empty prompt: no text encoder is loaded) and zero SDXL ``text_time`` extras.
Layers are block outputs ``down_blocks.i``, ``mid_block``, ``up_blocks.i`` as tokens ``(B, T, h*w, C)``;
the default is ``up_blocks.1`` (the usual choice for diffusion features), else ``mid_block``. ``t``,
``seed`` and the conditioning are in ``spec.extra`` and therefore in ``spec.key()``.

``cosmos[:dir-or-hub-id]`` (``AutoencoderKLCosmos``, the Cosmos tokenizer: a causal video autoencoder whose
first latent step holds the first frame alone and every later step ``r`` more frames, ``r`` = its temporal
compression): a clip of ``r * k`` frames is encoded with its first frame repeated in front (``1 + r * k``
frames in, ``1 + k`` latent steps out) and latent step 0, which only saw that repeated frame, is dropped.
Step ``i`` then covers frames ``r*i .. r*i + r - 1`` of the clip, like a tubelet of ``r`` frames
(``frames_per_step = r``, frame index ``r * i``). Extraction windows episodes into clips of ``window`` frames
(default ``2 * r``: two steps per clip). The latent is deterministic (``latent_dist.mode()``); layer ``out``
holds it as tokens ``(B, T', h*w, C)``. Spatial and temporal compression are read from the config (patch size
and the number of down blocks that halve each axis, as the model builds them) and checked on every clip.
No own-decoder fidelity: the decoder needs the dropped step 0, so the decoder probe measures it.
"""
from __future__ import annotations

import importlib
import math
from typing import Any, Sequence

import torch

from wmprobe.encoders import hub
from wmprobe.encoders.base import Encoder, EncoderSpec, conv_tokens
from wmprobe.encoders.hf import normalise_stage, resize_stage
from wmprobe.errors import EncoderError

HALF = (0.5, 0.5, 0.5)


def _lib() -> Any:
    try:
        return importlib.import_module("diffusers")
    except ImportError:
        raise EncoderError("diffusers encoders need diffusers (pip install -c constraints.txt 'wmprobe[hf]')") from None


class _Stop(Exception):
    pass


def _load(cls: Any, ckpt: hub.Checkpoint, sub: str, what: str, dtype: torch.dtype) -> torch.nn.Module:
    try:
        return cls.from_pretrained(str(ckpt.path), subfolder=sub or None, use_safetensors=True, torch_dtype=dtype,
                                   low_cpu_mem_usage=False)
    except (OSError, ValueError, RuntimeError, EnvironmentError) as exc:
        raise EncoderError(f"{what}: cannot load {cls.__name__} from '{ckpt.source}' {sub}: {exc}") from None


class FrameEncoder(Encoder):
    """Per-frame diffusers encoder: ``forward_frames(x: (M, 3, h, w)) -> {layer: (M, N, D)}`` in batches."""

    def __init__(self, spec: EncoderSpec, device: torch.device, bf16: bool, batch_size: int):
        self.spec, self.device, self.bf16, self.batch_size = spec, device, bool(bf16), max(1, int(batch_size))

    def resize_frames(self, frames: torch.Tensor) -> torch.Tensor:
        return resize_stage(frames, self.spec, self.device)

    def normalise(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        return normalise_stage(x, self.spec, out)

    def forward_frames(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward_layers(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        b, t = x.shape[:2]
        flat = x.reshape(b * t, *x.shape[2:])
        parts = []
        for i in range(0, flat.shape[0], self.batch_size):
            with hub.autocast(self.device, self.bf16):
                parts.append(self.forward_frames(flat[i:i + self.batch_size], layers))
        return {l: torch.cat([p[l] for p in parts]).float().reshape(b, t, *parts[0][l].shape[1:]) for l in layers}


class VAEEncoder(FrameEncoder):
    def __init__(self, spec: EncoderSpec, vae: torch.nn.Module, device: torch.device, bf16: bool, batch_size: int):
        super().__init__(spec, device, bf16, batch_size)
        self.vae = vae.to(device).eval().requires_grad_(False)
        self.dtype = next(vae.parameters()).dtype

    def forward_frames(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        mean = self.vae.encode(x.to(self.dtype)).latent_dist.mean                 # (M, C, h, w)
        return {"out": conv_tokens(mean)}

    def decode_latents(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens: (B, T, N, D)`` posterior means -> ``(B, T, H, W, 3) uint8`` at ``spec.input_size``."""
        b, t, n, d = tokens.shape
        h, w = (s // self.spec.extra["downsample"] for s in self.spec.input_size)
        if n != h * w:
            raise EncoderError(f"{self.spec.name}: decode_latents expects {h * w} tokens per step, got {n}")
        z = tokens.reshape(b * t, h, w, d).permute(0, 3, 1, 2).to(self.device, self.dtype)
        out = []
        with torch.inference_mode(), hub.autocast(self.device, self.bf16):
            for i in range(0, z.shape[0], self.batch_size):
                out.append(self.vae.decode(z[i:i + self.batch_size]).sample.float())
        img = ((torch.cat(out).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return img.permute(0, 2, 3, 1).reshape(b, t, *self.spec.input_size, 3).cpu()


class UNetEncoder(FrameEncoder):
    def __init__(self, spec: EncoderSpec, unet: torch.nn.Module, vae: torch.nn.Module | None, alphas: torch.Tensor,
                 device: torch.device, bf16: bool, batch_size: int):
        super().__init__(spec, device, bf16, batch_size)
        self.unet = unet.to(device).eval().requires_grad_(False)
        self.vae = vae.to(device).eval().requires_grad_(False) if vae is not None else None
        self.dtype = next(unet.parameters()).dtype
        self.alpha_bar = float(alphas[int(spec.extra["t"])])
        self.blocks = {f"down_blocks.{i}": m for i, m in enumerate(unet.down_blocks)}
        if unet.mid_block is not None:
            self.blocks["mid_block"] = unet.mid_block
        self.blocks.update({f"up_blocks.{i}": m for i, m in enumerate(unet.up_blocks)})
        self._noise: torch.Tensor | None = None

    def noise(self, shape: tuple[int, ...]) -> torch.Tensor:
        """One ``(C, h, w)`` noise map from ``extra['seed']``, shared by every frame."""
        if self._noise is None or tuple(self._noise.shape) != shape:
            g = torch.Generator().manual_seed(int(self.spec.extra["seed"]))
            self._noise = torch.randn(shape, generator=g).to(self.device)
        return self._noise

    def forward_frames(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        x = x.to(self.dtype)
        if self.vae is not None:
            x = self.vae.encode(x).latent_dist.mean * float(self.spec.extra["scaling_factor"])
        a = self.alpha_bar
        noisy = a ** 0.5 * x + (1 - a) ** 0.5 * self.noise(tuple(x.shape[1:])).to(x.dtype)
        last = max(list(self.blocks).index(l) for l in layers)
        captured: dict[str, torch.Tensor] = {}

        def hook(name: str, stop: bool):
            def fn(_m: Any, _i: Any, out: Any) -> None:
                captured[name] = conv_tokens(out[0] if isinstance(out, (tuple, list)) else out)
                if stop:
                    raise _Stop
            return fn

        handles = [self.blocks[l].register_forward_hook(hook(l, list(self.blocks).index(l) == last)) for l in layers]
        t = torch.full((x.shape[0],), int(self.spec.extra["t"]), device=x.device, dtype=torch.long)
        kwargs: dict[str, Any] = {}
        cfg = self.unet.config
        if getattr(cfg, "cross_attention_dim", None) is not None:
            dim = cfg.cross_attention_dim
            dim = dim[0] if isinstance(dim, (list, tuple)) else dim
            kwargs["encoder_hidden_states"] = torch.zeros(x.shape[0], 1, dim, device=x.device, dtype=x.dtype)
            if getattr(cfg, "addition_embed_type", None) == "text_time":
                n_text = cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim
                h, w = self.spec.input_size
                kwargs["added_cond_kwargs"] = {
                    "text_embeds": torch.zeros(x.shape[0], n_text, device=x.device, dtype=x.dtype),
                    "time_ids": torch.tensor([[h, w, 0, 0, h, w]] * x.shape[0], device=x.device, dtype=x.dtype)}
        try:
            self.unet(noisy, t, **kwargs)
        except _Stop:
            pass
        finally:
            for hd in handles:
                hd.remove()
        return {l: captured[l] for l in layers}


class CosmosEncoder(Encoder):
    """Causal video tokenizer clips ``(B, r*k, 3, h, w)`` -> ``{"out": (B, k, h'*w', C)}`` (see the module doc)."""

    def __init__(self, spec: EncoderSpec, vae: torch.nn.Module, device: torch.device, bf16: bool):
        self.spec, self.device, self.bf16 = spec, device, bool(bf16)
        self.vae = vae.to(device).eval().requires_grad_(False)
        self.dtype = next(vae.parameters()).dtype

    def resize_frames(self, frames: torch.Tensor) -> torch.Tensor:
        return resize_stage(frames, self.spec, self.device)

    def normalise(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        return normalise_stage(x, self.spec, out)

    def forward_layers(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        b, t = x.shape[:2]
        r, down = self.spec.frames_per_step, self.spec.extra["downsample"]
        clip = torch.cat([x[:, :1], x], dim=1).transpose(1, 2).to(self.dtype)   # (B, 3, 1 + T, h, w)
        out = []
        with hub.autocast(self.device, self.bf16):
            for i in range(b):  # one clip at a time: a video VAE's activations are large
                out.append(self.vae.encode(clip[i:i + 1]).latent_dist.mode().float())
        z = torch.cat(out)                                                        # (B, C, 1 + k, h', w')
        want = (1 + t // r, *(s // down for s in self.spec.input_size))
        if tuple(z.shape[2:]) != want:
            raise EncoderError(f"{self.spec.name}: {1 + t} frames of {tuple(self.spec.input_size)} gave latents "
                               f"{tuple(z.shape[2:])}, expected {want} from the config's compression "
                               f"({r} frames, {down} px per latent); the checkpoint's config does not match its model")
        z = z[:, :, 1:]                                                           # drop the repeated first frame
        return {"out": z.permute(0, 2, 3, 4, 1).reshape(b, t // r, -1, z.shape[1])}


def _cosmos_compression(cfg: dict[str, Any]) -> tuple[int, int]:
    """(temporal, spatial) compression as AutoencoderKLCosmos builds its encoder: the patch size, times 2 for
    each of the first ``len(blocks) - 2`` down blocks that halves that axis (``log2(ratio) - log2(patch)`` of them)."""
    patch = int(cfg.get("patch_size", 4))
    n_down = max(0, len(cfg.get("encoder_block_out_channels", (128, 256, 512, 512))) - 2)

    def axis(ratio: int) -> int:
        return patch * 2 ** max(0, min(n_down, int(math.log2(ratio)) - int(math.log2(patch))))
    return axis(int(cfg.get("temporal_compression_ratio", 8))), axis(int(cfg.get("spatial_compression_ratio", 8)))


def cosmos_tokenizer(arg: str | None = None, *, device: str = "auto", dtype: str | None = None, bf16: bool = False,
                     size: int | None = None, window: int | None = None,
                     trust_remote_code: bool = False) -> CosmosEncoder:
    """``cosmos[:dir-or-hub-id]``: Cosmos tokenizer latents (default nvidia/Cosmos-1.0-Tokenizer-CV8x8x8)."""
    what = "cosmos"
    ckpt, index, dev, dt = _common(arg, "nvidia/Cosmos-1.0-Tokenizer-CV8x8x8", what, device, dtype,
                                   trust_remote_code)
    if index or (ckpt.path / "vae" / "config.json").is_file():
        ckpt = _sub(ckpt, "vae")
    cfg = ckpt.read_json("config.json") or {}
    if cfg.get("_class_name") not in (None, "AutoencoderKLCosmos"):
        raise EncoderError(f"{what}: '{ckpt.source}' holds a {cfg['_class_name']}, not an AutoencoderKLCosmos")
    files = hub.check_safetensors(ckpt, what)
    vae = _load(_lib().AutoencoderKLCosmos, ckpt, ckpt.subfolder, what, dt)
    r, down = _cosmos_compression(dict(vae.config))
    window = int(window) if window else 2 * r
    if window < r or window % r:
        raise EncoderError(f"{what}: window={window} must be a positive multiple of the {r} frames per latent step")
    spec = EncoderSpec(name=f"{what}:{ckpt.source}", family="autoencoder",
                       input_size=_size(size, {"sample_size": 256}, what, down), mean=HALF, std=HALF,
                       layers=("out",), default_layer="out", weights_hash=hub.files_hash(files, cfg),
                       resize="bilinear", frames_per_step=r,
                       extra={"downsample": down, "window": window, "first_step": "dropped (repeated frame 0)",
                              "latent": "mode", "dtype": str(dt), "bf16": bool(bf16)})
    return CosmosEncoder(spec, vae, dev, bf16)


def _common(arg: str | None, default_id: str, what: str, device: str, dtype: str | None,
            trust_remote_code: bool) -> tuple[hub.Checkpoint, dict[str, Any], torch.device, torch.dtype]:
    ckpt = hub.resolve_checkpoint(arg, default_id, what)
    assert ckpt is not None   # None only with local_only
    index = ckpt.read_json("model_index.json")
    hub.check_remote_code(ckpt, index or ckpt.read_json("config.json"), trust_remote_code, what)
    return ckpt, index or {}, hub.pick_device(device), hub.pick_dtype(dtype)


def _sub(ckpt: hub.Checkpoint, name: str) -> hub.Checkpoint:
    return hub.Checkpoint(ckpt.source, ckpt.path, name)


def _size(size: int | None, cfg: dict[str, Any], what: str, multiple: int) -> tuple[int, int]:
    s = size or cfg.get("sample_size") or 256
    s = s if isinstance(s, int) else int(s[0])
    if s % multiple:
        raise EncoderError(f"{what}: size {s} must be a multiple of {multiple}")
    return s, s


def autoencoder_kl(arg: str | None = None, *, device: str = "auto", dtype: str | None = None, bf16: bool = False,
                   batch_size: int = 16, size: int | None = None, trust_remote_code: bool = False) -> VAEEncoder:
    """``sd-vae[:dir-or-hub-id]``: AutoencoderKL posterior-mean latents (default stabilityai/sd-vae-ft-mse)."""
    what = "sd-vae"
    ckpt, index, dev, dt = _common(arg, "stabilityai/sd-vae-ft-mse", what, device, dtype, trust_remote_code)
    if index:
        ckpt = _sub(ckpt, "vae")
    cfg = ckpt.read_json("config.json") or {}
    files = hub.check_safetensors(ckpt, what)
    vae = _load(_lib().AutoencoderKL, ckpt, ckpt.subfolder, what, dt)
    down = 2 ** (len(vae.config.block_out_channels) - 1)
    spec = EncoderSpec(name=f"{what}:{ckpt.source}", family="autoencoder", input_size=_size(size, cfg, what, down),
                       mean=HALF, std=HALF, layers=("out",), default_layer="out",
                       weights_hash=hub.files_hash(files, cfg), resize="bilinear",
                       extra={"downsample": down, "latent": "posterior_mean", "dtype": str(dt), "bf16": bool(bf16)})
    return VAEEncoder(spec, vae, dev, bf16, batch_size)


def diffusion_unet(arg: str | None = None, *, device: str = "auto", dtype: str | None = None, bf16: bool = False,
                   batch_size: int = 16, size: int | None = None, t: int = 100, seed: int = 0,
                   trust_remote_code: bool = False) -> UNetEncoder:
    """``diffusion-unet[:dir-or-hub-id]``: denoiser block features at timestep ``t`` (default
    google/ddpm-cifar10-32)."""
    what = "diffusion-unet"
    df = _lib()
    ckpt, index, dev, dt = _common(arg, "google/ddpm-cifar10-32", what, device, dtype, trust_remote_code)
    unet_ck = _sub(ckpt, "unet") if (ckpt.path / "unet").is_dir() else ckpt
    ucfg = unet_ck.read_json("config.json") or {}
    cls_name = ucfg.get("_class_name", "UNet2DModel")
    if cls_name not in ("UNet2DModel", "UNet2DConditionModel"):
        raise EncoderError(f"{what}: '{ckpt.source}' holds a {cls_name}; expected UNet2DModel or UNet2DConditionModel")
    files = hub.check_safetensors(unet_ck, what)
    unet = _load(getattr(df, cls_name), unet_ck, unet_ck.subfolder, what, dt)
    vae, scaling, down, vcfg = None, 1.0, 1, {}
    if (ckpt.path / "vae").is_dir():
        vae_ck = _sub(ckpt, "vae")
        vcfg = vae_ck.read_json("config.json") or {}
        files += hub.check_safetensors(vae_ck, what)
        vae = _load(df.AutoencoderKL, vae_ck, "vae", what, dt)
        scaling = float(vae.config.scaling_factor)
        down = 2 ** (len(vae.config.block_out_channels) - 1)
    elif unet.config.in_channels != 3:
        raise EncoderError(f"{what}: the UNet in '{ckpt.source}' takes {unet.config.in_channels} channels (a latent "
                           "model) but there is no vae/ folder beside it to encode frames")
    sch_ck = _sub(ckpt, "scheduler") if (ckpt.path / "scheduler").is_dir() else ckpt
    scfg = sch_ck.read_json("scheduler_config.json")
    sched = df.DDPMScheduler.from_config(scfg) if scfg else df.DDPMScheduler()
    n_t = int(sched.config.num_train_timesteps)
    if not 0 <= int(t) < n_t:
        raise EncoderError(f"{what}: timestep t={t} outside 0..{n_t - 1}")
    size_cfg = {"sample_size": ucfg.get("sample_size", 64) * down} if vae is not None else ucfg
    n_blocks = len(unet.down_blocks) + len(unet.up_blocks) + (unet.mid_block is not None)
    names = [f"down_blocks.{i}" for i in range(len(unet.down_blocks))] + \
        (["mid_block"] if unet.mid_block is not None else []) + [f"up_blocks.{i}" for i in range(len(unet.up_blocks))]
    assert len(names) == n_blocks
    default = "up_blocks.1" if "up_blocks.1" in names else "mid_block" if "mid_block" in names else names[-1]
    spec = EncoderSpec(name=f"{what}:{ckpt.source}", family="diffusion",
                       input_size=_size(size, size_cfg, what, down * 2 ** (len(unet.down_blocks) - 1)),
                       mean=HALF, std=HALF, layers=tuple(names), default_layer=default,
                       weights_hash=hub.files_hash(files, {"unet": ucfg, "vae": vcfg, "scheduler": scfg or {}}),
                       resize="bilinear",
                       extra={"t": int(t), "seed": int(seed), "conditioning": "zeros", "scaling_factor": scaling,
                              "latent": vae is not None,
                              "scheduler": {k: v for k, v in sched.config.items() if not k.startswith("_")},
                              "dtype": str(dt), "bf16": bool(bf16)})
    return UNetEncoder(spec, unet, vae, sched.alphas_cumprod, dev, bf16, batch_size)
