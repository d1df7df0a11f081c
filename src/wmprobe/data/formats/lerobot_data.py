"""LeRobot's parquet data files: the action and state columns of an episode, ``(T, A)`` and ``(T, S)``.

v2.x keeps one file per episode; v3.0 chunked files hold many episodes, whose rows are found through the
``episode_index`` column. ``LeRobotData`` is the reading half of ``lerobot.LeRobotSource`` (which fills the
attributes it declares from meta/info.json); a file's columns are cached while its episodes are read.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from wmprobe.data.formats._common import Episode, FormatError, Source


def _rel(root: Path, p: Path) -> str:
    try:
        return str(p.relative_to(root))
    except ValueError:
        return str(p)


def arrow_to_matrix(col, where: str):
    """A pyarrow list / fixed-size-list / numeric column -> ``(n, A)`` numpy array (FormatError otherwise)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    t = arr.type
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        vt = t.value_type
        if not (pa.types.is_floating(vt) or pa.types.is_integer(vt)):
            raise FormatError(f"{where}: actions must be numeric lists, got {t}")
        if arr.null_count:
            raise FormatError(f"{where}: {arr.null_count} missing (null) action rows")
        lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
        if len(lengths) and (lengths != lengths[0]).any():
            raise FormatError(f"{where}: action rows have different lengths {sorted(set(lengths.tolist()))[:5]}")
        dim = int(lengths[0]) if len(lengths) else 0
        vals = arr.flatten().to_numpy(zero_copy_only=False)
        return np.asarray(vals, dtype=np.float64 if vals.dtype.kind == "f" else vals.dtype).reshape(len(arr), dim)
    if pa.types.is_floating(t) or pa.types.is_integer(t):
        return arr.to_numpy(zero_copy_only=False).reshape(-1, 1)
    raise FormatError(f"{where}: actions must be numeric, got arrow type {t}")


class LeRobotData(Source):
    """Actions and states of an episode from its parquet data file (``ep.extra["data"]``)."""

    v3: bool                        # codebase v3.0: chunked files holding many episodes
    state_key: str | None = None    # the ``observation.state`` column imported as states, or None
    _data_cache: dict[Any, Any]     # (file, action key, state key) -> its columns, one file at a time

    def _rows(self, ep: Episode) -> tuple[int, int]:
        """Row range of the episode inside its data file."""
        if not self.v3:
            return 0, ep.length
        if "rows" in ep.extra:
            return ep.extra["rows"]
        epi = self._data_table(ep)["episode_index"]
        hit = np.nonzero(epi == ep.index)[0]
        if len(hit) == 0:
            raise FormatError(f"{ep.where}: no rows of this episode in the data file")
        a, b = int(hit[0]), int(hit[-1]) + 1
        if b - a != len(hit):
            raise FormatError(f"{ep.where}: the episode's rows are not contiguous in the data file")
        if b - a != ep.length:
            raise FormatError(f"{ep.where}: {b - a} rows in the data file but the metadata says {ep.length} frames")
        ep.extra["rows"] = (a, b)
        return a, b

    def _data_table(self, ep: Episode) -> dict[str, Any]:
        """Action (and episode index) columns of a data file, cached for the file (small: no images)."""
        import pyarrow as pa
        import pyarrow.parquet as pq
        f: Path = ep.extra["data"]
        key = (f, self.action_key, getattr(self, "state_key", None))
        if key in self._data_cache:
            return self._data_cache[key]
        if not f.is_file():
            raise FormatError(f"{ep.where}: data file {f} is missing")
        try:
            schema = pq.read_schema(f)
            if self.action_key not in schema.names:
                raise FormatError(f"{ep.where}: action key '{self.action_key}' missing from the data file")
            state = key[2] if key[2] in schema.names else None
            cols = [self.action_key] + (["episode_index"] if "episode_index" in schema.names else []) + \
                ([state] if state else [])
            t = pq.read_table(f, columns=cols)
        except (pa.ArrowException, OSError) as exc:
            raise FormatError(f"{ep.where}: unreadable data file ({exc}); truncated?") from None
        out = {"action": arrow_to_matrix(t.column(self.action_key), ep.where)}
        if state:
            out["state"] = arrow_to_matrix(t.column(state), f"{ep.where} ({state})")
        if "episode_index" in t.column_names:
            out["episode_index"] = t.column("episode_index").to_numpy(zero_copy_only=False)
        elif self.v3:
            raise FormatError(f"{ep.where}: data file lacks the episode_index column")
        self._data_cache.clear()  # one file at a time: bounded memory
        self._data_cache[key] = out
        return out

    def actions(self, ep: Episode) -> np.ndarray:
        from wmprobe.data.formats._common import check_actions
        t = self._data_table(ep)
        if self.v3:
            a, b = self._rows(ep)
            acts = t["action"][a:b]
        else:
            acts = t["action"]
            if "episode_index" in t and len(t["episode_index"]) and (t["episode_index"] != ep.index).any():
                raise FormatError(f"{ep.where}: the data file holds rows of other episodes")
        return check_actions(acts, ep, dim=self.action_dim)

    def states(self, ep: Episode) -> np.ndarray | None:
        """The episode's ``observation.state`` rows ``(T, S)``, or None (no such feature, or not in its file)."""
        if self.state_key is None:
            return None
        t = self._data_table(ep)
        if "state" not in t:
            return None
        a, b = self._rows(ep) if self.v3 else (0, len(t["state"]))
        return np.asarray(t["state"][a:b], dtype=np.float32)
