"""Torch intra-op thread count for a block of work, restored afterwards.

``torch_threads(n)``: inside the block torch runs ``n`` intra-op threads (``None`` or 0: keep the current
setting); the caller's setting comes back on exit, also after an exception.
"""
from __future__ import annotations

import contextlib
from typing import Iterator


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    import torch
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)
