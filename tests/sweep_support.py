"""Shared by the local and SLURM sweep tests: run `sri sweep`, check a store, wait for files."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLE3_SMOKE = ["3", "--preset", "smoke", "--seeds", "0,1"]
# one long-enough run to stop in the middle: 10-step checkpoints
LONG = ["3", "--preset", "smoke", "--rows", "d", "--seeds", "7", "with", "steps=120", "checkpoint_every=10"]


def sweep_env(**extra: str) -> dict[str, str]:
    """Single-threaded, this checkout first on the path (also for SLURM jobs: sbatch exports it)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), **extra)
    env.pop("SRI_MONGO_URL", None)
    return env


def sri_sweep(args: list[str], store: Path, env: dict[str, str], cwd: Path, timeout: float = 900,
              background: bool = False):
    """`sri sweep ARGS --store STORE` (options before any trailing `with ...`)."""
    if "with" in args:
        i = args.index("with")
        args = [*args[:i], "--store", str(store), *args[i:]]
    else:
        args = [*args, "--store", str(store)]
    cmd = [sys.executable, "-m", "sri.cli", "sweep", *args]
    if background:
        return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def wait_for(predicate, timeout: float, what: str, poll: float = 0.5):
    """Poll until `predicate()` is truthy; its value, or AssertionError naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def checkpoint_steps(store: Path, seed: int = 7) -> list[int]:
    """Steps of the checkpoints of the long run (table 3, row d, smoke)."""
    folder = store / "checkpoints" / "table3" / "d" / "blocks" / "smoke" / f"seed{seed}"
    return sorted(int(p.stem.split("_")[1]) for p in folder.glob("ckpt_*.pt"))


def check_table3_sweep(store: Path, cwd: Path, env: dict[str, str]) -> str:
    """8 COMPLETED runs, one per row x seed, all with the sweep id in config and info; `make tables`
    shows them (n=2 per row). Returns the sweep id."""
    from sri.tracking import load_runs, runs_frame

    frame = runs_frame(store)
    done = frame[frame["status"] == "COMPLETED"]
    assert len(done) == 8, frame[["id", "status", "row", "seed"]]
    assert sorted(zip(done["row"], done["seed"])) == [(r, s) for r in "abcd" for s in (0, 1)]
    sweeps = set(done["sweep"])
    assert len(sweeps) == 1 and next(iter(sweeps)).startswith("table3-smoke-")
    sweep = next(iter(sweeps))
    for run in load_runs(store):
        assert run.config["sweep"] == sweep and run.info["sweep"] == sweep
    res = subprocess.run(["make", "-f", str(ROOT / "Makefile"), "tables", f"STORE={store}", "PRESET=smoke",
                          f"SWEEP={sweep}", f"PYTHON={sys.executable}"], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    md = (cwd / "tables" / "table3.md").read_text()
    ours = md.split("Paper (Table 3)")[0]
    for row in "abcd":
        line = next(ln for ln in ours.splitlines() if f"(`{row}`)" in ln)
        assert "(n=2)" in line, line
    return sweep


def check_resumed(store: Path, stopped_at: int) -> None:
    """The long run: an INTERRUPTED run that stopped at `stopped_at`, then a COMPLETED one that
    resumed from that checkpoint and logged only later steps."""
    from sri.tracking import load_runs

    runs = [r for r in load_runs(store) if r.config.get("seed") == 7]
    status = [r.status for r in runs]
    assert status == ["INTERRUPTED", "COMPLETED"], status
    first, second = runs
    assert first.checkpoint is None or first.checkpoint.endswith(f"ckpt_{stopped_at:08d}.pt")
    assert second.info["resumed_from"].endswith(f"ckpt_{stopped_at:08d}.pt")
    steps = [s for s, _ in second.metrics["loss"]]
    assert min(steps) == stopped_at + 1 and max(steps) == 120
    assert max(s for s, _ in first.metrics.get("loss", [(0, 0)])) <= stopped_at
