"""What each probe is, declared once: ``ProbeSpec`` and the probe registry ``PROBES``.

Every stage (config check, plan, tasks, pipeline, runner, imagined probes) asks ``probe_spec(name)`` instead of
reading meaning off the name. A name is a registered probe (``mlp``, ``ridge``, ``attentive``) or a control of
one, ``<probe>-<control>`` (``CONTROLS``: ``shuffled``, ``single``; docs/protocol.md).

Adding a probe: a ``Probe`` class in its own module (``wmprobe.probes.base``: ``fit(ProbeData)``,
``predict -> (S, P, A)``, ``config()``, ``seeds``) and one ``PROBES.add`` line below with its ``ProbeSpec``
(or ``register_probe`` at run time, e.g. from a plugin's import); its controls come for free.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
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


#: base probe name -> its ``Probe`` class (lazy ``"module:Class"``); ``meta["spec"]``: its ``ProbeSpec``
PROBES: Registry[type] = Registry("probe", error=ProbeError, check=_check_probe)


def register_probe(spec: ProbeSpec, *, runtime: bool = True) -> ProbeSpec:
    """Register ``spec`` (its ``name`` must not contain ``-``: that separates controls)."""
    if "-" in spec.name or not spec.name:
        raise ValueError(f"probe name {spec.name!r} must be non-empty and without '-' (it separates controls)")
    spec = dataclasses.replace(spec, base=spec.name, control=None)
    PROBES.add(spec.name, spec.target, runtime=runtime, replace=True, spec=spec)
    return spec


register_probe(ProbeSpec(
    "mlp", "wmprobe.probes.mlp:MLPProbe",
    "MLP on the pair (f(o_t), f(o_t+k)): 2 hidden layers (256, 128), L1 loss, 3000 steps x batch 256, lr "
    "picked from {1e-3, 3e-4} on held-out train episodes; one fit per seed",
    seeded=True, config_section="probe", state=True, imagined=True), runtime=False)
register_probe(ProbeSpec(
    "ridge", "wmprobe.probes.ridge:RidgeProbe",
    "closed-form ridge on the pooled pair, alpha by episode-grouped CV on train (deterministic)",
    seeded=False, takes_options=False, state=True, imagined=True, version="wmprobe.probes.ridge:VERSION"),
    runtime=False)
register_probe(ProbeSpec(
    "attentive", "wmprobe.probes.attentive:AttentiveProbe",
    "attention pooling over the patch tokens of both steps, then an MLP (needs --tokens / (N, tokens, D) latents)",
    seeded=True, needs_tokens=True), runtime=False)


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
