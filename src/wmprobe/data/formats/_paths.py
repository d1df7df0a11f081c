"""Paths built from dataset metadata stay inside the dataset (docs/data.md, "Paths from dataset metadata").

A reader never opens a file because metadata named it unless the path, after symbolic links are resolved, lies
inside the dataset directory:

- ``PathTemplate``: LeRobot's ``data_path`` / ``video_path`` from ``meta/info.json``. Only the documented fields
  (``TEMPLATE_FIELDS``) are accepted, each as a plain ``{name}`` or with integer zero-padding
  (``{episode_index:06d}``): no attribute or index access (``{chunk_index.__class__}``), no conversions
  (``!r``), no other format specs. The template is formatted here, field by field, never with ``str.format``.
- ``confine``: an absolute path, or one with a ``..`` component, is always refused; a path whose symbolic links
  lead outside the dataset is refused unless the user allows it (``--allow-symlinks-out``, a study dataset's
  ``allow_symlinks_out: true``, or ``WMPROBE_ALLOW_SYMLINKS_OUT=1``) for files shared across datasets on purpose.

Every refusal is a ``FormatError`` (exit 2) naming the metadata field or file and the path.
"""
from __future__ import annotations

import os
import re
import string
from pathlib import Path, PurePosixPath
from typing import Any

from wmprobe.errors import FormatError

# LeRobot v2.0/v2.1 use episode_chunk, episode_index, video_key; v3.0 uses chunk_index, file_index, video_key
TEMPLATE_FIELDS = {"episode_chunk": int, "episode_index": int, "chunk_index": int, "file_index": int,
                   "video_key": str}
_INT_SPEC = re.compile(r"(0?[1-9][0-9]?)?d?")   # '', 'd', '3d', '03d', '06d': width up to 99, zero padding
ENV_ALLOW = "WMPROBE_ALLOW_SYMLINKS_OUT"
FLAG_HINT = ("pass --allow-symlinks-out (a study dataset: `allow_symlinks_out: true`; or set "
             f"{ENV_ALLOW}=1) if the dataset shares files with another on purpose")


class PathEscapeError(FormatError):
    """A path built from dataset metadata is absolute, climbs out with ``..``, leads outside the dataset through
    a symbolic link, or comes from a template with a field or format that is not allowed."""


def links_allowed(flag: bool | None = None) -> bool:
    """``flag`` when given, else ``$WMPROBE_ALLOW_SYMLINKS_OUT`` (1/true/yes)."""
    if flag is not None:
        return bool(flag)
    return os.environ.get(ENV_ALLOW, "").strip().lower() in ("1", "true", "yes")


class PathTemplate:
    """A checked path template: ``PathTemplate(text, "data_path", info_file).format(chunk_index=0, ...)``."""

    def __init__(self, text: Any, field: str, where: str | os.PathLike):
        self.text, self.field, self.where = text, field, str(where)
        if not isinstance(text, str) or not text.strip():
            self._bad(f"must be a non-empty string, got {text!r}")
        try:
            parts = list(string.Formatter().parse(text))
        except ValueError as exc:
            self._bad(f"is not a valid path template ({exc})")
        self.parts: list[tuple[str, str | None, str]] = []
        for literal, name, spec, conv in parts:
            if name is None:
                self.parts.append((literal, None, ""))
                continue
            if name not in TEMPLATE_FIELDS:
                why = ("attribute or index access is not allowed" if re.search(r"[.\[]", name) else
                       "positional fields are not allowed" if name == "" or name.isdigit() else "unknown field")
                self._bad(f"uses {{{name}}}: {why}; allowed fields are "
                          + ", ".join(f"{{{f}}}" for f in TEMPLATE_FIELDS))
            if conv is not None:
                self._bad(f"uses a conversion {{{name}!{conv}}}: not allowed")
            if TEMPLATE_FIELDS[name] is int and not _INT_SPEC.fullmatch(spec or ""):
                self._bad(f"formats {{{name}}} with '{spec}': only integer zero-padding like {{{name}:06d}} is "
                          "allowed")
            if TEMPLATE_FIELDS[name] is str and spec:
                self._bad(f"formats {{{name}}} with '{spec}': no format spec is allowed on a text field")
            self.parts.append((literal, name, spec or ""))
        if "".join(lit for lit, _, _ in self.parts).startswith(("/", "\\")) or re.match(r"[A-Za-z]:", text):
            self._bad("is an absolute path: paths in a dataset's metadata are relative to the dataset")
        self.fields = {n for _, n, _ in self.parts if n is not None}

    def _bad(self, why: str) -> None:
        raise PathEscapeError(f"{self.where}: {self.field} '{self.text}' {why}")

    def format(self, **values: Any) -> str:
        """The relative path for ``values`` (fields the template does not use are ignored)."""
        out = []
        for literal, name, spec in self.parts:
            out.append(literal)
            if name is None:
                continue
            if name not in values:
                self._bad(f"uses {{{name}}}, which is not known for this dataset version")
            v = values[name]
            out.append(format(int(v), spec or "d") if TEMPLATE_FIELDS[name] is int else str(v))
        return "".join(out)


def confine(root: str | os.PathLike, path: str | os.PathLike, what: str, allow_links_out: bool = False) -> Path:
    """``root / path`` if it stays inside ``root``, else ``PathEscapeError`` naming ``what`` (the metadata field
    or file) and the path. ``path`` may be relative to ``root`` or already joined to it. An absolute path given in
    metadata, or a ``..`` component, is always refused; a symbolic link out of ``root`` only without
    ``allow_links_out``."""
    root = Path(root)
    p = Path(path)
    rel = p.relative_to(root) if _under(root, p) else p
    parts = PurePosixPath(str(rel).replace("\\", "/")).parts
    if rel.is_absolute() or str(rel).startswith(("/", "\\")):
        raise PathEscapeError(f"{what}: path {path} is outside the dataset {root} (metadata paths must be relative "
                              "to the dataset)")
    if ".." in parts:
        raise PathEscapeError(f"{what}: path {rel} climbs out of the dataset {root} with '..'; not allowed")
    full = root / rel
    if allow_links_out:
        return full
    real_root = root.resolve()
    real = full.resolve()
    if real != real_root and real_root not in real.parents:
        raise PathEscapeError(f"{what}: {full} leads through a symbolic link to {real}, outside the dataset "
                              f"{root}; refusing to read it: {FLAG_HINT}")
    return full


def _under(root: Path, p: Path) -> bool:
    try:
        p.relative_to(root)
        return True
    except ValueError:
        return False
