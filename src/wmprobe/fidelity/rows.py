"""A row source over several arrays (e.g. memory-mapped latent shards), read a minibatch at a time."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from wmprobe._fs import drop_pages
from wmprobe.errors import ProbeError


class RowGather:
    """Rows ``rows`` (global ids into the concatenation of ``arrays``, e.g. memory-mapped shards) as one row
    source: ``src[idx]`` copies only rows ``rows[idx]`` into memory, in the order of ``idx``."""

    def __init__(self, arrays: Sequence[Any], rows: np.ndarray) -> None:
        self.arrays = list(arrays)
        self.starts = np.cumsum([0] + [len(a) for a in self.arrays])
        self.rows = np.asarray(rows, np.int64)
        if len(self.rows) and (self.rows.min() < 0 or self.rows.max() >= self.starts[-1]):
            raise ProbeError(f"fidelity: row ids outside the {self.starts[-1]} rows of the shards")

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, idx: Any) -> np.ndarray:
        g = self.rows[np.asarray(idx, np.int64)]
        part = np.searchsorted(self.starts, g, side="right") - 1
        out = np.empty((len(g), *self.arrays[0].shape[1:]), self.arrays[0].dtype)
        for q in np.unique(part):
            m = part == q
            out[m] = self.arrays[q][g[m] - self.starts[q]]
        drop_pages(*self.arrays)  # random rows touch every page of a shard in time: keep RSS flat
        return out
