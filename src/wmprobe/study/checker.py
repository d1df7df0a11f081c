"""The one generic checker: a YAML mapping walked against a section's declarations (study/fields.py).

``Checker`` collects ``Problem``s, each located at its file and line (``study.yaml:12: encoders[2].name: ...``)
or at the command-line override that set it (``override 2: ks[0]: ...``). ``check_section(c, raw, Section,
where)`` reports unknown keys (with a close match) and checks every key present against its field's ``Rule``;
``build(Section, raw)`` then makes the dataclass, each value converted to its field's declared type (a YAML
list to a tuple, an int to a float...) and each absent key given its declared default.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
from dataclasses import dataclass
from typing import Any, Callable, Collection, Mapping, TypeVar, Union, get_args, get_origin, get_type_hints

from wmprobe.study.fields import Rule, default_of, rule_of

T = TypeVar("T")
Bad = Callable[[str, str], None]


@dataclass(frozen=True)
class Problem:
    where: str          # "encoders[2].name"
    message: str
    line: int | None = None
    file: str | None = None

    def __str__(self) -> str:
        loc = f"{self.file}:{self.line}: " if self.file and self.line else (f"{self.file}: " if self.file else "")
        return f"{loc}{self.where}: {self.message}" if self.where else f"{loc}{self.message}"


def _parent(where: str) -> str:
    """``"a.b[2].c"`` -> ``"a.b[2]"`` -> ``"a.b"`` -> ``"a"`` -> ``""``."""
    return where.rpartition(".")[0] if "." in where else where.rpartition("[")[0]


class Checker:
    """Every problem of one config, located: ``lines`` maps a key path to its line in ``file``; ``overrides``
    maps a key path to the number of the command-line override that set it (study/overrides.py)."""

    def __init__(self, file: str | None, lines: Mapping[str, int],
                 overrides: Mapping[str, int] | None = None) -> None:
        self.file, self.lines = file, lines
        self.problems: list[Problem] = []
        self.overrides: Mapping[str, int] = overrides or {}

    def bad(self, where: str, message: str) -> None:
        probe = where
        while probe:  # a problem under an overridden path is the override's, not the file's
            if probe in self.overrides:
                self.problems.append(Problem(where, message, None, f"override {self.overrides[probe]}"))
                return
            probe = _parent(probe)
        line = self.lines.get(where)
        probe = where
        while line is None and probe:  # fall back to the closest enclosing node that has a line
            probe = _parent(probe)
            line = self.lines.get(probe)
        self.problems.append(Problem(where, message, line, self.file))

    def keys(self, d: Mapping[Any, Any], allowed: Collection[str], where: str) -> None:
        """Report every key of ``d`` not in ``allowed``, with a close match or the known keys."""
        for k in d:
            if k not in allowed:
                close = difflib.get_close_matches(str(k), sorted(allowed), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(sorted(allowed))})"
                self.bad(f"{where}.{k}" if where else str(k), f"unknown key{hint}")

    def typed(self, value: Any, kind: type | tuple[type, ...], where: str, what: str) -> bool:
        """``isinstance(value, kind)``, a bool never counting as a number; else ``expected WHAT, got ...``."""
        return check_value(self, Rule(kind if isinstance(kind, tuple) else (kind,), what), value, where)


def check_unique(bad: Bad, values: Any, where: str) -> None:
    """Each entry once: a repeated probe / k / seed / corruption would only repeat identical rows."""
    if not isinstance(values, list):
        return
    first: dict[str, int] = {}
    for i, v in enumerate(values):
        key = repr(v)
        if key in first:
            bad(f"{where}[{i}]", f"{v!r} is listed twice (also {where}[{first[key]}]): it would repeat identical "
                                 "rows")
        first.setdefault(key, i)


def check_value(c: Checker, rule: Rule, v: Any, where: str) -> bool:
    """Check one value against its rule (see study/fields.py); True when no problem was found."""
    if (v is None and rule.none == "ok") or rule.defaulted(v):
        return True
    if rule.ok is not None:
        if not rule.ok(v):
            c.bad(where, f"must be {rule.want}, got {v!r}")
            return False
    elif not rule.type_ok(v):
        c.bad(where, f"expected {rule.what}, got {type(v).__name__} {v!r}")
        return False
    n = len(c.problems)
    for constraint in rule.checks:
        message = constraint(v)
        if message:
            c.bad(where, message)
            break
    if rule.section is not None and isinstance(v, dict):
        check_section(c, v, rule.section, where)
    if isinstance(v, list):
        if rule.unique:
            check_unique(c.bad, v, where)
        if rule.items is not None:
            for i, x in enumerate(v):
                check_value(c, rule.items, x, f"{where}[{i}]")
    return len(c.problems) == n


def rules(section: type | Mapping[str, Rule]) -> dict[str, Rule | None]:
    """``{key: rule}`` of a section: a dataclass's fields (rule None: checked by the section's own function)
    or a mapping of rules."""
    if isinstance(section, type):
        return {f.name: rule_of(f) for f in dataclasses.fields(section)}
    return dict(section)


def check_section(c: Checker, raw: Mapping[str, Any], section: type | Mapping[str, Rule], where: str,
                  hooks: Mapping[str, Callable[[Any], None]] | None = None) -> None:
    """Unknown keys of ``raw``, then each declared key in declaration order: its rule when present, or its
    hook (``hooks[key](raw.get(key))``, called whether the key is present or not)."""
    declared = rules(section)
    c.keys(raw, declared, where)
    for key, rule in declared.items():
        if hooks and key in hooks:
            hooks[key](raw.get(key))
        elif rule is not None and key in raw:
            check_value(c, rule, raw[key], f"{where}.{key}" if where else key)


# ---- building the checked values -------------------------------------------------------------------------
def convert(tp: Any, v: Any) -> Any:
    """``v`` (from YAML) as the declared type ``tp``: lists to tuples, numbers to int/float, str; a union
    with None takes its other member; anything else, or a value that does not convert (its problem is
    reported: the entry is kept only for the cross-field checks), is kept as it is."""
    try:
        return _convert(tp, v)
    except (TypeError, ValueError):
        return v


def _convert(tp: Any, v: Any) -> Any:
    if v is None:
        return None
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return convert(rest[0], v) if len(rest) == 1 else v
    if origin is tuple and isinstance(v, (list, tuple)):
        item = args[0] if args else Any
        return tuple(convert(item, x) for x in v)
    if origin is dict or tp is dict:
        return dict(v)
    if tp in (int, float, str, bool):
        return tp(v)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type) and isinstance(v, dict):
        return build(tp, v)
    return v


def build(section: type[T], raw: Mapping[str, Any], **given: Any) -> T:
    """The dataclass ``section`` from a checked mapping: ``given`` values as they are, present keys converted
    to their declared types (``null`` for a ``none="default"`` key is the default), absent keys defaulted."""
    hints = get_type_hints(section)
    kw: dict[str, Any] = {}
    for f in dataclasses.fields(section):  # type: ignore[arg-type]
        rule = rule_of(f)
        if f.name in given:
            kw[f.name] = given[f.name]
        elif f.name in raw and not (rule is not None and rule.defaulted(raw[f.name])):
            kw[f.name] = convert(hints[f.name], raw[f.name])
        else:
            kw[f.name] = default_of(f)
    return section(**kw)


def get(raw: Any, key: str, section: type) -> Any:
    """``raw[key]`` when ``raw`` is a mapping holding it, else the declared default of ``section.key``."""
    if isinstance(raw, dict) and key in raw:
        return raw[key]
    return default_of(next(f for f in dataclasses.fields(section) if f.name == key))


__all__ = ["Bad", "Checker", "Problem", "build", "check_section", "check_unique", "check_value", "convert", "get",
           "rules"]
