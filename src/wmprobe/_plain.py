"""``plain(x)``: ``x`` as the plain data YAML and JSON write, all the way down: mappings with string keys,
tuples and lists as lists, numpy scalars as Python numbers, paths as strings; anything else as it is.
A study config's ``to_dict`` and the config.yaml of a results directory are written through it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    return x
