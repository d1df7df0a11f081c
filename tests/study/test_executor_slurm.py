"""The submitit executor on SLURM: the study's partition / GPUs / time / memory reach the sbatch script, and a
preempted or timed-out job requeues the same (idempotent) batch.

No cluster here: a stand-in ``sbatch`` on PATH keeps the script it is given and answers with a job id, which is
all submitit needs to submit (``srun`` only has to exist). Nothing waits for the job.
"""
from __future__ import annotations

import os
import stat

import pytest

submitit = pytest.importorskip("submitit")

SBATCH = """#!/bin/sh
for a in "$@"; do last="$a"; done
cp "$last" "$WMPROBE_TEST_SBATCH_SCRIPT"
echo "Submitted batch job 4242"
"""


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("sbatch", SBATCH), ("srun", "#!/bin/sh\nexit 0\n")):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod((bin_dir / name).stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("WMPROBE_TEST_SBATCH_SCRIPT", str(tmp_path / "script.sh"))
    return tmp_path / "script.sh"


def test_slurm_parameters_from_the_study_reach_sbatch(fake_slurm, tmp_path):
    from wmprobe.study.config import load_config
    from wmprobe.study.executors import make_executor
    cfg = load_config({"preset": "tiny", "executor": {"kind": "submitit", "submitit": {
        "partition": "gpu", "gpus_per_node": 2, "timeout_min": 90, "mem_gb": 32, "account": "robots",
        "array_parallelism": 8}}})
    ex = make_executor(cfg.executor, tmp_path / "cache", "tiny")
    job = ex.executor.submit(print, "hello")
    assert job.job_id == "4242"
    script = fake_slurm.read_text()
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=2", "#SBATCH --time=90",
                 "#SBATCH --mem=32GB", "#SBATCH --account=robots", "#SBATCH --job-name=wmprobe"):
        assert line in script, (line, script)
    assert "#SBATCH --signal=USR2@" in script      # submitit's preemption / timeout signal -> checkpoint()


def test_a_preempted_batch_requeues_itself_unchanged(tmp_path):
    from wmprobe.study.executors import _CheckpointableBatch
    batch = _CheckpointableBatch(["task-a", "task-b"], str(tmp_path), max_retries=2, threads=1)
    again = batch.checkpoint()
    assert isinstance(again, submitit.helpers.DelayedSubmission)
    fn = again.function
    assert isinstance(fn, _CheckpointableBatch) and fn is not batch
    assert (fn.tasks, fn.cache_root, fn.max_retries, fn.threads) == (batch.tasks, batch.cache_root, 2, 1)
