"""`sri sweep`: skip what is done or held, claim the rest, and launch it locally or on SLURM."""
from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

from sri.credentials import has_credentials, redact, write_secret
from sri.sweep.claims import new_claim, open_claims, sweep_folder
from sri.sweep.plan import PlannedRun
from sri.sweep.worker import execute, log_file
from sri.tracking.store import StoreSpec


def completed_keys(store: StoreSpec) -> set[str]:
    """Config keys of the store's COMPLETED runs."""
    from sri.tracking.frame import runs_frame

    try:
        frame = runs_frame(store)
    except FileNotFoundError:  # a new file store
        return set()
    return set(frame.loc[frame["status"] == "COMPLETED", "config_key"].dropna())


def pid_alive(pid: Any) -> bool:
    """Whether a process with this id exists on this host."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError):
        return True
    return True


def holder_alive(claim: dict[str, Any], slurm: dict[str, str] | None) -> bool:
    """Whether the claim's holder may still run it: its SLURM job is queued or running, or its
    local process (or the run it started) exists. Unknown (another host, no squeue) counts as alive."""
    import socket

    if claim.get("state") in ("completed", "failed"):
        return False
    if claim.get("launcher") == "slurm" and claim.get("job_id"):
        return True if slurm is None else str(claim["job_id"]) in slurm
    if claim.get("host") == socket.gethostname():
        child = claim.get("child_pid")
        return pid_alive(claim.get("pid")) or (child is not None and pid_alive(child))
    return True


def claim_runs(planned: Sequence[PlannedRun], store: StoreSpec, sweep: str, launcher: str,
               *, dry_run: bool = False, out=None) -> list[tuple[PlannedRun, str | None]]:
    """The runs to launch, each with its claim token (None in a dry run): not COMPLETED in the
    store, and not held by a live worker. Prints one line per run skipped."""
    from sri.sweep.slurm import slurm_states

    out = out or sys.stdout
    done = completed_keys(store)
    claims = open_claims(store)
    existing = {p.key: claims.get(p.key) for p in planned}
    slurm = slurm_states([c.get("job_id") for c in existing.values()
                          if c and c.get("launcher") == "slurm"])
    chosen: list[tuple[PlannedRun, str | None]] = []
    for p in planned:
        if p.key in done:
            print(f"  skip   {p.name}: completed in the store", file=out)
            continue
        old = existing[p.key]
        if old is not None and holder_alive(old, slurm):
            where = f"job {old['job_id']}" if old.get("job_id") else f"{old.get('host')} pid {old.get('pid')}"
            print(f"  skip   {p.name}: {old.get('state')} ({where}, sweep {old.get('sweep')})", file=out)
            continue
        if dry_run:
            print(f"  launch {p.name}" + (f" (after a {old.get('state')} attempt)" if old else ""), file=out)
            chosen.append((p, None))
            continue
        record = new_claim(p.key, sweep=sweep, name=p.name, launcher=launcher,
                           attempts=int(old.get("attempts", 0)) if old else 0)
        won = claims.take_over(p.key, old["token"], record) if old else claims.create(record)
        if not won:
            print(f"  skip   {p.name}: claimed by another sweep just now", file=out)
            continue
        print(f"  launch {p.name}" + (f" (after a {old.get('state')} attempt)" if old else ""), file=out)
        chosen.append((p, record["token"]))
    return chosen


def launch_local(chosen: Sequence[tuple[PlannedRun, str]], store: StoreSpec, sweep: str, jobs: int = 1,
                 runs_dir: str | None = None, out=None) -> dict[str, str]:
    """Train the claimed runs on this machine, `jobs` at a time; returns name -> outcome."""
    out = out or sys.stdout
    outcomes: dict[str, str] = {}
    total = len(chosen)

    def one(i: int, p: PlannedRun, token: str) -> None:
        from sri.sweep.worker import stop_requested

        if stop_requested.is_set():  # stopping: leave it claimed-but-dead, the next sweep takes it over
            outcomes[p.name] = "not started"
            return
        log = log_file(store, sweep, p, runs_dir) if jobs > 1 else None
        print(f"[sweep] {i}/{total} start {p.name}" + (f" (log {log})" if log else ""), file=out, flush=True)
        t0 = time.monotonic()
        outcomes[p.name] = execute(p, sweep, store, token, runs_dir=runs_dir, log_path=log)
        print(f"[sweep] {i}/{total} {outcomes[p.name]} {p.name} in {time.monotonic() - t0:.0f} s",
              file=out, flush=True)

    import signal
    import threading

    from sri.sweep.worker import forward_stop, stop_requested

    # SIGTERM (a local scheduler, `kill`): the runs checkpoint and the sweep ends; started again,
    # it resumes them. Runs not started yet are not started any more.
    stop_requested.clear()
    main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGTERM, forward_stop) if main else None
    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = [pool.submit(one, i + 1, p, t) for i, (p, t) in enumerate(chosen)]
            try:
                for f in futures:
                    f.result()
            except KeyboardInterrupt:  # Ctrl-C: the running runs checkpoint, no new one starts
                forward_stop()
                raise
    finally:
        if main:
            signal.signal(signal.SIGTERM, old)
    return outcomes


def launch_slurm(chosen: Sequence[tuple[PlannedRun, str]], store: StoreSpec, sweep: str, options: Any,
                 runs_dir: str | None = None, out=None) -> dict[str, str]:
    """Submit one SLURM job per claimed run; returns name -> job id."""
    import shutil

    from sri.sweep.slurm import SweepJob, job_folder, make_executor

    out = out or sys.stdout
    claims = open_claims(store)
    if shutil.which("sbatch") is None:
        for p, token in chosen:
            claims.update(p.key, token, state="failed")  # release: nothing was queued
        raise RuntimeError("sbatch not found: --launcher slurm needs the SLURM client commands on "
                           "PATH (run on the cluster's login node, or use --launcher local)")
    folder = job_folder(sweep_folder(store, runs_dir), sweep)
    url = store.db_url if store.kind == "mongo" else str(store.path.resolve())
    secret = None
    if has_credentials(url):  # submitit's pickles are world-readable: the password goes to a 0600 file
        secret = str(write_secret(Path(folder) / "store_url.secret", url).resolve())
    submitted: dict[str, str] = {}
    for p, token in chosen:
        executor = make_executor(folder, options, job_name=f"sri-{p.row}-{p.dataset}-s{p.seed}")
        job = SweepJob(p, sweep, redact(url), token, runs_dir, options.gpus_per_node, options.nodes,
                       str(log_file(store, sweep, p, runs_dir)), store_file=secret)
        try:
            submitted_job = executor.submit(job)
        except Exception as e:
            for q, t in chosen[len(submitted):]:
                claims.update(q.key, t, state="failed")  # release: nothing was queued for these
            raise RuntimeError(f"submitting {p.name} failed ({type(e).__name__}: {redact(str(e))}); "
                               f"{len(submitted)} job(s) were submitted before") from None
        submitted[p.name] = str(submitted_job.job_id)
        claims.update(p.key, token, job_id=str(submitted_job.job_id))
        print(f"[sweep] submitted {p.name}: job {submitted_job.job_id}", file=out, flush=True)
    return submitted
