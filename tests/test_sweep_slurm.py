"""`sri sweep --launcher slurm` against a real one-node SLURM on localhost (tests/slurm_cluster.py):
Table 3 smoke (4 rows x 2 seeds) completes and shows in `make tables`, a second sweep submits
nothing, and a running job requeued by SLURM (`scontrol requeue`) or sent submitit's time-limit
signal resumes from its checkpoint."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from slurm_cluster import SlurmCluster, missing_reason  # noqa: E402
from sweep_support import (  # noqa: E402
    LONG,
    TABLE3_SMOKE,
    check_resumed,
    check_table3_sweep,
    checkpoint_steps,
    sri_sweep,
    sweep_env,
    wait_for,
)

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(missing_reason() is not None, reason=missing_reason() or "")]


@pytest.fixture(scope="module")
def cluster():
    c = SlurmCluster().start()
    yield c
    c.stop()


def test_slurm_sweep_of_table3_then_nothing_to_submit(cluster, tmp_path):
    store, env = tmp_path / "runs", sweep_env(SLURM_CONF=cluster.env["SLURM_CONF"])
    res = sri_sweep([*TABLE3_SMOKE, "--launcher", "slurm", "--time", "10", "--wait"], store, env, tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert res.stdout.count("[sweep] submitted") == 8
    check_table3_sweep(store, tmp_path, env)
    status = subprocess.run([sys.executable, "-m", "sri.cli", "sweep", "status", *TABLE3_SMOKE,
                             "--store", str(store)], env=env, capture_output=True, text=True, timeout=300)
    assert "8 planned: 8 completed" in status.stdout, status.stdout + status.stderr
    before = cluster.jobs()
    again = sri_sweep([*TABLE3_SMOKE, "--launcher", "slurm", "--time", "10"], store, env, tmp_path)
    assert again.returncode == 0 and "0 to launch, 8 skipped" in again.stdout, again.stdout
    assert "submitted" not in again.stdout and cluster.jobs() == before


def _claim(store: Path) -> dict:
    (path,) = (store / "_sweeps" / "claims").glob("*.json")
    return json.loads(path.read_text())


def _stop_running_job(cluster, store: Path, env, tmp_path: Path, stop) -> None:
    """Submit the long run, `stop(job_id)` it after its step-20 checkpoint, and check that it is
    requeued (same job id) and resumes from where it stopped."""
    res = sri_sweep([*LONG[:-3], "--launcher", "slurm", "--time", "10", *LONG[-3:]], store, env, tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    job = _claim(store)["job_id"]
    wait_for(lambda: [s for s in checkpoint_steps(store) if s >= 20], 300, "a checkpoint at step 20")
    assert cluster.jobs().get(job) == "RUNNING"
    stop(job)
    wait_for(lambda: cluster.jobs().get(job) == "PENDING", 120, "the job back in the queue")
    cluster.scontrol("update", f"JobId={job}", "StartTime=now")  # skip SLURM's requeue delay
    wait_for(lambda: job not in cluster.jobs(), 600, "the requeued job to end", poll=2)
    claim = _claim(store)
    assert claim["state"] == "completed" and claim["attempts"] == 2 and claim["job_id"] == job
    from sri.tracking import load_runs

    first = load_runs(store)[0]
    assert first.status == "INTERRUPTED" and first.checkpoint is not None  # written on the signal
    check_resumed(store, int(Path(first.checkpoint).stem.split("_")[1]))


def test_scontrol_requeue_resumes_from_the_checkpoint(cluster, tmp_path):
    store, env = tmp_path / "runs", sweep_env(SLURM_CONF=cluster.env["SLURM_CONF"])
    _stop_running_job(cluster, store, env, tmp_path, lambda job: cluster.scontrol("requeue", job))


def test_time_limit_signal_checkpoints_and_requeues(cluster, tmp_path):
    """submitit's USR2 (sent before the time limit): SweepJob.checkpoint stops the run at a
    checkpoint and submitit requeues the job."""
    store, env = tmp_path / "runs", sweep_env(SLURM_CONF=cluster.env["SLURM_CONF"])

    def usr2(job: str) -> None:
        subprocess.run(["scancel", f"--signal={signal.SIGUSR2.name[3:]}", job], env=cluster.env,
                       check=True, timeout=60)

    _stop_running_job(cluster, store, env, tmp_path, usr2)
