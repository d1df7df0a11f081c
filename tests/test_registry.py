import pytest

from wmprobe.encoders.registry import list_encoders, load_encoder
from wmprobe.errors import EncoderError


def test_unknown_encoder_suggests_close_names():
    with pytest.raises(EncoderError, match="unknown encoder 'dinov4'.*did you mean.*dinov"):
        load_encoder("dinov4")


def test_builtin_families_are_listed():
    known = list_encoders()
    for name in ("pixels", "random-conv", "zoo", "vjepa2", "videomae", "dinov2", "siglip", "sd-vae", "cosmos"):
        assert name in known


def test_empty_name_is_an_error():
    with pytest.raises(EncoderError):
        load_encoder("")
