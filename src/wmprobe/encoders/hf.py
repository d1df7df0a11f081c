"""Pretrained transformers encoders (V-JEPA 2, VideoMAE, DINOv2/v3, SigLIP/SigLIP 2) behind ``encode``.

Every adapter answers ``encode(frames: (B, T, H, W, 3) uint8) -> Latents`` with tokens ``(B, T', N, D)``.

Layers (names in ``spec.layers``):
    ``layer_0`` .. ``layer_{L-1}``: output of each transformer block (before the final norm), patch tokens;
    ``out``: the model's ``last_hidden_state`` (after the final norm), patch tokens (the default layer);
    ``cls``  (DINOv2 / DINOv3): the final-normed CLS token as one token ``(B, T, 1, D)``;
    ``pooled`` (SigLIP / SigLIP 2 with a head): the attention-pooled embedding ``(B, T, 1, D)``.
Register tokens (DINOv3) are dropped from every layer; CLS is only in ``cls``.
Only the blocks up to the deepest requested one are run (``out``/``cls``/``pooled`` run the whole model).
The paper's best V-JEPA 2 ViT-L layer is ``layer_14`` of 24, not ``out``.

Time: V-JEPA 2 and VideoMAE embed tubelets of ``tubelet_size`` frames (2), so ``frames_per_step = 2`` and
latent step s covers frames ``2s, 2s+1`` (``Latents.frame_index = 2s``). Their tokens are time-major and are
reshaped ``(B, T'*N, D) -> (B, T', N, D)``. V-JEPA 2 takes any even clip length (``extra['window']`` frames
per clip during extraction, default 16); VideoMAE needs exactly ``config.num_frames`` frames
(``spec.clip_len``): extraction windows an episode into clips of ``clip_len`` with stride ``clip_len``, pads
the last clip by repeating the last frame and drops latent steps that start on a padded frame
(``extra['pad'] = 'repeat_last'``). Image models run per frame (``frames_per_step = 1``).

Preprocessing comes from the checkpoint's ``preprocessor_config.json`` / ``video_preprocessor_config.json``
(family defaults when absent, ``extra['processor'] = 'defaults'``): resize the short side to
``extra['resize_short']`` then center-crop to ``input_size`` (or resize straight to ``input_size`` when the
processor has no crop), rescale to [0, 1], normalise by the processor's mean/std. Models with a fixed input
grid (V-JEPA 2, VideoMAE, SigLIP) always get their config's image size.

The preprocessing (processor config -> spec, the resize and normalise stages) is in ``encoders.hf_preprocess``
(its names are re-exported here); this module holds the families, the adapter and the loader.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from wmprobe.encoders import hub
from wmprobe.encoders.base import IMAGENET_MEAN, IMAGENET_STD, Encoder, EncoderSpec
from wmprobe.encoders.hf_preprocess import (_addcmul, _frame_factors, _sizes, normalise_stage, preprocess_frames,
                                            processor_preprocessing, resize_crop, resize_stage)
from wmprobe.errors import EncoderError

__all__ = ["FAMILIES", "HALF", "Family", "HFEncoder", "_addcmul", "_frame_factors", "_sizes", "dinov2", "dinov3",
           "load_hf", "normalise_stage", "preprocess_frames", "processor_preprocessing", "resize_crop", "resize_stage",
           "siglip", "siglip2", "videomae", "vjepa2"]

HALF = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class Family:
    name: str
    cls: str                       # transformers class
    default_id: str
    model_types: tuple[str, ...]
    video: bool = False
    prefix: str = "none"           # leading non-patch tokens: none | cls | cls+registers
    pooled: str = ""               # extra single-token layer: "cls" | "pooled" | ""
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


FAMILIES = {
    "vjepa2": Family("vjepa2", "VJEPA2Model", "facebook/vjepa2-vitl-fpc64-256", ("vjepa2",), video=True),
    "videomae": Family("videomae", "VideoMAEModel", "MCG-NJU/videomae-base", ("videomae",), video=True),
    "dinov2": Family("dinov2", "Dinov2Model", "facebook/dinov2-base", ("dinov2",), prefix="cls", pooled="cls"),
    "dinov3": Family("dinov3", "DINOv3ViTModel", "facebook/dinov3-vitb16-pretrain-lvd1689m", ("dinov3_vit",),
                     prefix="cls+registers", pooled="cls"),
    "siglip": Family("siglip", "SiglipVisionModel", "google/siglip-base-patch16-224",
                     ("siglip", "siglip_vision_model"), pooled="pooled", mean=HALF, std=HALF),
    "siglip2": Family("siglip2", "Siglip2VisionModel", "google/siglip2-base-patch16-224",
                      ("siglip2", "siglip2_vision_model"), pooled="pooled", mean=HALF, std=HALF),
}


class _Stop(Exception):
    """Raised by a hook once the deepest requested block has run (skips the rest of the model)."""


class HFEncoder(Encoder):
    """One transformers vision model; ``blocks`` is its list of transformer blocks (hooked for ``layer_i``)."""

    def __init__(self, spec: EncoderSpec, model: torch.nn.Module, blocks: torch.nn.ModuleList, fam: Family,
                 device: torch.device, bf16: bool = False, batch_size: int = 32):
        self.spec, self.fam, self.device, self.bf16 = spec, fam, device, bf16
        self.model = model.to(device).eval().requires_grad_(False)
        self.blocks, self.batch_size = blocks, max(1, int(batch_size))
        self.dtype = next(model.parameters()).dtype
        registers = int(spec.extra.get("register_tokens", 0))
        self.n_prefix = {"none": 0, "cls": 1, "cls+registers": 1 + registers}[fam.prefix]

    def resize_frames(self, frames: torch.Tensor) -> torch.Tensor:
        return resize_stage(frames, self.spec, self.device)

    def normalise(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        return normalise_stage(x, self.spec, out)

    def _call(self, x: torch.Tensor) -> Any:
        """``x``: ``(M, T, 3, h, w)`` clips (video) or ``(M, 3, h, w)`` frames -> the model's output."""
        x = x.to(self.dtype)
        name = self.fam.name
        if name == "vjepa2":
            return self.model(pixel_values_videos=x, skip_predictor=True)
        if name == "siglip2":  # NaFlex: patchify like Siglip2ImageProcessor (rows, cols, p, p, C)
            p = self.spec.extra["patch_size"]
            m, c, h, w = x.shape
            patches = x.reshape(m, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1).reshape(m, -1, p * p * c)
            shapes = torch.tensor([[h // p, w // p]] * m, device=x.device)
            mask = torch.ones(m, patches.shape[1], dtype=torch.long, device=x.device)
            return self.model(pixel_values=patches, pixel_attention_mask=mask, spatial_shapes=shapes)
        return self.model(pixel_values=x)

    def _run(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        idx = sorted({int(l.split("_")[1]) for l in layers if l.startswith("layer_")})
        full = any(not l.startswith("layer_") for l in layers)
        captured: dict[int, torch.Tensor] = {}

        def hook(i: int):
            def fn(_mod: Any, _inp: Any, out: Any) -> None:
                captured[i] = out[0] if isinstance(out, (tuple, list)) else out
                if not full and i == idx[-1]:
                    raise _Stop
            return fn

        handles = [self.blocks[i].register_forward_hook(hook(i)) for i in idx]
        result = None
        try:
            with hub.autocast(self.device, self.bf16):
                result = self._call(x)
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
        out = {f"layer_{i}": self._patches(v, x) for i, v in captured.items()}
        if result is not None:
            out["out"] = self._patches(result.last_hidden_state, x)
            if self.fam.pooled == "cls":
                out["cls"] = result.last_hidden_state[:, :1]
            elif self.fam.pooled == "pooled" and getattr(result, "pooler_output", None) is not None:
                out["pooled"] = result.pooler_output[:, None]
        return {l: out[l] for l in layers}

    def _patches(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Drop CLS/register tokens; video: ``(M, T'*N, D) -> (M, T', N, D)``."""
        h = h[:, self.n_prefix:]
        if self.fam.video:
            steps = x.shape[1] // self.spec.frames_per_step
            h = h.reshape(h.shape[0], steps, h.shape[1] // steps, h.shape[2])
        return h

    def forward_layers(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        b, t = x.shape[:2]
        flat = x if self.fam.video else x.reshape(b * t, *x.shape[2:])
        parts = [self._run(flat[i:i + self.batch_size], layers) for i in range(0, flat.shape[0], self.batch_size)]
        # one part (extraction batches by batch_size already): its tensors as they are, without a copy by cat
        out = {l: (parts[0][l] if len(parts) == 1 else torch.cat([p[l] for p in parts])).float() for l in layers}
        if self.fam.video:
            return {l: v if v.ndim == 4 else v[:, None] for l, v in out.items()}
        return {l: v.reshape(b, t, *v.shape[1:]) for l, v in out.items()}


def _blocks(model: torch.nn.Module, what: str) -> torch.nn.ModuleList:
    """The model's list of transformer blocks (``encoder.layer``, ``model.layer``, ``encoder.layers`` ...)."""
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.ModuleList) and name.split(".")[-1] in ("layer", "layers") \
                and not name.startswith("predictor"):
            return mod
    raise EncoderError(f"{what}: cannot find the transformer blocks of {type(model).__name__}")


def load_hf(fam: Family, arg: str | None, *, device: str = "auto", dtype: str | None = None, bf16: bool = False,
            batch_size: int = 32, window: int = 16, trust_remote_code: bool = False, **unknown: Any) -> HFEncoder:
    """Resolve, check and load a checkpoint of family ``fam``; build its spec from its own config/processor."""
    what = fam.name
    if unknown:
        raise EncoderError(f"{what}: unknown option(s) {sorted(unknown)} (known: device, dtype, bf16, batch_size, "
                           "window, trust_remote_code)")
    try:
        import transformers
    except ImportError:
        raise EncoderError(f"{what} needs transformers (pip install -c constraints.txt 'wmprobe[hf]')") from None
    ckpt = hub.resolve_checkpoint(arg, fam.default_id, what)
    assert ckpt is not None   # None only with local_only
    config = ckpt.read_json("config.json")
    if config is None:
        raise EncoderError(f"{what}: no config.json in {ckpt.root} (save the model with save_pretrained)")
    hub.check_remote_code(ckpt, config, trust_remote_code, what)
    mtype = config.get("model_type")
    if mtype not in fam.model_types and not trust_remote_code:
        raise EncoderError(f"{what}: checkpoint '{ckpt.source}' is a '{mtype}' model, expected "
                           f"{' or '.join(fam.model_types)} (wrong encoder name?)")
    files = hub.check_safetensors(ckpt, what)
    dev, dt = hub.pick_device(device), hub.pick_dtype(dtype)
    cls = getattr(transformers, "AutoModel" if mtype not in fam.model_types else fam.cls)
    try:
        model, info = cls.from_pretrained(str(ckpt.root), use_safetensors=True, dtype=dt, output_loading_info=True,
                                          trust_remote_code=trust_remote_code)
    except (OSError, ValueError, RuntimeError) as exc:
        raise EncoderError(f"{what}: cannot load '{ckpt.source}': {exc}") from None
    if info.get("missing_keys"):
        raise EncoderError(f"{what}: checkpoint '{ckpt.source}' lacks weights for {sorted(info['missing_keys'])[:4]}"
                           " (they would be random): is it the right model class?")
    cfg = getattr(model.config, "vision_config", model.config) if fam.name.startswith("siglip") else model.config
    patch = int(cfg.patch_size if isinstance(cfg.patch_size, int) else cfg.patch_size[0])
    extra: dict[str, Any] = {"model_type": mtype, "dtype": str(dt).replace("torch.", ""), "bf16": bool(bf16),
                             "patch_size": patch}
    if fam.name == "vjepa2":
        native, fixed = (cfg.crop_size, cfg.crop_size), True
    elif fam.name == "siglip2":
        side = int((cfg.num_patches) ** 0.5) * patch
        native, fixed = (side, side), True
    else:
        size = cfg.image_size if isinstance(cfg.image_size, int) else cfg.image_size[0]
        native, fixed = (size, size), fam.name in ("videomae", "siglip")
    pp = ckpt.read_json("preprocessor_config.json") or ckpt.read_json("video_preprocessor_config.json")
    prep = processor_preprocessing(pp, fam, native, fixed)
    extra.update(resize_short=prep["resize_short"], processor=prep["processor"])
    fps, clip_len = 1, None
    if fam.video:
        fps = int(cfg.tubelet_size)
        if fam.name == "videomae":
            clip_len, extra["pad"] = int(cfg.num_frames), "repeat_last"
        else:
            extra["window"] = int(window) - int(window) % fps
    if fam.prefix == "cls+registers":
        extra["register_tokens"] = int(getattr(cfg, "num_register_tokens", 0))
    n_layers = int(cfg.num_hidden_layers)
    names = tuple(f"layer_{i}" for i in range(n_layers)) + ("out",) + ((fam.pooled,) if fam.pooled else ())
    if fam.pooled == "pooled" and not getattr(cfg, "vision_use_head", True):
        names = names[:-1]
    spec = EncoderSpec(name=f"{fam.name}:{ckpt.source}", family=fam.name, input_size=prep["input_size"],
                       mean=prep["mean"], std=prep["std"], frames_per_step=fps, clip_len=clip_len, layers=names,
                       default_layer="out", weights_hash=hub.files_hash(files, config), resize=prep["resize"],
                       extra=extra)
    return HFEncoder(spec, model, _blocks(model, what), fam, dev, bf16, batch_size)


def _factory(family: str, doc: str) -> Callable[..., HFEncoder]:
    """The registry factory of one family: ``FAMILY[:dir-or-hub-id]`` -> ``load_hf(FAMILIES[family], ...)``."""
    def factory(arg: str | None = None, **options: Any) -> HFEncoder:
        return load_hf(FAMILIES[family], arg, **options)
    factory.__name__ = factory.__qualname__ = family.replace("-", "_")
    factory.__doc__ = doc
    return factory


vjepa2 = _factory("vjepa2", "``vjepa2[:dir-or-hub-id]``: V-JEPA 2 encoder (predictor unused), tubelet 2, any even "
                  "clip length.")
videomae = _factory("videomae", "``videomae[:dir-or-hub-id]``: VideoMAE encoder, clips of exactly "
                    "``config.num_frames`` frames.")
dinov2 = _factory("dinov2", "``dinov2[:dir-or-hub-id]``: DINOv2 ViT per frame; layers ``layer_i``, ``out``, ``cls``.")
dinov3 = _factory("dinov3", "``dinov3[:dir-or-hub-id]``: DINOv3 ViT per frame (register tokens dropped).")
siglip = _factory("siglip", "``siglip[:dir-or-hub-id]``: SigLIP vision tower per frame; ``pooled`` is the "
                  "attention-pool head.")
siglip2 = _factory("siglip2", "``siglip2[:dir-or-hub-id]``: SigLIP 2 (NaFlex) vision tower per frame on a square "
                   "patch grid.")
