"""`sri sweep` pieces without training: plan, config keys vs Sacred, claims, liveness, SLURM options,
the worker's claim protocol and stop request (with stand-in children), status, CLI errors."""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_report_util import write_run

import sri.configs as C
from sri.sweep import worker
from sri.sweep.claims import FileClaims, MongoClaims, new_claim, open_claims
from sri.sweep.cli import main as sweep_cli
from sri.sweep.launch import claim_runs, holder_alive
from sri.sweep.plan import parse_updates, plan_sweep, run_config, sweep_id
from sri.sweep.slurm import SlurmOptions, make_executor, time_minutes
from sri.sweep.status import sweep_status
from sri.tracking import config_fingerprint
from sri.tracking.store import resolve_store

ROOT = Path(__file__).resolve().parents[1]


# -- plan -----------------------------------------------------------------------------------------
def test_plan_table3_smoke_is_rows_times_seeds():
    planned = plan_sweep(3, seeds=[0, 1], preset="smoke")
    assert [(p.row, p.dataset, p.seed) for p in planned] == [
        (r, "blocks", s) for r in ("a", "b", "c", "d") for s in (0, 1)]
    assert len({p.key for p in planned}) == 8
    assert planned[0].config == C.experiment_config(3, "a", "blocks", "smoke", 0)
    assert sweep_id(planned) == sweep_id(plan_sweep(3, seeds=[0, 1], preset="smoke"))
    assert sweep_id(planned) != sweep_id(planned[:4])


def test_plan_defaults_skip_baselines_and_use_paper_datasets():
    planned = plan_sweep(2)
    implemented = [r for r, spec in C.TABLES[2]["rows"].items() if spec["model"] in C.IMPLEMENTED_MODELS]
    assert {"sri_mog", "genv2_mog"} <= set(implemented)
    assert [p.row for p in planned[::9]] == implemented  # 3 datasets x 3 seeds per row
    assert {p.dataset for p in planned} == set(C.TABLES[2]["datasets"])
    assert {p.seed for p in planned} == {0, 1, 2} and len(planned) == len(implemented) * 3 * 3


def test_plan_errors_name_the_fix(monkeypatch):
    monkeypatch.setattr(C, "IMPLEMENTED_MODELS", ("sri", "genv2"))  # whatever baselines exist today
    with pytest.raises(C.ConfigError, match="not implemented"):
        plan_sweep(2, rows=["emorl"])
    assert {p.row for p in plan_sweep(2)} == {"genv2_g", "sri_g", "genv2_mog", "sri_mog"}
    with pytest.raises(C.ConfigError, match="unknown row"):
        plan_sweep(3, rows=["z"])
    with pytest.raises(C.ConfigError, match="unknown dataset"):
        plan_sweep(3, datasets=["mnist"])
    with pytest.raises(C.ConfigError, match="use --seeds"):
        parse_updates(["seed=3"])
    with pytest.raises(C.ConfigError, match="did you mean 'steps'"):
        parse_updates(["stepz=3"])
    with pytest.raises(C.ConfigError, match="KEY=VALUE"):
        parse_updates(["steps"])


def test_updates_are_parsed_like_sacred_and_change_the_key():
    ups = parse_updates(["steps=8", "amp='bf16'", "device=cpu", "model_options.pixel_std=0.2"])
    assert ups == {"steps": 8, "amp": "bf16", "device": "cpu", "model_options.pixel_std": 0.2}
    cfg = run_config(3, "d", "blocks", "smoke", 0, ups)
    assert cfg["steps"] == 8 and cfg["model_options"]["pixel_std"] == 0.2
    base = plan_sweep(3, rows=["d"], seeds=[0], preset="smoke")[0]
    changed = plan_sweep(3, rows=["d"], seeds=[0], preset="smoke", updates={"steps": 8})[0]
    assert base.key != changed.key
    assert changed.with_args("s")[-2:] == ["steps=8", "sweep='s'"]


