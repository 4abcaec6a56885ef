"""SLURM through submitit: one job per run, checkpoint + requeue on time limit or preemption.

submitit sends the job USR2 `signal_delay_s` before its time limit (and on preemption where the
cluster forwards it); its handler calls `SweepJob.checkpoint`, which stops the run (SIGTERM: the
trainer writes a checkpoint) and hands submitit the same job to requeue; the requeued job starts
the run again and the trainer resumes from that checkpoint. A job requeued by the scheduler
itself (`scontrol requeue`, preemption) gets SIGTERM on all its processes: the trainer
checkpoints the same way, and the requeued job resumes.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from sri.configs import ConfigError
from sri.sweep.plan import PlannedRun
from sri.sweep.worker import execute, request_stop, run_child, run_command, run_env, torchrun_prefix

try:  # submitit is a dependency; the local launcher works without it
    from submitit.helpers import Checkpointable as _Base
except ImportError:  # pragma: no cover
    _Base = object


@dataclass
class SlurmOptions:
    """What `sri sweep --launcher slurm` asks SLURM for, per job."""

    partition: str | None = None
    gpus_per_job: int = 0
    nodes: int = 1
    time: str = "24:00:00"
    account: str | None = None
    mem: str | None = None
    cpus_per_job: int | None = None
    max_requeues: int = 20  # time-limit requeues per run (preemptions do not count)
    signal_delay_s: int = 120  # USR2 this long before the time limit: time for a checkpoint
    extra: dict[str, Any] = field(default_factory=dict)  # more sbatch options

    def __post_init__(self) -> None:
        # each value becomes one `#SBATCH --key=value` line: a line break would add lines (commands) to the script
        for key in ("partition", "time", "account", "mem"):
            v = getattr(self, key)
            if v is not None and not re.fullmatch(r"[A-Za-z0-9_.,:@%+=/-]+", str(v)):
                raise ConfigError(f"--{key.replace('_', '-')} {v!r} may hold only letters, digits and "
                                  f"_ . , : @ % + = / - (no spaces or line breaks: it is written into the "
                                  f"sbatch script)")
        for k, v in self.extra.items():
            if not re.fullmatch(r"[A-Za-z0-9_-]+", str(k)) or "\n" in str(v) or "\r" in str(v):
                raise ConfigError(f"sbatch option {k!r}={v!r}: no line breaks, and a plain option name")

    @property
    def gpus_per_node(self) -> int:
        """GPUs on each of the job's nodes (`gpus_per_job` spread evenly)."""
        if self.gpus_per_job % self.nodes:
            raise ConfigError(f"--gpus-per-job {self.gpus_per_job} does not split evenly over "
                              f"--nodes {self.nodes}; use a multiple of the node count")
        return self.gpus_per_job // self.nodes


def time_minutes(text: str | int) -> int:
    """SLURM's time formats (`90`, `1:30:00`, `2-00:00:00`, `2-12`, `30:00`) in whole minutes."""
    s = str(text).strip()
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", s)
    if not m:
        raise ConfigError(f"--time {text!r} is not a SLURM time; use minutes (90), H:MM:SS "
                          f"(1:30:00) or D-HH:MM:SS (2-00:00:00)")
    days, a, b, c = (int(x) if x is not None else None for x in m.groups())
    if days is not None:  # D-H, D-H:M, D-H:M:S
        minutes = days * 1440 + a * 60 + (b or 0) + (1 if c else 0)
    elif c is not None:  # H:M:S
        minutes = a * 60 + b + (1 if c else 0)
    elif b is not None:  # M:S
        minutes = a + (1 if b else 0)
    else:
        minutes = a
    if minutes < 1:
        raise ConfigError(f"--time {text!r} is under a minute")
    return minutes


