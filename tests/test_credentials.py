"""A MongoDB password never lands in lock files, child command lines, logs, hints or pickles (issue 27)."""
import argparse
import pickle
import stat
import sys

from sri.checkpoint import RunDirLock
from sri.credentials import has_credentials, read_secret, redact, write_secret
from sri.sweep import worker
from sri.sweep.cli import status_command
from sri.sweep.plan import plan_sweep
from sri.sweep.slurm import SweepJob
from sri.tracking.store import resolve_store

URL = "mongodb://alice:S3cretPW@db.example:27017/sri?authSource=admin"


def test_redact_and_has_credentials():
    assert "S3cretPW" not in redact(f"error at {URL}: refused") and "alice" not in redact(URL)
    assert redact("mongodb://h:1/db") == "mongodb://h:1/db"
    assert has_credentials(URL) and not has_credentials("mongodb://h:1/db")
    assert not has_credentials("h:1:db") and not has_credentials(None)


def test_lock_file_holds_no_password_and_is_private(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["experiments/table3_ablation.py", "-m", URL, "with", "smoke"])
    lock = RunDirLock(tmp_path / "run").acquire()
    try:
        text = lock.path.read_text()
        assert "S3cretPW" not in text and "table3_ablation.py" in text
        assert stat.S_IMODE(lock.path.stat().st_mode) == 0o600
    finally:
        lock.release()


def test_lock_holder_message_redacts_an_old_lock_file(tmp_path):
    (tmp_path / ".lock").write_text(f"pid 1 on h, since 2026-12-01: python x.py -m {URL}\n")
    assert "S3cretPW" not in RunDirLock(tmp_path).holder()


def test_sweep_child_gets_the_url_in_its_environment_not_its_argv():
    spec = resolve_store(URL)
    planned = plan_sweep(3, rows=["d"], seeds=[0], preset="smoke")[0]
    cmd = worker.run_command(planned, "s1", spec)
    assert not any("S3cretPW" in a for a in cmd) and "-m" not in cmd
    env = worker.run_env(spec, None)
    assert env["SRI_MONGO_URL"] == spec.db_url and env["SRI_MONGO_REQUIRED"] == "1"
    file_env = worker.run_env(resolve_store("/tmp/some-runs"), None)
    assert "SRI_MONGO_URL" not in file_env and "SRI_MONGO_REQUIRED" not in file_env


def test_sweep_log_header_is_redacted(tmp_path, monkeypatch):
    from sri.sweep.claims import new_claim, open_claims

    store = tmp_path / "runs"
    p = plan_sweep(3, rows=["d"], seeds=[0], preset="smoke")[0]
    rec = new_claim(p.key, sweep="s", name=p.name, launcher="local")
    assert open_claims(str(store)).create(rec)
    monkeypatch.setattr(worker, "run_command",
                        lambda planned, sweep, st, launcher=None: [sys.executable, "-c", "pass", URL])
    log = tmp_path / "log.txt"
    assert worker.execute(p, "s", str(store), rec["token"], log_path=log) == "completed"
    assert "S3cretPW" not in log.read_text()


def test_slurm_status_hint_leaves_the_password_out():
    args = argparse.Namespace(table=3, preset="smoke", seeds=[0], rows=None, datasets=None, store=URL,
                              sweep="s1", runs_dir=None)
    hint = status_command(args, [])
    assert "S3cretPW" not in hint and "password left out" in hint


def test_slurm_job_pickle_holds_no_password(tmp_path):
    secret = write_secret(tmp_path / "jobs" / "store_url.secret", URL)
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and read_secret(secret) == URL
    planned = plan_sweep(3, rows=["d"], seeds=[0], preset="smoke")[0]
    job = SweepJob(planned, "s1", redact(URL), "tok", None, 1, 1, str(tmp_path / "log"), store_file=str(secret))
    assert b"S3cretPW" not in pickle.dumps(job)
    assert job.store_url() == URL
