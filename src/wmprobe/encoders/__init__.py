"""Encoders: the contract (base), the lazy registry, built-in baselines and adapters for pretrained models."""
from wmprobe.encoders.base import Encoder, EncoderSpec, Latents, TorchEncoder
from wmprobe.encoders.registry import list_encoders, load_encoder, register_encoder

__all__ = ["Encoder", "EncoderSpec", "Latents", "TorchEncoder", "list_encoders", "load_encoder",
           "register_encoder"]
