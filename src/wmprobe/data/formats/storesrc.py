"""An EpisodeStore read as a source (re-import with another size or fewer episodes; export)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np

from wmprobe.data.formats._common import Episode, Source, check_actions
from wmprobe.data.store import EpisodeStore


class StoreSource(Source):
    format = "store"

    def __init__(self, path, allow_symlinks_out: bool | None = None):
        self.path = Path(path)
        # verify=False: re-importing is how an edit is accepted
        self.store = EpisodeStore.load(self.path, verify=False, allow_symlinks_out=allow_symlinks_out)
        self.version = str(self.store.meta.get("version"))
        self.fps = float(self.store.meta["fps"])
        self.cameras = ["frames"]
        self.action_keys = ["actions"]
        self.camera, self.action_key = "frames", "actions"
        self.frame_shape = (int(self.store.frames.shape[1]), int(self.store.frames.shape[2]))
        self.action_dim = self.store.action_dim
        self.action_names = list(self.store.meta["action_names"])
        self.action_convention = self.store.action_groups  # a store keeps its own groups
        self.state_names = self.store.state_names           # and its states (None without)

    def episodes(self, problems: list[str] | None = None) -> list[Episode]:  # a loaded store is consistent
        names = self.store.meta["task_names"]
        return [Episode(e, int(self.store.episode_lengths[e]), str(names[int(self.store.tasks[e])]),
                        f"{self.path / 'frames.npy'}, episode {e}") for e in range(self.store.n_episodes)]

    def actions(self, ep: Episode) -> np.ndarray:
        return check_actions(self.store.actions[self.store.episode_slice(ep.index)], ep, dim=self.action_dim)

    def states(self, ep: Episode) -> np.ndarray | None:
        return None if self.store.states is None else np.asarray(self.store.states[self.store.episode_slice(ep.index)])

    def frames(self, ep: Episode) -> Iterator[np.ndarray]:
        s = self.store.episode_slice(ep.index)
        for i in range(s.start, s.stop, 64):
            yield np.asarray(self.store.frames[i:min(i + 64, s.stop)])

    def source_meta(self) -> dict[str, Any]:
        return {**super().source_meta(), "parent_fingerprint": self.store.fingerprint,
                "parent_source": self.store.meta.get("source")}

    def info(self) -> dict[str, Any]:
        s, m = self.store, self.store.meta
        return {"format": "store", "version": m.get("version"), "path": str(self.path), "name": s.name,
                "episodes": s.n_episodes, "frames": s.n_frames, "frame_shape": list(s.frames.shape[1:]),
                "fps": m.get("fps"), "action_dim": s.action_dim, "action_names": m.get("action_names"),
                "action_groups": m.get("action_groups"), "tasks": len(m.get("task_names", [])),
                "task_names": list(m.get("task_names", []))[:20], "fingerprint": s.fingerprint,
                "source": m.get("source")}
