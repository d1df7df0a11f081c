"""Probe suite: registry, factory and ``evaluate`` (fit on train, score on test, one record per seed).

Layout: ``spec.py`` (``ProbeSpec`` and the registry ``PROBES``), ``core.py`` (``evaluate``, controls, scores),
``data.py`` (``build_probe_data``: features + store -> paired train/test data), ``api.py`` (``probe``: bring
your own latents), ``headline.py`` (which action groups the headline R2 averages), one module per probe
(``mlp``, ``ridge``, ``attentive``), ``pairs.py`` (step pairing), ``imagined.py`` (world-model rollouts).

Probe names: ``mlp`` (paper protocol), ``ridge`` (closed form), ``attentive`` (patch tokens), and controls
as their own names: ``<probe>-shuffled`` (the partner step of every train AND test pair comes from another
episode; must score <= ~0) and ``<probe>-single`` (only f(o_t)). See docs/protocol.md. What each name means
to the stages (seeded, tokens, options, controls) is its ``ProbeSpec`` (``wmprobe.probes.spec``).
"""
from __future__ import annotations

from typing import Any

from wmprobe.probes.base import Probe, ProbeData
from wmprobe.probes.core import (ALL_DIMS, GROUPS, SHUFFLE_SEED, binary_groups, evaluate, evaluate_many,
                                 group_scores, headline_of, make_probe, ordered_groups, shuffle_partners,
                                 single_frame_data)
from wmprobe.probes.spec import CONTROLS, PROBES, ProbeSpec, parse_probe_name, probe_spec, register_probe


def probe(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """Probe latents aligned with a store's frames; see ``wmprobe.probes.api.probe``."""
    from wmprobe.probes.api import probe as _probe
    return _probe(*args, **kwargs)


__all__ = ["PROBES", "CONTROLS", "ProbeSpec", "probe_spec", "register_probe", "ProbeData", "Probe", "make_probe",
           "evaluate", "evaluate_many", "probe", "parse_probe_name", "shuffle_partners", "single_frame_data",
           "headline_of", "ordered_groups", "group_scores", "binary_groups", "GROUPS", "ALL_DIMS", "SHUFFLE_SEED"]
