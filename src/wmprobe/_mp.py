"""Worker processes that start clean: forkserver (or spawn) contexts, never fork.

Forking after torch, OpenMP or a renderer has started threads can deadlock; forkserver/spawn children start
from a fresh interpreter. ``hidden_main`` keeps children from re-running the caller's script (a user script
without an ``if __name__ == "__main__"`` guard would otherwise run again in every worker).
"""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import sys
import types
from typing import Iterator, Sequence


def context(preload: Sequence[str] = ()) -> mp.context.BaseContext:
    """forkserver (preloading ``preload`` modules when the server starts) where available, else spawn."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(list(preload))
        return ctx
    return mp.get_context("spawn")


@contextlib.contextmanager
def hidden_main() -> Iterator[None]:
    """While workers start, replace the caller's ``__main__`` by an empty module."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main
