"""_malloc.keep_freed_memory: after it, freeing and re-allocating step-sized tensors no longer faults in new
pages (glibc keeps the freed blocks); WMPROBE_MALLOC=system leaves the allocator alone. Each case runs in a
fresh interpreter, since the setting is process-wide and cannot be undone."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")

# steps that each allocate, touch and free 40 MiB (one activation of a zoo step's size); page faults counted
# over the last 20 of 40 (a kept heap still faults in its first few steps while it settles)
SCRIPT = """
import json, resource, sys
import torch
from wmprobe._malloc import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
for _ in range(20):
    a = torch.ones(10 * 2**20)
    del a
r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    a = torch.ones(10 * 2**20)
    del a
print(json.dumps({"applied": applied, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0}))
"""


def _run(mode: str, **env: str) -> dict:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True,
                         env={**os.environ, **env}, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_keep_freed_memory_stops_the_page_faults_of_reallocating_large_tensors():
    plain, kept = _run("plain"), _run("keep")
    if not kept["applied"]:
        pytest.skip("not glibc: mallopt unavailable")
    # 20 x 40 MiB = 200k pages faulted in without it; a kept heap re-uses its pages
    assert plain["faults"] > 100_000, plain
    assert kept["faults"] < plain["faults"] / 20, (plain, kept)


def test_wmprobe_malloc_system_leaves_the_allocator_alone():
    assert _run("keep", WMPROBE_MALLOC="system")["applied"] is False