class SweepJob(_Base):
    """The callable submitit runs in the job: `execute` one claimed run (rank 0), or join the
    torchrun of a multi-node job (other ranks)."""

    def __init__(self, planned: PlannedRun, sweep: str, store: str, token: str, runs_dir: str | None,
                 gpus_per_node: int, nodes: int, log_path: str, store_file: str | None = None) -> None:
        # submitit pickles this object into a world-readable file: a store URL with a password
        # stays in `store_file` (0600, sri.credentials.write_secret) and `store` holds it redacted
        self.planned, self.sweep, self.store, self.token = planned, sweep, store, token
        self.store_file = store_file
        self.runs_dir, self.gpus_per_node, self.nodes, self.log_path = runs_dir, gpus_per_node, nodes, log_path

    def _launcher(self) -> tuple[list[str], int]:
        if self.gpus_per_node <= 1 and self.nodes <= 1:
            return [], 0
        import submitit

        env = submitit.JobEnvironment()
        port = 20000 + int(re.sub(r"\D", "", str(env.job_id)) or 0) % 20000
        return torchrun_prefix(self.gpus_per_node, self.nodes, env.node, env.hostnames[0], port), env.global_rank

    def store_url(self) -> str:
        """The store, read from the 0600 file when it holds a password."""
        from sri.credentials import read_secret

        return read_secret(self.store_file) if self.store_file else self.store

    def __call__(self) -> str:
        from sri.tracking.store import resolve_store

        launcher, rank = self._launcher()
        store = self.store_url()
        if rank != 0:  # another node of a multi-node run: no claim, no store, just the workers
            spec = resolve_store(store)
            rc = run_child(run_command(self.planned, self.sweep, spec, launcher),
                           run_env(spec, self.runs_dir), None)
            return f"rank {rank} exited {rc}"
        job_id = os.environ.get("SLURM_JOB_ID")
        outcome = execute(self.planned, self.sweep, store, self.token, runs_dir=self.runs_dir,
                          launcher=launcher or None, log_path=self.log_path, job_id=job_id)
        if outcome in ("failed", "interrupted"):
            raise RuntimeError(f"{self.planned.name} {outcome}; see {self.log_path}")
        return outcome

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """submitit's hook on USR2: stop the run at a checkpoint, then requeue this same job."""
        print(f"[sweep] {self.planned.name}: time limit or preemption: checkpointing, then "
              f"requeueing", file=sys.stderr, flush=True)
        request_stop()
        return super().checkpoint(*args, **kwargs)


def make_executor(folder: str | os.PathLike, options: SlurmOptions, job_name: str) -> Any:
    """A submitit SlurmExecutor with the sweep's SLURM options."""
    import submitit

    executor = submitit.SlurmExecutor(folder=str(folder), max_num_timeout=options.max_requeues)
    params: dict[str, Any] = {
        "job_name": job_name, "time": time_minutes(options.time), "nodes": options.nodes,
        "ntasks_per_node": 1, "signal_delay_s": options.signal_delay_s, "stderr_to_stdout": True,
        "additional_parameters": {"requeue": True, **options.extra},
    }
    if options.partition:
        params["partition"] = options.partition
    if options.gpus_per_job:
        params["gpus_per_node"] = options.gpus_per_node
    if options.account:
        params["account"] = options.account
    if options.mem:
        params["mem"] = options.mem
    if options.cpus_per_job:
        params["cpus_per_task"] = options.cpus_per_job
    executor.update_parameters(**params)
    return executor


def slurm_states(job_ids: Sequence[str]) -> dict[str, str] | None:
    """SLURM state (PENDING, RUNNING, ...) of each job still known to `squeue`; jobs that ended are
    absent. None when `squeue` is not available (then nothing is known about any job)."""
    wanted = {str(j) for j in job_ids if j}
    if not wanted:
        return {}
    try:
        res = subprocess.run(["squeue", "-h", "-o", "%i|%T"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if res.returncode != 0:
        return None
    states = {}
    for line in res.stdout.splitlines():
        jid, _, state = line.strip().partition("|")
        if jid in wanted:
            states[jid] = state
    return states


def job_folder(sweep_dir: Path, sweep: str) -> Path:
    """submitit's folder for a sweep's jobs (`%j`: one sub-folder per job)."""
    from sri.names import check_name

    return sweep_dir / "slurm" / check_name(sweep, "sweep id") / "%j"
