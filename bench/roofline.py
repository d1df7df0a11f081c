"""This machine's own limits, measured in this process: fp32 GEMM peak, memory bandwidth, random numbers/s.

Every other bench imports ``measure()`` (measured once per process, then cached) and reports each hot kernel
as a fraction of the limit that bounds it:

- FLOP-bound kernels against ``gemm_gflops`` (``torch.mm`` of two N x N fp32 matrices, N = 2048; 2 N^3 FLOPs
  per product), with every intra-op thread, and ``gemm_gflops_1thread`` on one thread; float64 work (the
  ridge probe's factorisations) against ``gemm64_gflops`` (the same in fp64, every thread);
- memory-bound kernels against ``copy_gbs`` (``dst.copy_(src)`` of a 256 MiB fp32 array: 2 x 256 MiB moved,
  read + write) and ``read_gbs`` (``src.sum()``: 256 MiB read), all threads and one thread;
- noise kernels against ``randn_per_s`` / ``rand_per_s`` (``torch.randn`` / ``torch.rand`` into a preallocated
  16 Mi-element fp32 tensor from a ``torch.Generator``, numbers per second; torch's CPU generator is one
  stream, so one thread and all threads are the same figure) and ``poisson_per_s`` (``torch.poisson`` at a
  rate of 12, the shot-noise corruption's middle severity).

Each figure is the best of ``repeats`` timed runs after a warm-up (the best run is the one least disturbed by
other processes on a shared machine). ``fraction(kind, work, seconds)`` turns a kernel's work (FLOPs, bytes or
random numbers) and measured seconds into its fraction of the limit: ``(work / limit) / seconds`` = the
shortest time the limit allows over the time taken (1.0 = at the limit).

Usage: ``python bench/roofline.py [--quick]``; the last printed line is one JSON object.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import time
from typing import Callable, Iterator

import torch

_CACHE: dict[bool, dict] = {}
LIMIT_KEYS = {  # kind -> (key for all threads, key for one thread, unit of work)
    "gemm": ("gemm_gflops", "gemm_gflops_1thread", 1e9),
    "gemm64": ("gemm64_gflops", "gemm64_gflops", 1e9),
    "copy": ("copy_gbs", "copy_gbs_1thread", 1e9),
    "read": ("read_gbs", "read_gbs_1thread", 1e9),
    "randn": ("randn_per_s", "randn_per_s", 1.0),
    "rand": ("rand_per_s", "rand_per_s", 1.0),
    "poisson": ("poisson_per_s", "poisson_per_s", 1.0),
}


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Run torch on ``n`` intra-op threads (None: leave as is), restoring the setting afterwards."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def best_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Best of ``repeats`` timed calls of ``fn`` after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _gemm(n: int, repeats: int, dtype: torch.dtype = torch.float32) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    c = torch.empty(n, n, dtype=dtype)
    return 2 * n ** 3 / best_seconds(lambda: torch.mm(a, b, out=c), repeats) / 1e9


def _bandwidth(numel: int, repeats: int) -> tuple[float, float]:
    src = torch.rand(numel)
    dst = torch.empty_like(src)
    copy = 2 * 4 * numel / best_seconds(lambda: dst.copy_(src), repeats) / 1e9
    read = 4 * numel / best_seconds(src.sum, repeats) / 1e9
    return copy, read


def _rng(numel: int, repeats: int) -> tuple[float, float, float]:
    g = torch.Generator().manual_seed(0)
    out = torch.empty(numel)
    randn = numel / best_seconds(lambda: torch.randn(numel, generator=g, out=out), repeats)
    rand = numel / best_seconds(lambda: torch.rand(numel, generator=g, out=out), repeats)
    rate = torch.full((numel // 8,), 12.0)
    poisson = rate.numel() / best_seconds(lambda: torch.poisson(rate, generator=g), max(1, repeats // 2))
    return randn, rand, poisson


def measure(quick: bool = False) -> dict:
    """The machine's limits (see the module doc), measured on the first call and cached for the process."""
    if quick in _CACHE:
        return _CACHE[quick]
    reps = 3 if quick else 7
    n = 1024 if quick else 2048
    numel = (16 if quick else 64) * 2 ** 20              # fp32 elements: 64 MiB quick, 256 MiB full
    all_threads = torch.get_num_threads()
    r: dict = {"cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": all_threads,
               "torch": torch.__version__, "quick": quick, "gemm_n": n, "bandwidth_mib": 4 * numel // 2 ** 20}
    r["gemm_gflops"] = _gemm(n, reps)
    with threads(1):
        r["gemm_gflops_1thread"] = _gemm(n, reps)
    r["gemm64_gflops"] = _gemm(n, max(2, reps // 2), torch.float64)
    r["copy_gbs"], r["read_gbs"] = _bandwidth(numel, reps)
    with threads(1):
        r["copy_gbs_1thread"], r["read_gbs_1thread"] = _bandwidth(numel, reps)
        r["randn_per_s"], r["rand_per_s"], r["poisson_per_s"] = _rng(numel // 4, reps)
    r = {k: (round(v, 1) if isinstance(v, float) and v < 1e6 else round(v) if isinstance(v, float) else v)
         for k, v in r.items()}
    _CACHE[quick] = r
    return r


def limit(kind: str, one_thread: bool = False, quick: bool | None = None) -> float:
    """The limit of ``kind`` (gemm, copy, read, randn, rand, poisson) in work units per second (FLOP/s,
    bytes/s, numbers/s), all threads or one. ``quick=None``: the measurement this process already made (the
    full one if both), else a full one."""
    key_all, key_one, unit = LIMIT_KEYS[kind]
    if quick is None:
        quick = False if False in _CACHE or True not in _CACHE else True
    return measure(quick)[key_one if one_thread else key_all] * unit


def fraction(kind: str, work: float, seconds: float, one_thread: bool = False, quick: bool | None = None) -> float:
    """Fraction of the limit reached: ``work`` (FLOPs, bytes or random numbers) done in ``seconds``."""
    return round(work / limit(kind, one_thread, quick) / seconds, 4)


def describe(r: dict) -> str:
    return (f"{r['cpu']}, {r['cores']} cores, torch {r['torch']} ({r['torch_threads']} threads): "
            f"GEMM {r['gemm_gflops']:.0f} GFLOP/s ({r['gemm_gflops_1thread']:.0f} on 1 thread, "
            f"{r['gemm64_gflops']:.0f} fp64); "
            f"copy {r['copy_gbs']:.1f} GB/s ({r['copy_gbs_1thread']:.1f}), read {r['read_gbs']:.1f} GB/s "
            f"({r['read_gbs_1thread']:.1f}); randn {r['randn_per_s'] / 1e6:.0f} M/s, rand "
            f"{r['rand_per_s'] / 1e6:.0f} M/s, poisson {r['poisson_per_s'] / 1e6:.1f} M/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller arrays and fewer repeats (seconds)")
    a = ap.parse_args()
    r = measure(a.quick)
    print("machine limits:", describe(r))
    print(json.dumps({"bench": "roofline", **r}))


if __name__ == "__main__":
    main()
