"""The +ID objectives by name, torch-free: what ``--objective``, a study's ``zoo.objective(s)`` and ``wmprobe zoo
ls`` read (``zoo.objectives`` implements them; docs/zoo.md "+ID")."""
from __future__ import annotations

DEFAULT_OBJECTIVE = "l1"
#: name -> description, in the order listings show them (the default first)
OBJECTIVES: dict[str, str] = {
    "l1": "inverse dynamics (z_t, z_t+j) -> k-step target, every pair of the clip, L1 (default)",
    "l2": "inverse dynamics (z_t, z_t+j) -> k-step target, every pair of the clip, L2",
    "single": "single-frame action regression z_t -> a_t, L1",
    "forward": "forward dynamics (z_t, a_t) -> z_t+1, MSE on a batch-standardised stop-gradient target",
    "contrastive": "temporal contrastive InfoNCE between z_t and z_t+1 (no action labels)",
}
