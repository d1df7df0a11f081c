"""Action axis groups (translation / rotation / gripper) of an imported dataset: never guessed by position.

Where the groups come from, in this order (docs/data.md, "Action axes"):

1. ``action_groups=`` / ``--action-groups``: ``"translation=0,1,2 rotation=3,4,5 gripper=6"``, a mapping
   ``{"translation": [0, 1, 2], ...}``, or ``"none"`` (no groups: per-dimension only, every axis summed over
   the k steps, overall R2 over all axes).
2. The format's documented convention: CALVIN and LIBERO actions are 7-dim end-effector deltas
   ``x y z roll pitch yaw gripper``; an EpisodeStore keeps its own groups.
3. The dataset's own axis names (LeRobot ``features.<action>.names``): ``x``/``dx``/``ee_x``... are translation,
   ``roll``/``rx``/``qx``/``euler_*``... rotation, ``gripper*`` gripper; ``joint_*`` / ``motor_*`` / ``*.pos``
   of a named joint are joints and get no group.

Anything else (no names, or names that say nothing, like ``a0..a6``) is refused with one ``FormatError``
that says how to pass the groups.
"""
from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from wmprobe._hashing import json_hash
from wmprobe.data.store import AXIS_GROUPS
from wmprobe.errors import StoreError

CONVENTION_7D_NAMES = ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]
CONVENTION_7D_GROUPS = {"translation": [0, 1, 2], "rotation": [3, 4, 5], "gripper": [6]}

_GRIPPER = re.compile(r"grip|claw|finger|grasp")
_JOINT = {"joint", "joints", "motor", "motors", "qpos", "q", "shoulder", "elbow", "wrist", "waist", "forearm",
          "base", "wheel", "pan", "lift", "flex"}
_ROT = {"roll", "pitch", "yaw", "rx", "ry", "rz", "drx", "dry", "drz", "qx", "qy", "qz", "qw", "wx", "wy", "wz",
        "rot", "rotation", "orn", "orientation", "euler", "quat", "quaternion", "axisangle", "rpy"}
_TRANS = {"x", "y", "z", "dx", "dy", "dz", "tx", "ty", "tz", "vx", "vy", "vz", "translation", "trans", "xyz"}


def classify(name: str) -> str | None:
    """``"gripper" | "rotation" | "translation" | "joint" | None`` (the name says nothing) for one axis name."""
    low = str(name).lower()
    if _GRIPPER.search(low):
        return "gripper"
    tokens = [t for t in re.split(r"[^a-z0-9]+", low) if t]
    stripped = [re.sub(r"\d+$", "", t) for t in tokens]  # joint0 -> joint, motor_1 -> motor
    if any(t.startswith("joint") for t in tokens) or any(t in _JOINT for t in stripped):
        return "joint"
    if any(t in _ROT for t in tokens):
        return "rotation"
    if any(t in _TRANS for t in tokens):
        return "translation"
    return None


def groups_from_names(names: Sequence[str]) -> dict[str, list[int]] | None:
    """The groups the names say, ``{}`` when they name joints only, None when they say nothing at all."""
    kinds = [classify(n) for n in names]
    if all(k is None for k in kinds):
        return None
    return {g: [i for i, k in enumerate(kinds) if k == g] for g in AXIS_GROUPS if g in kinds}


def parse_groups(spec: Any, dim: int | None = None, where: str = "--action-groups") -> dict[str, list[int]]:
    """``"none"`` -> ``{}``; ``"translation=0,1,2 rotation=3,4,5"`` (a string or a list of ``G=I,J`` items) or
    a mapping -> ``{group: [indices]}``, checked (known group names, integer indices in ``0..dim-1``, no axis in
    two groups). Raises StoreError naming ``where``."""
    if spec is None:
        raise StoreError(f"{where}: no action groups given")
    if isinstance(spec, str) and spec.strip().lower() in ("none", "[]", "{}", ""):
        return {}
    if isinstance(spec, (list, tuple)) and len(spec) == 1 and str(spec[0]).strip().lower() == "none":
        return {}
    if isinstance(spec, str):
        spec = spec.replace(";", " ").split()
    if isinstance(spec, (list, tuple)):
        out: dict[str, Any] = {}
        for item in spec:
            key, sep, val = str(item).partition("=")
            if not sep:
                raise StoreError(f"{where}: expected GROUP=I,J,... (e.g. translation=0,1,2) or none, got '{item}'")
            out[key.strip()] = [v for v in val.split(",") if v.strip()]
        spec = out
    if not isinstance(spec, Mapping):
        raise StoreError(f"{where}: expected a mapping (translation: [0, 1, 2], ...) or none, got "
                         f"{type(spec).__name__} {spec!r}")
    groups: dict[str, list[int]] = {}
    seen: dict[int, str] = {}
    for g, idx in spec.items():
        if g not in AXIS_GROUPS:
            raise StoreError(f"{where}: unknown action group '{g}' (known: {', '.join(AXIS_GROUPS)})")
        items = idx if isinstance(idx, (list, tuple)) else [idx]
        try:
            ints = [int(str(i).strip()) for i in items]
        except ValueError:
            raise StoreError(f"{where}: group '{g}' needs integer axis indices, got {idx!r}") from None
        if not ints:
            raise StoreError(f"{where}: group '{g}' names no axis")
        for i in ints:
            if i < 0 or (dim is not None and i >= dim):
                raise StoreError(f"{where}: group '{g}' axis {i} is outside 0..{(dim or 1) - 1} "
                                 f"(the actions have {dim} dims)")
            if i in seen:
                raise StoreError(f"{where}: axis {i} is in both '{seen[i]}' and '{g}'")
            seen[i] = g
        groups[g] = ints
    return groups