def test_planned_key_equals_the_key_of_the_config_sacred_records(tmp_path):
    """The skip rule compares the plan with stored configs: they must hash alike."""
    updates = {"steps": 7, "image_size": 32, "model_options.pixel_std": 0.2}
    p = plan_sweep(3, rows=["b"], seeds=[4], preset="smoke", updates=updates)[0]
    res = subprocess.run([sys.executable, str(ROOT / "experiments" / "table3_ablation.py"), "save_config",
                          *p.with_args("my-sweep")], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    stored = json.loads((tmp_path / "config.json").read_text())
    assert stored["sweep"] == "my-sweep"
    assert config_fingerprint(stored) == p.key
    assert stored["model_options"]["image_size"] == 32


# -- claims ---------------------------------------------------------------------------------------
def _race(folder: str, i: int, barrier, results) -> None:
    claims = FileClaims(folder)
    barrier.wait()
    results[i] = claims.create(new_claim("k", sweep="s", name="n", launcher="local", who=i))


def test_file_claim_is_won_by_exactly_one_of_many_processes(tmp_path):
    ctx = mp.get_context("fork")
    n = 8
    barrier, results = ctx.Barrier(n), ctx.Manager().dict()
    procs = [ctx.Process(target=_race, args=(str(tmp_path), i, barrier, results)) for i in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert sorted(results.values()) == [False] * (n - 1) + [True]
    winner = [i for i, won in results.items() if won][0]
    assert FileClaims(tmp_path).get("k")["who"] == winner
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def _claims_protocol(claims) -> None:
    a = new_claim("k1", sweep="s", name="n", launcher="local")
    assert claims.create(a) and not claims.create(new_claim("k1", sweep="t", name="n", launcher="local"))
    assert claims.get("k1")["sweep"] == "s" and claims.get("nope") is None
    assert claims.update("k1", a["token"], state="running")
    assert not claims.update("k1", "wrong-token", state="failed")
    assert claims.get("k1")["state"] == "running"
    b, c = (new_claim("k1", sweep=x, name="n", launcher="local") for x in ("b", "c"))
    assert claims.take_over("k1", a["token"], b)
    assert not claims.take_over("k1", a["token"], c)  # a's claim is gone: b won
    assert claims.get("k1")["token"] == b["token"]
    assert not claims.update("k1", a["token"], state="completed")  # the old holder lost it
    assert [x["key"] for x in claims.all()] == ["k1"]


def test_file_claims_protocol(tmp_path):
    _claims_protocol(FileClaims(tmp_path / "claims"))


def test_mongo_claims_protocol(tmp_path):
    from sri.tracking.mongo_server import LocalMongoServer, find_server_binary

    if find_server_binary() is None:
        pytest.skip("no MongoDB-wire server (pip install secantusdb)")
    srv = LocalMongoServer(tmp_path / "mongo").start()
    try:
        claims = open_claims(f"{srv.url.rstrip('/')}/sweeps")
        assert isinstance(claims, MongoClaims)
        _claims_protocol(claims)
    finally:
        srv.stop()


def test_holder_alive_rules():
    import socket

    me = {"state": "running", "launcher": "local", "host": socket.gethostname(), "pid": os.getpid()}
    assert holder_alive(me, {})
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert not holder_alive({**me, "pid": dead.pid}, {})
    assert not holder_alive({**me, "state": "failed"}, {})
    assert holder_alive({**me, "host": "elsewhere", "pid": 1}, {})  # unknown: assume alive
    job = {"state": "queued", "launcher": "slurm", "job_id": "12"}
    assert holder_alive(job, {"12": "PENDING"}) and not holder_alive(job, {"13": "RUNNING"})
    assert holder_alive(job, None)  # no squeue here: unknown


# -- SLURM options --------------------------------------------------------------------------------
def test_time_minutes_reads_slurm_formats():
    assert [time_minutes(t) for t in ("90", "1:30:00", "2-00:00:00", "2-12", "30:00", "0:10:30")] == \
        [90, 90, 2880, 3600, 30, 11]
    with pytest.raises(C.ConfigError, match="SLURM time"):
        time_minutes("tomorrow")


def _stand_in_srun(tmp_path, monkeypatch):
    """submitit's SlurmExecutor refuses to exist without `srun` on PATH; the sbatch text it writes
    does not need SLURM, so a stand-in lets this run on a machine without it (issue 26)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")


def test_executor_asks_slurm_for_the_options(tmp_path, monkeypatch):
    _stand_in_srun(tmp_path, monkeypatch)
    opts = SlurmOptions(partition="gpu", gpus_per_job=4, nodes=2, time="1:30:00", account="proj",
                        mem="32G", cpus_per_job=8)
    text = make_executor(tmp_path / "%j", opts, "sri-x")._make_submission_file_text("python -c 1", "uid")
    for flag in ("--partition=gpu", "--gpus-per-node=2", "--nodes=2", "--time=90", "--account=proj",
                 "--mem=32G", "--cpus-per-task=8", "--requeue", "--signal=USR2@120",
                 "--ntasks-per-node=1", "--job-name=sri-x"):
        assert f"#SBATCH {flag}" in text, flag
    with pytest.raises(C.ConfigError, match="evenly"):
        SlurmOptions(gpus_per_job=3, nodes=2).gpus_per_node


def test_torchrun_only_for_several_gpus():
    assert worker.torchrun_prefix(1, 1) == []
    cmd = worker.torchrun_prefix(4, 2, node_rank=1, master_addr="n1", master_port=2222)
    assert cmd[1:3] == ["-m", "torch.distributed.run"]
    assert {"--nnodes=2", "--nproc_per_node=4", "--node_rank=1", "--master_addr=n1",
            "--master_port=2222"} <= set(cmd)


# -- worker protocol with stand-in children --------------------------------------------------------
@pytest.fixture
def fake_child(monkeypatch):
    """Replace the table script by a tiny Python program given as source."""
    def use(source: str) -> None:
        monkeypatch.setattr(worker, "run_command",
                            lambda planned, sweep, store, launcher=None: [sys.executable, "-c", source])
    worker.stop_requested.clear()
    yield use
    worker.stop_requested.clear()


def _claimed(store: Path):
    p = plan_sweep(3, rows=["d"], seeds=[0], preset="smoke")[0]
    rec = new_claim(p.key, sweep="s", name=p.name, launcher="local")
    assert open_claims(str(store)).create(rec)
    return p, rec["token"]


def test_worker_trains_only_with_the_claim_and_records_the_outcome(tmp_path, fake_child):
    store = tmp_path / "runs"
    p, token = _claimed(store)
    claims = open_claims(str(store))
    fake_child("import sys; sys.exit(3)")
    assert worker.execute(p, "s", str(store), "not-mine") == "skipped"
    assert claims.get(p.key)["state"] == "queued"
    assert worker.execute(p, "s", str(store), token) == "failed"
    assert claims.get(p.key)["state"] == "failed" and claims.get(p.key)["attempts"] == 1
    fake_child("import os; print(os.environ['SRI_RUNS_DIR'])")
    log = tmp_path / "log.txt"
    assert worker.execute(p, "s", str(store), token, log_path=log) == "completed"
    assert claims.get(p.key)["state"] == "completed" and claims.get(p.key)["attempts"] == 2
    assert str(store.resolve()) in log.read_text()  # the file store is the child's runs dir


def test_request_stop_sends_sigterm_and_marks_interrupted(tmp_path, fake_child):
    store = tmp_path / "runs"
    p, token = _claimed(store)
    flag = tmp_path / "stopped"
    fake_child("import signal, sys, time\n"
               f"def h(*a):\n    open({str(flag)!r}, 'w').write('x'); sys.exit(1)\n"
               "signal.signal(signal.SIGTERM, h)\n"
               "time.sleep(60)")
    import threading

    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", worker.execute(p, "s", str(store), token)))
    t.start()
    deadline = time.monotonic() + 30
    while not worker._children and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the child installs its handler
    worker.request_stop(timeout=30)
    t.join(30)
    assert out["r"] == "interrupted" and flag.exists()
    assert open_claims(str(store)).get(p.key)["state"] == "interrupted"


def test_child_ignores_usr2(tmp_path):
    """USR2 is submitit's signal for the job process; the run itself must not die of it."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3)"],
                            preexec_fn=worker._ignore_usr2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGUSR2)
    assert proc.wait(10) == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux's prctl")
def test_a_run_gets_sigterm_when_its_sweep_process_is_killed_with_9(tmp_path):
    """`kill -9` of `sri sweep` used to leave its run training unseen; now the run is told to stop."""
    marker, pidfile = tmp_path / "got_sigterm", tmp_path / "child.pid"
    child = (f"import os, signal, time, pathlib; pathlib.Path({str(pidfile)!r}).write_text(str(os.getpid()));"
             f"signal.signal(signal.SIGTERM, lambda *a: (pathlib.Path({str(marker)!r}).write_text('x'), os._exit(0)));"
             f"time.sleep(60)")
    parent = (f"import sys; from sri.sweep import worker; "
              f"worker.run_child([sys.executable, '-c', {child!r}], dict(__import__('os').environ), None)")
    proc = subprocess.Popen([sys.executable, "-c", parent])
    deadline = time.monotonic() + 30
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # the child installs its handler
    proc.kill()
    proc.wait(10)
    deadline = time.monotonic() + 15
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the orphaned run never got SIGTERM"


def test_a_claim_whose_sweep_died_stays_held_while_its_run_still_runs():
    from sri.sweep.launch import holder_alive

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        claim = {**new_claim("k", sweep="x", name="n", launcher="local"), "pid": dead.pid, "state": "running"}
        assert not holder_alive(claim, None)
        assert holder_alive({**claim, "child_pid": alive.pid}, None)
        assert not holder_alive({**claim, "child_pid": dead.pid}, None)
    finally:
        alive.kill()
        alive.wait()


# -- skip rule, status and CLI ---------------------------------------------------------------------
def _stored(store: Path, run_id: int, planned, status: str, **kw) -> None:
    write_run(store, run_id, table=3, row=planned.row, dataset=planned.dataset, seed=planned.seed,
              metrics={"loss": [(0, 1.0), (9, 0.5)]}, status=status,
              config_extra={**planned.config, "sweep": "old"}, **kw)


def test_claim_runs_skips_completed_and_live_claims_and_retries_dead_ones(tmp_path, capsys):
    store = tmp_path / "runs"
    planned = plan_sweep(3, seeds=[0], preset="smoke")  # a, b, c, d
    _stored(store, 1, planned[0], "COMPLETED")
    _stored(store, 2, planned[1], "FAILED")
    claims = open_claims(str(store))
    claims.create({**new_claim(planned[2].key, sweep="x", name="n", launcher="local"), "state": "running"})
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    claims.create({**new_claim(planned[3].key, sweep="x", name="n", launcher="local"), "pid": dead.pid})
    spec = resolve_store(str(store))
    assert [p.row for p, t in claim_runs(planned, spec, "s", "local", dry_run=True)] == ["b", "d"]
    chosen = claim_runs(planned, spec, "s", "local")
    assert [p.row for p, _ in chosen] == ["b", "d"]
    assert claims.get(planned[3].key)["token"] == chosen[1][1]  # taken over from the dead holder
    assert claim_runs(planned, spec, "s2", "local") == []  # now held by this (live) process
    status = sweep_status(planned, spec).set_index("row")
    assert list(status["state"]) == ["completed", "queued", "running", "queued"]
    assert status.loc["a", "run_id"] == "1" and status.loc["a", "step"] == 9


def test_status_reports_failed_and_not_submitted(tmp_path):
    store = tmp_path / "runs"
    planned = plan_sweep(3, rows=["a", "b"], seeds=[0], preset="smoke")
    _stored(store, 1, planned[0], "FAILED")
    status = sweep_status(planned, resolve_store(str(store)))
    assert list(status["state"]) == ["failed", "not submitted"]


def test_cli_dry_run_and_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(C, "IMPLEMENTED_MODELS", ("sri", "genv2"))
    store = tmp_path / "runs"
    assert sweep_cli(["3", "--preset", "smoke", "--seeds", "0,1", "--store", str(store), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "8 planned runs" in out and out.count("  launch ") == 8 and "8 to launch" in out
    assert not store.exists()  # a dry run claims nothing
    assert sweep_cli(["2", "--rows", "emorl", "--store", str(store)]) == 2
    assert "not implemented" in capsys.readouterr().err
    assert sweep_cli(["3", "--store", str(store), "with", "seed=1"]) == 2
    assert "--seeds" in capsys.readouterr().err
    assert sweep_cli(["3", "--launcher", "slurm", "--time", "soon", "--store", str(store)]) == 2
    assert "SLURM time" in capsys.readouterr().err
    assert sweep_cli(["status", "3", "--preset", "smoke", "--seeds", "0", "--store", str(store)]) == 0
    assert "4 planned: 4 not submitted" in capsys.readouterr().out


def test_sri_command_lists_sweep():
    from sri.cli import main

    assert main(["--help"]) == 0


def test_status_interrupted_when_its_holder_is_gone(tmp_path):
    store = tmp_path / "runs"
    planned = plan_sweep(3, rows=["a"], seeds=[0], preset="smoke")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    open_claims(str(store)).create({**new_claim(planned[0].key, sweep="x", name="n", launcher="local"),
                                    "state": "interrupted", "pid": dead.pid})
    assert list(sweep_status(planned, resolve_store(str(store)))["state"]) == ["interrupted"]


def test_slurm_launcher_without_sbatch_says_so_and_releases_the_claims(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    store = tmp_path / "runs"
    args = ["3", "--preset", "smoke", "--seeds", "0", "--rows", "a,b", "--store", str(store)]
    assert sweep_cli([*args, "--launcher", "slurm"]) == 2
    assert "sbatch not found" in capsys.readouterr().err
    assert {c["state"] for c in open_claims(str(store)).all()} == {"failed"}
    assert sweep_cli([*args, "--dry-run"]) == 0  # released: the next sweep launches them
    assert "2 to launch" in capsys.readouterr().out
