"""wmprobe: which representation actually knows what the robot did?

Probe-based evaluation of visual encoders and video world models. The Python API mirrors the CLI:

    import wmprobe
    store = wmprobe.load_dataset("path/to/store")          # an EpisodeStore
    enc = wmprobe.load_encoder("dinov2:/path/to/ckpt")      # any registered encoder
    records = wmprobe.run("study.yaml", out="results/")     # a whole study (see docs/study.md)

Heavy modules are imported lazily, so ``import wmprobe`` stays cheap.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_encoder": "wmprobe.encoders.registry:load_encoder",
    "list_encoders": "wmprobe.encoders.registry:list_encoders",
    "load_dataset": "wmprobe.data:load_dataset",
    "EpisodeStore": "wmprobe.data.store:EpisodeStore",
    "make_split": "wmprobe.data.splits:make_split",
    "extract": "wmprobe.extract:extract",
    "run": "wmprobe.study.runner:run",
    "demo": "wmprobe.demo:run_demo",
    "read_records": "wmprobe.records:read_records",
    "probe": "wmprobe.probes.api:probe_frame",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'wmprobe' has no attribute {name!r}")
    from wmprobe.registry import resolve
    return resolve(_LAZY[name])
