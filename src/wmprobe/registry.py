"""One registry for every named, pluggable thing: ``Registry[T]`` and the one ``"module:attr"`` resolver.

A registry maps a name to an ``Entry``: a target (an object, or a lazy ``"package.module:attr"`` string that is
imported only when the name is first asked for) and free-form metadata (a description, a family, the extra to
install...). Names come from three layers, later ones overriding earlier ones:

1. built-in entries (``add`` / ``register`` at import time of the module that owns the registry, or found on
   first use by the registry's ``discover`` callable: a package scan, files read lazily);
2. third-party plugins: the entry points of the registry's ``group`` (``importlib.metadata``; an entry
   point's value is its ``"module:attr"`` target), read on every listing so a freshly installed plugin shows;
3. run-time entries (``add(..., runtime=True)``), e.g. ``wmprobe.encoders.register_encoder``.

``get(name)`` returns the resolved target (cached per entry); an unknown name raises the registry's error
class with close matches suggested (``did_you_mean``). Owners keep their own wording: ``suggest`` and
``did_you_mean`` give the pieces. Registries in use: encoders (``wmprobe.encoders.registry.ENCODERS``),
probes (``wmprobe.probes.spec.PROBES``), corruptions (``wmprobe.data.corruptions.registry.TYPES``), zoo
families (``wmprobe.zoo.families.REGISTRY``), dataset readers and writers (``wmprobe.data.formats.READERS`` /
``WRITERS``), executors (``wmprobe.study.executor_registry.EXECUTORS``), presets (``wmprobe.presets.PRESETS``:
one YAML file a name).
"""
from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Generic, Iterator, Mapping, TypeVar, overload

from wmprobe.errors import WmprobeError

T = TypeVar("T")


class ResolveError(WmprobeError):
    """A ``"module:attr"`` target that cannot be resolved: ``reason`` is ``"import"`` (the module does not
    import; ``cause`` says why), ``"attribute"`` (the module lacks ``attr``) or ``"format"`` (no ``:``)."""

    def __init__(self, target: str, reason: str, cause: str = "") -> None:
        self.target = target
        self.module, _, self.attr = target.partition(":")
        self.reason = reason
        self.cause = cause
        what = {"import": f"cannot import {self.module} ({cause})",
                "attribute": f"{self.module} has no attribute '{self.attr}'"}.get(reason, "not a 'module:attr' target")
        super().__init__(f"{target}: {what}")


def split_target(target: str) -> tuple[str, str]:
    """``"pkg.mod:a.b" -> ("pkg.mod", "a.b")``; ``ValueError`` when ``target`` is not ``module:attr``."""
    module, sep, attr = str(target).partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"not a 'module:attr' target: {target!r}")
    return module, attr


def resolve(target: str) -> Any:
    """Import ``module`` and walk the dotted ``attr`` of ``"module:attr"``: the one place wmprobe turns a
    target string into an object. ``ResolveError`` when the module does not import or lacks the attribute
    (``reason`` ``"format"``: not a ``module:attr`` string)."""
    try:
        module, attr = split_target(target)
    except ValueError:
        raise ResolveError(str(target), "format") from None
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as exc:
        raise ResolveError(target, "import", str(exc)) from None
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ResolveError(target, "attribute")
    return obj


def target_of(obj: Any) -> str:
    """The ``"module:qualname"`` target naming ``obj`` (a function or class defined at module level)."""
    return f"{obj.__module__}:{obj.__qualname__}"


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered name: ``target`` (an object, or a lazy ``"module:attr"``), ``source`` (``builtin``,
    ``plugin`` or ``runtime``) and ``meta`` (owner-defined: description, family, ...)."""

    name: str
    target: Any
    source: str = "builtin"
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def lazy(self) -> bool:
        return isinstance(self.target, str)


def instance_of(cls: type[T], what: str, error: type[Exception] = WmprobeError) -> Callable[[str, Any], T]:
    """A ``Registry`` ``check`` that accepts instances of ``cls`` only: ``error`` "WHAT 'name' does not name a
    CLS (got TYPE)" otherwise."""
    def check(name: str, obj: Any) -> T:
        if not isinstance(obj, cls):
            raise error(f"{what} {name!r} does not name a {cls.__name__} (got {type(obj).__name__})")
        return obj
    return check


