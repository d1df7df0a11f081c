"""Study presets: the ``study`` section of each preset file (``wmprobe/presets/NAME.yaml``) as a ``StudyPreset``.

``study_preset(name).study_dict()`` is what a study's ``preset: NAME`` fills in (the file's keys override it)
and what ``wmprobe demo --preset NAME`` runs; ``zoo.families: all`` in a file stands for every pretraining
family of the zoo registry (``zoo.families.pretraining_families``, plugins included), resolved here.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from wmprobe import presets


@dataclass(frozen=True)
class StudyPreset:
    """A preset's name, one-line description and the study config it stands for (docs/study.md keys)."""

    name: str
    description: str
    study: dict[str, Any]

    def study_dict(self) -> dict[str, Any]:
        """A fresh copy of the study config."""
        return copy.deepcopy(self.study)

    def describe(self) -> str:
        """The sizes in one line (``wmprobe ls presets``, the demo's banner)."""
        s, zoo = self.study, self.study["zoo"]
        ds = s["datasets"]
        return (f"{len(ds)} suite(s) x {ds[0]['episodes']} episodes x {ds[0]['steps']} steps at {ds[0]['size']}px; "
                f"{len(zoo['families'])} zoo families (frozen and +ID) and the ceiling, zoo preset {zoo['preset']}; "
                f"probes {', '.join(s['probes'])}; "
                f"k {list(s['ks'])}; {len(s['seeds'])} seeds; corruptions {', '.join(s['corruptions'])}")


def study_preset(name: str) -> StudyPreset:
    """The study preset ``name``; ConfigError listing the presets when there is none."""
    doc = presets.read(name)
    study = doc["study"]
    zoo = study.get("zoo")
    if isinstance(zoo, dict) and zoo.get("families") == "all":
        from wmprobe.zoo.families import pretraining_families
        zoo["families"] = pretraining_families()
    return StudyPreset(name, str(doc["description"]), study)


def study_presets() -> dict[str, StudyPreset]:
    """Every study preset, smallest first."""
    return {n: study_preset(n) for n in presets.names()}
