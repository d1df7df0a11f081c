"""File-system helpers: dropping the resident pages of memory maps keeps every byte, and frees RSS."""
from __future__ import annotations

import os
import re

import numpy as np
import pytest

from wmprobe._fs import drop_pages

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")


def rss_file_mb() -> float:
    return int(re.search(r"RssFile:\s+(\d+) kB", open("/proc/self/status").read()).group(1)) / 1024


def test_written_pages_survive_being_dropped_and_leave_rss(tmp_path):
    """An import writes frames into a ``w+`` memmap block by block and drops each block's pages (no msync):
    the bytes must all be there afterwards, and the mapping must not keep the written size resident."""
    n = 64 << 20
    m = np.lib.format.open_memmap(tmp_path / "a.npy", mode="w+", dtype=np.uint8, shape=(n,))
    before = rss_file_mb()
    rng = np.random.default_rng(0)
    block = rng.integers(0, 256, 1 << 20, dtype=np.uint8)
    for i in range(0, n, len(block)):
        m[i:i + len(block)] = block
    grown = rss_file_mb() - before
    drop_pages(m)
    dropped = rss_file_mb() - before
    assert grown > 32 and dropped < 8, (grown, dropped)
    assert np.array_equal(m[5 << 20:6 << 20], block)                  # read back through the same mapping
    del m
    back = np.load(tmp_path / "a.npy", mmap_mode="r")                   # and from the file
    assert all(np.array_equal(back[i:i + len(block)], block) for i in range(0, n, 8 * len(block)))


def test_copy_on_write_and_plain_arrays_are_left_alone(tmp_path):
    np.save(tmp_path / "b.npy", np.arange(1 << 16, dtype=np.int64))
    c = np.load(tmp_path / "b.npy", mmap_mode="c")
    c[:10] = -1                                                         # private changes MADV_DONTNEED would lose
    plain = np.ones(1000)
    drop_pages(c, plain)
    assert (c[:10] == -1).all() and plain.sum() == 1000