class Registry(Generic[T]):
    """Named entries of one kind (``kind`` names it in messages: ``"encoder"``, ``"probe"``...).

    ``group``: the entry-point group plugins register under (None: no plugins). ``error``: the exception class
    of ``unknown`` (keep the owner's: ``EncoderError``, ``ProbeError``, ``ConfigError``). ``check``: called on
    every resolved target; returns it or raises (e.g. "not a Probe subclass"). ``discover``: called once, with
    the registry, the first time its built-in entries are asked for (or one is added); it ``add``s the
    built-ins it finds (the probe modules of a package, the files of a folder), before any added at import.
    When it raises, what it added is dropped and the next use tries again."""

    def __init__(self, kind: str, *, group: str | None = None, error: type[Exception] = WmprobeError,
                 check: Callable[[str, Any], T] | None = None,
                 plugin_meta: Callable[[Any], Mapping[str, Any]] | None = None,
                 discover: Callable[[Registry[T]], None] | None = None) -> None:
        self.kind = kind
        self.group = group
        self.error = error
        self._check = check
        self._plugin_meta = plugin_meta
        self._discover = discover
        self._builtin: dict[str, Entry[T]] = {}
        self._runtime: dict[str, Entry[T]] = {}
        self._loaded: dict[tuple[str, int], T] = {}

    # ---- registering ------------------------------------------------------------------------------------
    def add(self, name: str, target: Any, *, runtime: bool = False, replace: bool = False,
            **meta: Any) -> Entry[T]:
        """Register ``name`` -> ``target`` (an object or ``"module:attr"``) with ``meta``. A built-in name is
        registered once (``ValueError`` on a second time unless ``replace``); run-time entries override."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if isinstance(target, str):
            split_target(target)
        entry: Entry[T] = Entry(name, target, "runtime" if runtime else "builtin", dict(meta))
        layer = self._runtime if runtime else self.builtins()
        if name in layer and not (runtime or replace):
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        layer[name] = entry
        self._loaded = {k: v for k, v in self._loaded.items() if k[0] != name}
        return entry

    @overload
    def register(self, name: str, target: None = None, **meta: Any) -> Callable[[Any], Any]: ...

    @overload
    def register(self, name: str, target: Any, **meta: Any) -> Entry[T]: ...

    def register(self, name: str, target: Any = None, **meta: Any) -> Any:
        """``add`` as a decorator (``@REG.register("name", description=...)`` on a class or function) or
        called with a ``target``."""
        if target is not None:
            return self.add(name, target, **meta)

        def deco(obj: Any) -> Any:
            self.add(name, obj, **meta)
            return obj
        return deco

    # ---- looking up -------------------------------------------------------------------------------------
    def plugins(self) -> dict[str, Entry[T]]:
        """The entry points of ``group`` (read now: a plugin installed since is seen)."""
        if not self.group:
            return {}
        found: dict[str, Entry[T]] = {}
        for ep in metadata.entry_points(group=self.group):
            dist = getattr(ep, "dist", None)
            meta = dict(self._plugin_meta(ep)) if self._plugin_meta else {}
            meta.setdefault("dist", dist.name if dist else "?")
            found[ep.name] = Entry(ep.name, ep.value, "plugin", meta)
        return found

    def builtins(self) -> dict[str, Entry[T]]:
        """The built-in layer in registration order (``discover`` run first, once), nothing imported."""
        if self._discover is not None:
            find, self._discover = self._discover, None
            before = dict(self._builtin)
            try:
                find(self)
            except BaseException:
                self._builtin.clear()
                self._builtin.update(before)
                self._discover = find
                raise
        return self._builtin

    def entries(self) -> dict[str, Entry[T]]:
        """Every known entry (built-in, then plugins, then run-time; a later layer wins), nothing imported."""
        return {**self.builtins(), **self.plugins(), **self._runtime}

    def names(self) -> list[str]:
        return list(self.entries())

    def builtin_names(self) -> list[str]:
        """The built-in names in registration order (no plugin lookup: cheap, e.g. for CLI choices)."""
        return list(self.builtins())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.entries()

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries())

    def __len__(self) -> int:
        return len(self.entries())

    def entry(self, name: str) -> Entry[T]:
        """The entry of ``name`` (nothing imported); ``unknown`` when there is none."""
        found = self.entries().get(name)
        if found is None:
            raise self.unknown(name)
        return found

    def get(self, name: str) -> T:
        """The resolved target of ``name`` (imported on first use, then cached while the entry stays)."""
        return self.load(self.entry(name))

    def load(self, entry: Entry[T]) -> T:
        """Resolve ``entry``'s target (``ResolveError`` when its module does not import or lacks it) and check it."""
        memo = (entry.name, id(entry.target))
        if memo in self._loaded:
            return self._loaded[memo]
        obj: T = resolve(entry.target) if entry.lazy else entry.target
        if self._check is not None:
            obj = self._check(entry.name, obj)
        if entry.source != "plugin":     # plugins are re-read on every lookup; do not pin them
            self._loaded[memo] = obj
        return obj

    # ---- unknown names ----------------------------------------------------------------------------------
    def suggest(self, name: str, n: int = 3, cutoff: float = 0.5, among: list[str] | None = None) -> list[str]:
        """Close matches of ``name`` among the known names (``among``: other candidates)."""
        return difflib.get_close_matches(str(name), among if among is not None else self.names(), n=n,
                                         cutoff=cutoff)

    def did_you_mean(self, name: str, among: list[str] | None = None) -> str:
        """``"; did you mean a, b?"`` or ``""``."""
        close = self.suggest(name, among=among)
        return f"; did you mean {', '.join(close)}?" if close else ""

    def unknown(self, name: str) -> Exception:
        """The error for an unknown ``name``: ``unknown KIND 'name'; did you mean ...? (known: ...)``."""
        return self.error(f"unknown {self.kind} '{name}'{self.did_you_mean(name)} "
                          f"(known: {', '.join(sorted(self.names()))})")


__all__ = ["Entry", "Registry", "ResolveError", "resolve", "split_target", "target_of"]
