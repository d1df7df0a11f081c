"""The vocabulary of the study schema: a ``Rule`` per config key, declared beside its type and default.

A section of a study config is a dataclass (study/schema.py); each field that the YAML may set carries its
rule in the field's metadata, written with ``setting(default, rule)``, so a key's type, default and
constraints are written once, in one place. ``study.checker.check_section`` walks a YAML mapping against
those declarations. Two message styles exist, and a rule picks one:

- typed (``what=``): the type first (``expected an integer, got str 'x'``), then each ``Constraint`` in
  order, each with its own message (``must be >= 1``, ``unknown split 'x' (known: task, episode)``);
- combined (``want=``, ``ok=``): one predicate and one message, ``must be an integer > 0, got 0``
  (``expects``: the same with ``expected a non-empty list of ..., got []``).

A list's items have a rule of their own (``items=``); ``unique=True`` reports an item listed twice.
Choices come from callables (a registry's names), read when a config is checked: plugins count.
"""
from __future__ import annotations

import math
from dataclasses import MISSING, Field, dataclass, field
from typing import Any, Callable, Iterable, Literal

#: how a YAML ``null`` is read: ``"value"`` it is checked like any value (usually a type error),
#: ``"default"`` it stands for the default (``probe: null``; so does any empty value: ``zoo: []``, ``probe: 0``),
#: ``"ok"`` it is a legal value (optional keys)
NoneMode = Literal["value", "default", "ok"]


def is_int(v: Any) -> bool:
    """An integer, not a bool (YAML ``true`` is no count)."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v: Any) -> bool:
    """An int or float, not a bool."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_finite(v: Any) -> bool:
    return is_num(v) and math.isfinite(v)


@dataclass(frozen=True)
class Constraint:
    """A check of a value that already has the right type: ``test(value)`` is None when it holds, else the
    problem (without the key path)."""

    test: Callable[[Any], str | None]

    def __call__(self, value: Any) -> str | None:
        return self.test(value)


def at_least(lo: int | float) -> Constraint:
    """``must be >= LO``."""
    return Constraint(lambda v: None if v >= lo else f"must be >= {lo}")


def at_most(hi: int | float) -> Constraint:
    """``must be <= HI``."""
    return Constraint(lambda v: None if v <= hi else f"must be <= {hi}")


def between(lo: int, hi: int) -> Constraint:
    """``must be in LO..HI, got V`` (both ends included)."""
    return Constraint(lambda v: None if lo <= v <= hi else f"must be in {lo}..{hi}, got {v}")


def inside(lo: float, hi: float) -> Constraint:
    """``must be in (LO, HI)`` (both ends excluded)."""
    return Constraint(lambda v: None if lo < v < hi else f"must be in ({lo:g}, {hi:g})")


def one_of(names: Callable[[], Iterable[str]], message: str) -> Constraint:
    """The value is one of ``names()`` (read at check time: a registry's names, plugins included);
    ``message`` is formatted with ``value`` and ``known`` (the names joined by ", ")."""
    def test(v: Any) -> str | None:
        known = list(names())
        return None if v in known else message.format(value=v, known=", ".join(known))
    return Constraint(test)


def not_empty(message: str = "must not be empty") -> Constraint:
    return Constraint(lambda v: None if len(v) else message)


def parses(fn: Callable[[Any], object]) -> Constraint:
    """``fn(value)`` does not raise; its error message is the problem (a corruption or probe name)."""
    def test(v: Any) -> str | None:
        try:
            fn(v)
        except Exception as exc:  # noqa: BLE001 - a parse error is a problem of the config, reported as such
            return str(exc)
        return None
    return Constraint(test)


@dataclass(frozen=True)
class Rule:
    """How one key is checked (see the module doc). ``types``: the accepted Python types (a bool is never an
    int or float); ``what``: how the typed style names them; ``want``/``ok``: the combined style;
    ``checks``: constraints on the whole value, in order, the first failing one reported; ``unique`` and
    ``items``: for lists; ``section``: a mapping whose keys are declared by that dataclass (or a dict of
    rules), unknown keys reported; ``none``: see ``NoneMode``."""

    types: tuple[type, ...] = ()
    what: str = ""
    checks: tuple[Constraint, ...] = ()
    want: str = ""
    ok: Callable[[Any], bool] | None = None
    unique: bool = False
    items: Rule | None = None
    section: type | dict[str, Rule] | None = None
    none: NoneMode = "value"

    def defaulted(self, v: Any) -> bool:
        """True when ``v`` stands for the key's default (see ``NoneMode``)."""
        return self.none == "default" and not v

    def type_ok(self, v: Any) -> bool:
        if not self.types:
            return True
        return isinstance(v, self.types) and not (isinstance(v, bool) and bool not in self.types)


# ---- the common rules ------------------------------------------------------------------------------------
def integer(*checks: Constraint, what: str = "an integer", none: NoneMode = "value") -> Rule:
    return Rule((int,), what, checks, none=none)


def number(*checks: Constraint, what: str = "a number") -> Rule:
    return Rule((int, float), what, checks)


def boolean(what: str = "true or false") -> Rule:
    return Rule((bool,), what)


def choice(names: Callable[[], Iterable[str]], message: str) -> Rule:
    """Any value, checked against ``names()`` only (no type check: ``split: 5`` is an unknown split)."""
    return Rule(checks=(one_of(names, message),))


def listing(what: str, *checks: Constraint, items: Rule | None = None, unique: bool = False,
            none: NoneMode = "value") -> Rule:
    return Rule((list,), what, checks, unique=unique, items=items, none=none)


def mapping(what: str = "a mapping", section: type | dict[str, Rule] | None = None,
            none: NoneMode = "default") -> Rule:
    return Rule((dict,), what, section=section, none=none)


def wants(want: str, ok: Callable[[Any], bool], none: NoneMode = "value") -> Rule:
    """The combined style: ``must be WANT, got V`` unless ``ok(value)``."""
    return Rule(want=want, ok=ok, none=none)


def expects(what: str, ok: Callable[[Any], bool], *, shown: bool = True, none: NoneMode = "value",
            items: Rule | None = None) -> Rule:
    """``expected WHAT, got V`` (``expected WHAT`` alone when not ``shown``) unless ``ok(value)``; a list's
    ``items`` are checked too."""
    return Rule(checks=(Constraint(lambda v: None if ok(v) else f"expected {what}" + (f", got {v!r}" if shown
                                                                                       else "")),),
                items=items, none=none)


# ---- declaring a field -----------------------------------------------------------------------------------
def setting(default: Any = MISSING, rule: Rule | None = None, *, doc: str = "") -> Any:
    """A dataclass field with its default (a dict, list or set default is copied per instance) and its
    ``Rule`` (None: the key is checked by its section's own function; see study/sections.py)."""
    meta = {"rule": rule, "doc": doc}
    if isinstance(default, (dict, list, set)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def rule_of(f: Field[Any]) -> Rule | None:
    """The ``Rule`` a field was declared with (None when it has none)."""
    rule = f.metadata.get("rule")
    return rule if isinstance(rule, Rule) else None


def default_of(f: Field[Any]) -> Any:
    """A field's default value (a fresh copy for a factory default)."""
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING
