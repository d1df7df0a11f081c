"""What each probe is, declared once: ``ProbeSpec`` and the probe registry ``PROBES``.

Every stage (config check, plan, tasks, pipeline, runner, imagined probes) asks ``probe_spec(name)`` instead of
reading meaning off the name. A name is a registered probe (``mlp``, ``ridge``, ``attentive``) or a control of
one, ``<probe>-<control>`` (``CONTROLS``: ``shuffled``, ``single``; docs/protocol.md).

Adding a probe is one file: a ``Probe`` class in its own module (``wmprobe.probes.base``: ``fit(ProbeData)``,
``predict -> (S, P, A)``, ``config()``, ``seeds``) that registers itself, as a plugin's module does, with one
top-level ``register_probe(ProbeSpec(...))`` (a built-in one in this package passes ``runtime=False`` and only
literal arguments: the registry finds that line in the module's source on first use without importing it, so
listing and checking probe names imports no torch); its controls come for free.
"""
from __future__ import annotations

import ast
import dataclasses
import io
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from wmprobe.errors import ProbeError
from wmprobe.registry import Registry, resolve


@dataclass(frozen=True)
class ProbeSpec:
    """How the stages treat one probe name.

    ``seeded``: one fit per study seed (False: one deterministic fit, recorded under the first seed: ridge).
    ``needs_tokens``: reads the un-pooled patch tokens of both steps (extraction keeps them; else pooled rows).
    ``config_section``: the study config block its options come from (``"probe"``: the study's ``probe:`` block
    and `wmprobe probe FEATURES --steps`; None: none). ``takes_options``: options given with latents
    (``wmprobe.probe(..., **options)``, `wmprobe probe --latents --steps`) reach it. ``state``: also measured
    on a dataset's proprioceptive states (the state ceiling). ``imagined``: also probed on a world model's imagined
    latents.
    ``version``: ``"module:ATTR"`` of an integer bumped when the probe's fit changes; it enters cache keys.
    ``order``: its place among the built-in probes in listings (`wmprobe ls probes`), smallest first.
    ``control``: ``shuffled`` / ``single`` for a control of ``base``, else None. A control is measured on clean
    features only, never on the state ceiling or imagined latents."""

    name: str
    target: str
    description: str = ""
    seeded: bool = True
    needs_tokens: bool = False
    config_section: str | None = None
    takes_options: bool = True
    state: bool = False
    imagined: bool = False
    version: str | None = None
    order: int = 0
    control: str | None = None
    base: str = ""

    @property
    def is_control(self) -> bool:
        return self.control is not None

    @property
    def takes_config(self) -> bool:
        return self.config_section is not None

    @property
    def on_states(self) -> bool:
        """Measured on state features (the state ceiling): a plain probe with ``state``."""
        return self.state and not self.is_control

    @property
    def on_imagined(self) -> bool:
        """Probed on imagined latents: a plain probe with ``imagined``."""
        return self.imagined and not self.is_control

    def fit_seeds(self, seeds: Sequence[int]) -> tuple[int, ...]:
        """The seeds its rows carry: every seed, or the first one for a deterministic probe."""
        return tuple(int(s) for s in (seeds if self.seeded else seeds[:1]))

    def study_options(self, block: Mapping[str, Any] | None) -> dict[str, Any]:
        """Its options from the study's ``config_section`` block: ``block``, or {} when it reads none."""
        return dict(block or {}) if self.takes_config else {}

    def api_options(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        """Its options from the options given with latents: ``options``, or {} (``takes_options`` False)."""
        return dict(options or {}) if self.takes_options else {}

    def cache_version(self) -> dict[str, Any]:
        """``{base: VERSION}`` for a probe with a ``version`` (entered in its cache keys), else {}."""
        return {self.base: resolve(self.version)} if self.version else {}


CONTROLS: dict[str, str] = {
    "shuffled": "control: the partner step comes from another episode; must score <= ~0",
    "single": "control: only f(o_t), no second frame",
}


def _check_probe(name: str, obj: Any) -> Any:
    if not (isinstance(obj, type) and callable(getattr(obj, "fit", None)) and callable(getattr(obj, "predict", None))):
        raise ProbeError(f"probe {name!r}: {obj!r} is not a Probe class (fit, predict)")
    return obj


def _add(registry: Registry[type], spec: ProbeSpec, runtime: bool) -> ProbeSpec:
    if "-" in spec.name or not spec.name:
        raise ValueError(f"probe name {spec.name!r} must be non-empty and without '-' (it separates controls)")
    spec = dataclasses.replace(spec, base=spec.name, control=None)
    if not runtime:      # a built-in module imported after the registry found its line: the same spec again
        known = registry.builtins().get(spec.name)
        if known is not None and known.meta["spec"] == spec:
            return spec
    registry.add(spec.name, spec.target, runtime=runtime, spec=spec)
    return spec


# ---- the built-in probes: each module of this package declares its own -------------------------------------
_DECLARATION = re.compile(r"^register_probe\(", re.MULTILINE)


def _statement(text: str, start: int, where: str) -> str:
    """The source of the (possibly multi-line) statement that begins at ``text[start]``."""
    rest = text[start:]
    try:
        for tok in tokenize.generate_tokens(io.StringIO(rest).readline):
            if tok.type == tokenize.NEWLINE:
                return "".join(rest.splitlines(keepends=True)[:tok.end[0]])
    except (tokenize.TokenError, SyntaxError) as exc:
        raise ProbeError(f"{where}: cannot read the register_probe statement ({exc})") from None
    return rest


def _declared_spec(statement: str, module: str, where: str) -> ProbeSpec:
    """The ``ProbeSpec`` of ``register_probe(ProbeSpec(LITERALS...), runtime=False)``, evaluated as literals
    (nothing imported); ProbeError naming ``where`` for any other form or a target outside ``module``."""
    form = "a built-in probe is declared as register_probe(ProbeSpec(...), runtime=False) with literal arguments"
    try:
        node = ast.parse(statement).body[0]
        if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and len(node.value.args) == 1):
            raise ValueError
        call, inner = node.value, node.value.args[0]
        if not (isinstance(inner, ast.Call) and isinstance(inner.func, ast.Name) and inner.func.id == "ProbeSpec"):
            raise ValueError
        outer = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
        kwargs = {str(k.arg): ast.literal_eval(k.value) for k in inner.keywords if k.arg is not None}
        if outer != {"runtime": False} or len(kwargs) != len(inner.keywords):
            raise ValueError
        spec = ProbeSpec(*[ast.literal_eval(a) for a in inner.args], **kwargs)
    except (SyntaxError, ValueError, TypeError):
        raise ProbeError(f"{where}: {form}") from None
    if "-" in spec.name or not spec.name:
        raise ProbeError(f"{where}: probe name {spec.name!r} must be non-empty and without '-'")
    if spec.target.partition(":")[0] != module:
        raise ProbeError(f"{where}: probe {spec.name!r} names {spec.target!r}, outside its module {module}")
    return spec


def declared_probes(folder: Path, package: str) -> list[ProbeSpec]:
    """The probes the modules ``folder/*.py`` of ``package`` declare with a top-level ``register_probe`` line,
    read from their source without importing them (the probes import torch), in ``order`` then name."""
    found = []
    for path in sorted(folder.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        for m in _DECLARATION.finditer(text):
            where = f"{package.replace('.', '/')}/{path.name}:{text.count(chr(10), 0, m.start()) + 1}"
            found.append(_declared_spec(_statement(text, m.start(), where), f"{package}.{path.stem}", where))
    return sorted(found, key=lambda s: (s.order, s.name))


def _declared_probes(registry: Registry[type]) -> None:
    for spec in declared_probes(Path(__file__).parent, str(__package__)):
        _add(registry, spec, runtime=False)


#: base probe name -> its ``Probe`` class (lazy ``"module:Class"``); ``meta["spec"]``: its ``ProbeSpec``. The
#: built-ins are found on first use (``_declared_probes``); plugins and tests add theirs with ``register_probe``
PROBES: Registry[type] = Registry("probe", error=ProbeError, check=_check_probe, discover=_declared_probes)


def register_probe(spec: ProbeSpec, *, runtime: bool = True) -> ProbeSpec:
    """Register ``spec`` (its ``name`` must not contain ``-``: that separates controls). ``runtime=False``: a
    built-in probe's own module (its line is found without importing it; importing it registers the same spec
    again, which changes nothing; a different spec under a built-in name is a ValueError)."""
    return _add(PROBES, spec, runtime)


def known_probe_names() -> list[str]:
    """Every valid probe name: the registered probes, then each one's controls (sorted)."""
    bases = sorted(PROBES.names())
    return bases + [f"{p}-{c}" for p in bases for c in CONTROLS]


def probe_spec(name: str) -> ProbeSpec:
    """The ``ProbeSpec`` of a probe name (``"mlp-shuffled"``: mlp's spec with ``control="shuffled"``);
    ProbeError naming every valid name for an unknown one."""
    base, dash, control = str(name).partition("-")
    entries = PROBES.entries()
    if base not in entries or (dash and control not in CONTROLS):
        close = PROBES.suggest(str(name), among=known_probe_names())
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ProbeError(f"unknown probe {name!r}{hint}; choose one of {', '.join(known_probe_names())}")
    spec: ProbeSpec = entries[base].meta["spec"]
    return dataclasses.replace(spec, name=str(name), control=control) if control else spec


def parse_probe_name(name: str) -> tuple[str, str | None]:
    """``"mlp-shuffled" -> ("mlp", "shuffled")``; ProbeError for unknown names."""
    spec = probe_spec(name)
    return spec.base, spec.control


__all__ = ["CONTROLS", "PROBES", "ProbeSpec", "known_probe_names", "parse_probe_name", "probe_spec",
           "register_probe"]
