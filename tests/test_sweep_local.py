"""`sri sweep --launcher local` end to end: Table 3 smoke (4 rows x 2 seeds), a second sweep that
launches nothing, and a run stopped by SIGTERM that the next sweep resumes exactly."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from sweep_support import (  # noqa: E402
    LONG,
    ROOT,
    TABLE3_SMOKE,
    check_resumed,
    check_table3_sweep,
    checkpoint_steps,
    sri_sweep,
    sweep_env,
    wait_for,
)

pytestmark = pytest.mark.slow


def test_local_sweep_of_table3_then_nothing_to_do(tmp_path):
    store, env = tmp_path / "runs", sweep_env()
    res = sri_sweep([*TABLE3_SMOKE, "--jobs", "2"], store, env, tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "8 to launch, 0 skipped" in res.stdout and "8/8 completed" in res.stdout
    check_table3_sweep(store, tmp_path, env)
    # `make reproduce` with the same plan: nothing to launch, the tables again
    (tmp_path / "tables" / "table3.md").unlink()
    again = subprocess.run(["make", "-f", str(ROOT / "Makefile"), "reproduce", "TABLE=3", f"STORE={store}",
                            "PRESET=smoke", "SWEEP_ARGS=--seeds 0,1", f"PYTHON={sys.executable}"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "0 to launch, 8 skipped" in again.stdout, again.stdout + again.stderr
    assert again.stdout.count("completed in the store") == 8
    assert "(n=2)" in (tmp_path / "tables" / "table3.md").read_text()
    from sri.tracking import load_runs

    assert len(load_runs(store)) == 8  # nothing trained twice


def test_local_sweep_stopped_by_sigterm_resumes_exactly(tmp_path):
    store, env = tmp_path / "runs", sweep_env()
    proc = sri_sweep(LONG, store, env, tmp_path, background=True)
    try:
        wait_for(lambda: [s for s in checkpoint_steps(store) if s >= 20], 300, "a checkpoint at step 20")
        os.killpg(proc.pid, signal.SIGTERM)  # as a scheduler does: every process of the job
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0
    stopped_at = checkpoint_steps(store)[-1]
    assert 20 <= stopped_at < 120, out
    res = sri_sweep(LONG, store, env, tmp_path)
    assert res.returncode == 0 and "1 to launch" in res.stdout, res.stdout + res.stderr
    check_resumed(store, stopped_at)
    # exactly: the same losses as one uninterrupted run of the same config
    other = tmp_path / "uninterrupted"
    assert sri_sweep(LONG, other, env, tmp_path).returncode == 0
    from sri.tracking import load_runs

    resumed = dict(load_runs(store)[-1].metrics["loss"])
    straight = dict(load_runs(other)[-1].metrics["loss"])
    assert all(resumed[s] == straight[s] for s in resumed), "resumed run differs"


def test_local_sweep_to_mongodb(tmp_path):
    """The same skip rule and claims with a MongoDB store (claims in its sweep_claims collection)."""
    from sri.tracking.mongo_server import LocalMongoServer, find_server_binary

    if find_server_binary() is None:
        pytest.skip("no MongoDB-wire server (pip install secantusdb)")
    srv = LocalMongoServer(tmp_path / "mongo").start()
    try:
        url = f"{srv.url.rstrip('/')}/sweeps"
        env = sweep_env(SRI_RUNS_DIR=str(tmp_path / "ck"))
        args = ["3", "--preset", "smoke", "--rows", "a,d", "--seeds", "0", "--jobs", "2"]
        res = sri_sweep(args, url, env, tmp_path)
        assert res.returncode == 0 and "2/2 completed" in res.stdout, res.stdout + res.stderr
        from sri.sweep.claims import open_claims
        from sri.tracking import runs_frame

        frame = runs_frame(url)
        assert sorted(frame["row"]) == ["a", "d"] and set(frame["status"]) == {"COMPLETED"}
        assert frame["sweep"].notna().all()
        assert {c["state"] for c in open_claims(url).all()} == {"completed"}
        assert (tmp_path / "ck" / "checkpoints" / "table3" / "a").is_dir()  # --runs-dir default
        again = sri_sweep(args, url, env, tmp_path)
        assert "0 to launch, 2 skipped" in again.stdout, again.stdout + again.stderr
    finally:
        srv.stop()


def test_worker_runs_a_claimed_run_under_torchrun(tmp_path, monkeypatch):
    """What a multi-GPU SLURM job runs (torchrun + the table script), here with 2 CPU processes."""
    from sri.sweep.claims import new_claim, open_claims
    from sri.sweep.plan import plan_sweep
    from sri.sweep.worker import execute, torchrun_prefix
    from sri.tracking import load_runs

    for k, v in sweep_env().items():
        monkeypatch.setenv(k, v)
    store = tmp_path / "runs"
    p = plan_sweep(3, rows=["d"], seeds=[0], preset="smoke", updates={"steps": 2})[0]
    rec = new_claim(p.key, sweep="ddp", name=p.name, launcher="slurm")
    assert open_claims(str(store)).create(rec)
    launcher = torchrun_prefix(2, 1, master_port=29731)
    assert execute(p, "ddp", str(store), rec["token"], launcher=launcher,
                   log_path=tmp_path / "log") == "completed", (tmp_path / "log").read_text()[-3000:]
    (run,) = load_runs(store)
    assert run.status == "COMPLETED" and run.info["world_size"] == 2 and run.info["sweep"] == "ddp"
