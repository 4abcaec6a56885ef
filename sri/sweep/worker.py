"""Train one claimed run: the table script as a child process (under torchrun for several GPUs).

The child is a normal Sacred run (`python experiments/<table>.py with ... sweep=<id>`) logging to
the sweep's store. It checkpoints on SIGTERM/SIGINT and resumes from its run folder when started
again, so stopping (`request_stop`) and starting the same run later continues exactly.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, Callable

from sri.credentials import redact
from sri.names import check_name
from sri.sweep.claims import open_claims, sweep_folder
from sri.sweep.plan import PlannedRun, table_script
from sri.tracking.observers import MONGO_ENV, MONGO_REQUIRED_ENV
from sri.tracking.store import StoreSpec, resolve_store

STOP_WAIT_S = 600  # how long a stop request waits for the child's checkpoint
_children: dict[int, subprocess.Popen] = {}  # child pid -> process, for request_stop
stop_requested = threading.Event()  # set once a stop was asked for: no new runs start


def torchrun_prefix(gpus_per_node: int, nodes: int = 1, node_rank: int = 0,
                    master_addr: str = "127.0.0.1", master_port: int = 29500) -> list[str]:
    """`python -m torch.distributed.run ...` for a job with several GPUs or nodes, else []."""
    if gpus_per_node <= 1 and nodes <= 1:
        return []
    return [sys.executable, "-m", "torch.distributed.run", f"--nnodes={nodes}",
            f"--nproc_per_node={max(gpus_per_node, 1)}", f"--node_rank={node_rank}",
            f"--master_addr={master_addr}", f"--master_port={master_port}"]


def run_command(planned: PlannedRun, sweep: str | None, store: StoreSpec,
                launcher: list[str] | None = None) -> list[str]:
    """The command line of one run (without torchrun: `python <script> with ...`). A MongoDB store
    goes to the child in its environment (`run_env`), never on the command line, which `ps` shows."""
    cmd = list(launcher) if launcher else [sys.executable]
    cmd.append(str(table_script(planned.table)))
    return cmd + planned.with_args(sweep)


def run_env(store: StoreSpec, runs_dir: str | os.PathLike | None) -> dict[str, str]:
    """The child's environment: the file store (also the checkpoint root) via $SRI_RUNS_DIR, a MongoDB
    store via $SRI_MONGO_URL (required there: no silent fall-back to files)."""
    env = dict(os.environ)
    env.pop(MONGO_ENV, None)
    env.pop(MONGO_REQUIRED_ENV, None)
    if store.kind == "mongo":
        env[MONGO_ENV] = store.db_url
        env[MONGO_REQUIRED_ENV] = "1"
    root = store.path if store.kind == "file" else (runs_dir or env.get("SRI_RUNS_DIR") or "runs")
    env["SRI_RUNS_DIR"] = str(Path(root).resolve())
    env["PYTHONUNBUFFERED"] = "1"
    return env


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _ignore_usr2() -> None:  # runs in the child before exec; an ignored signal stays ignored
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


def _child_setup() -> None:
    """In the child before exec: ignore USR2 and, on Linux, get SIGTERM when the sweep process dies
    (even by `kill -9`), so that an orphaned run checkpoints and stops instead of training unseen."""
    _ignore_usr2()
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
        except (OSError, AttributeError):  # pragma: no cover - no prctl in this libc
            pass


def forward_stop(*_: Any) -> None:
    """Ask every child of this process to checkpoint and stop (SIGTERM); do not wait. Usable as
    a signal handler."""
    stop_requested.set()
    for proc in list(_children.values()):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)


def request_stop(timeout: float = STOP_WAIT_S) -> None:
    """Ask every child of this process to checkpoint and stop (SIGTERM), and wait for them."""
    forward_stop()
    deadline = time.monotonic() + timeout
    while any(p.poll() is None for p in list(_children.values())) and time.monotonic() < deadline:
        time.sleep(0.2)


def latest_status(store: StoreSpec, key: str) -> str | None:
    """Status of the newest run of `key` in the store (None when there is none)."""
    from sri.tracking.frame import runs_frame

    try:
        frame = runs_frame(store)
    except FileNotFoundError:
        return None
    mine = frame[frame["config_key"] == key]
    return None if mine.empty else str(mine["status"].iloc[-1])


def run_child(cmd: list[str], env: dict[str, str], log: IO[str] | None,
              on_start: Callable[[int], Any] | None = None) -> int:
    """Start the child (USR2 ignored: that signal is for the job's own process; SIGTERM when this
    process dies) and wait; `on_start(pid)` is called once it runs."""
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT if log else None,
                            preexec_fn=_child_setup)
    _children[proc.pid] = proc
    if on_start is not None:
        on_start(proc.pid)
    try:
        while proc.poll() is None:  # polling, so that a signal handler can stop it meanwhile
            time.sleep(0.2)
        return int(proc.returncode)
    finally:
        _children.pop(proc.pid, None)


def execute(planned: PlannedRun, sweep: str, store: str | StoreSpec, token: str, *,
            runs_dir: str | None = None, launcher: list[str] | None = None,
            log_path: str | os.PathLike | None = None, job_id: str | None = None) -> str:
    """Train `planned` if `token` holds its claim; returns completed / failed / interrupted /
    skipped (the claim is someone else's). The claim follows: running, then the outcome."""
    spec = resolve_store(store)
    claims = open_claims(spec)
    claim = claims.get(planned.key)
    if claim is None or claim.get("token") != token:
        holder = "nobody" if claim is None else f"{claim.get('host')} pid {claim.get('pid')}"
        print(f"[sweep] {planned.name}: claimed by {holder}, not by this worker: not training",
              file=sys.stderr, flush=True)
        return "skipped"
    claims.update(planned.key, token, state="running", host=socket.gethostname(), pid=os.getpid(),
                  job_id=job_id or claim.get("job_id"), attempts=int(claim.get("attempts", 0)) + 1)
    cmd = run_command(planned, sweep, spec, launcher)
    log = None
    if log_path is not None:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        log = open(log_path, "a")
        log.write(f"$ {redact(' '.join(cmd))}\n")
        log.flush()
    outcome = "failed"
    try:
        # the child's pid too: a sweep process killed with -9 leaves its claim to a child still running
        rc = run_child(cmd, run_env(spec, runs_dir), log,
                       on_start=lambda pid: claims.update(planned.key, token, child_pid=pid))
        if rc == 0:
            outcome = "completed"
        elif stop_requested.is_set() or latest_status(spec, planned.key) == "INTERRUPTED":
            outcome = "interrupted"
        return outcome
    except BaseException:  # a stop request (the job's signal handler exits from here)
        outcome = "interrupted" if stop_requested.is_set() else "failed"
        raise
    finally:
        if log is not None:
            log.close()
        claims.update(planned.key, token, state=outcome)


def log_file(store: str | StoreSpec, sweep: str, planned: PlannedRun,
             runs_dir: str | None = None) -> Path:
    """`<sweep folder>/logs/<sweep>/<row>_<dataset>_seed<seed>.log`."""
    check_name(sweep, "sweep id")
    return (sweep_folder(store, runs_dir) / "logs" / sweep /
            f"{planned.row}_{planned.dataset}_seed{planned.seed}.log")


def describe(planned: PlannedRun) -> dict[str, Any]:
    """The planned run's labels, for tables of plans."""
    return {"row": planned.row, "dataset": planned.dataset, "seed": planned.seed,
            "preset": planned.preset, "key": planned.key}