def format_groups(groups: Mapping[str, Sequence[int]]) -> str:
    """``{"translation": [0, 1, 2]}`` -> ``"translation=0,1,2"``; ``{}`` -> ``"none"``."""
    order = [g for g in AXIS_GROUPS if g in groups] + [g for g in groups if g not in AXIS_GROUPS]
    return " ".join(f"{g}={','.join(str(i) for i in groups[g])}" for g in order) or "none"


def resolve(dim: int, names: Sequence[str] | None, *, convention: Mapping[str, Sequence[int]] | None = None,
            convention_names: Sequence[str] | None = None, override: Any = None, where: str = "dataset",
            fmt: str = "dataset") -> tuple[list[str], dict[str, list[int]], str]:
    """``(axis names, groups, how)`` for ``dim``-dim actions; ``how`` says where the groups came from
    (``"--action-groups"``, ``"the dataset's action names"``, ``"the FORMAT convention"``)."""
    good = names is not None and len(names) == dim and all(isinstance(n, str) and n for n in names)
    given = list(names) if good and names is not None else None    # the dataset's own axis names, when usable
    axis = given if given is not None else (list(convention_names) if convention_names
                                            and len(convention_names) == dim else [f"a{i}" for i in range(dim)])
    if override is not None:
        return axis, parse_groups(override, dim), "--action-groups"
    if convention is not None:
        return axis, parse_groups(dict(convention), dim, f"{fmt} convention"), f"the {fmt} convention"
    if given is not None:
        found = groups_from_names(given)
        if found is not None:
            return axis, found, "the dataset's action names"
    from wmprobe.data.formats._common import FormatError
    said = f"its action names {given[:8]} say nothing about them" if given is not None else "it names no action axes"
    example = "translation=0,1,2 rotation=3,4,5 gripper=6" if dim == 7 else "translation=0,1,2 gripper=3"
    raise FormatError(f"{where}: cannot tell which of the {dim} action dims are translation, rotation or gripper "
                      f"({said}); pass them: --action-groups {example} (Python: action_groups=...), or "
                      "--action-groups none for per-dimension targets with no groups")


def regroup(store: Any, groups: Mapping[str, Sequence[int]], root: Any) -> Any:
    """``store`` with other action groups (a study's ``action_groups:``), as an EpisodeStore under ``root``
    whose arrays are hard links (else symlinks, else copies) of the original's and whose meta.json carries the
    new groups and a fingerprint recomputed over the same bytes: every cell keyed on it is its own. Returns
    ``store`` itself when the groups are already its groups."""
    import json
    import os
    import shutil
    from pathlib import Path

    from wmprobe._dest import write_marker
    from wmprobe._fs import make_temp_dir

    from wmprobe.data.store import EpisodeStore, compute_fingerprint
    groups = {g: [int(i) for i in v] for g, v in groups.items()}
    if store.action_groups == groups:
        return store
    if store.path is None:
        raise StoreError(f"{store.name}: only a store on disk can be regrouped")
    key = json_hash([store.fingerprint, groups], 16)
    dest = Path(root) / f"regroup-{store.name}-{key}"
    if (dest / "meta.json").is_file():
        return EpisodeStore.load(dest, allow_symlinks_out=True)  # its links (if any) are wmprobe's own
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(dest.parent, f".{dest.name}.tmp-")  # mode from the umask
    try:
        optional = ("states.npy",) if getattr(store, "states", None) is not None else ()
        for f in ("frames.npy", "actions.npy", "episode_ends.npy", "tasks.npy") + optional:
            src = (Path(store.path) / f).resolve()
            try:
                os.link(src, tmp / f)
            except OSError:
                try:
                    os.symlink(src, tmp / f)
                except OSError:
                    shutil.copyfile(src, tmp / f)
        meta = {k: v for k, v in store.meta.items() if k != "fingerprint"}
        meta.update(action_groups=groups, parent_fingerprint=store.fingerprint)
        meta["fingerprint"] = compute_fingerprint(store.frames, store.actions, store.episode_ends, store.tasks, meta,
                                                  getattr(store, "states", None))
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True, default=str))
        write_marker(tmp, "store")
        try:
            os.replace(tmp, dest)
        except OSError:  # another run made it meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return EpisodeStore.load(dest, allow_symlinks_out=True)
