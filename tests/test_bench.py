"""The bench scripts' machinery (no timing is asserted): the roofline script runs in its quick mode and prints
its figures as JSON, and the FLOP arithmetic the probe bench divides by is the work the training step does."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))


def test_roofline_quick_prints_its_limits_as_json():
    out = subprocess.run([sys.executable, str(BENCH / "roofline.py"), "--quick"], capture_output=True, text=True,
                         timeout=600, check=True).stdout.strip().splitlines()
    r = json.loads(out[-1])
    for key in ("gemm_gflops", "gemm_gflops_1thread", "gemm64_gflops", "copy_gbs", "read_gbs", "copy_gbs_1thread",
                "read_gbs_1thread", "randn_per_s", "rand_per_s", "poisson_per_s", "cpu", "cores"):
        assert r[key] and (isinstance(r[key], str) or r[key] > 0), key


def test_probe_bench_flop_count_is_the_work_of_one_training_step():
    from torch.utils.flop_counter import FlopCounterMode

    from probes import mlp_costs
    from wmprobe.probes.mlp import MLPProbe, grid, train_mlp_grid
    f_in, a_dim, n, bs = 24, 5, 300, 64
    probe = MLPProbe(seeds=(0, 1), lrs=(1e-3, 3e-4), weight_decays=(1e-2,))
    lrs, wds = grid(probe.lrs, probe.wds)
    params = probe._init(f_in, a_dim, len(lrs))
    x, y = torch.randn(n, f_in), torch.randn(n, a_dim)
    with FlopCounterMode(display=False) as fc:
        train_mlp_grid(params, x, y, probe.seeds, lrs, wds, steps=1, batch_size=bs)
    flops, nbytes = mlp_costs(f_in, heads=4, batch=bs, a=a_dim)
    assert fc.get_total_flops() == flops
    n_params = sum(p.numel() for p in params.values())
    assert nbytes == 32 * n_params
