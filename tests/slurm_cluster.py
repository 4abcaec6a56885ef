"""A throw-away one-node SLURM cluster on localhost for tests (Debian's slurm-wlm and munge).

munged runs as the `munge` user with its key and socket in a temporary folder; slurmctld and
slurmd run as root with every state, spool, log and pid file there too, on free non-default
ports. Clients find it through $SLURM_CONF.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

BINARIES = ("munged", "munge", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "runuser")


def missing_reason() -> str | None:
    """Why no test cluster can start here (None: it can)."""
    absent = [b for b in BINARIES if shutil.which(b) is None and not Path(f"/usr/sbin/{b}").exists()]
    if absent:
        return (f"SLURM test cluster needs {', '.join(absent)} (Debian: apt-get install slurm-wlm "
                f"munge; .ci/run does)")
    if os.geteuid() != 0:
        return "SLURM test cluster needs root (slurmd runs jobs as their user)"
    try:
        import pwd

        pwd.getpwnam("munge")
    except KeyError:
        return "no `munge` user (install Debian's munge package)"
    return None


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _sbin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


class SlurmCluster:
    """Start with `start()`, stop with `stop()`; `env` is the environment for client commands."""

    def __init__(self, folder: Path | None = None) -> None:
        import tempfile

        # the munge user must reach its files: not under pytest's root-only temporary folder
        self.own_folder = folder is None
        self.folder = Path(tempfile.mkdtemp(prefix="sri-slurm-")) if folder is None else Path(folder)
        self.folder.chmod(0o755)
        self.munged_pid = self.folder / "munge-run" / "munged.pid"
        self.env = dict(os.environ, SLURM_CONF=str(self.folder / "slurm.conf"))

    def _munge(self) -> None:
        run_dir, etc = self.folder / "munge-run", self.folder / "munge-etc"
        for d, mode in ((run_dir, 0o755), (etc, 0o700)):
            d.mkdir(parents=True)
            shutil.chown(d, "munge", "munge")
            d.chmod(mode)
        key = etc / "munge.key"
        key.write_bytes(os.urandom(1024))
        shutil.chown(key, "munge", "munge")
        key.chmod(0o600)
        self.socket = run_dir / "munge.sock"
        subprocess.run(["runuser", "-u", "munge", "--", _sbin("munged"), f"--socket={self.socket}",
                        f"--key-file={key}", f"--pid-file={self.munged_pid}",
                        f"--log-file={etc / 'munged.log'}", f"--seed-file={etc / 'munged.seed'}"],
                       check=True, timeout=60)

    def _conf(self) -> None:
        f, host = self.folder, socket.gethostname().split(".")[0]
        ctld_port, d_port = _free_ports(2)
        for d in ("state", "spool"):
            (f / d).mkdir()
        lines = [
            "ClusterName=sritest", f"SlurmctldHost={host}(127.0.0.1)", "SlurmUser=root", "SlurmdUser=root",
            f"SlurmctldPort={ctld_port}", f"SlurmdPort={d_port}",
            "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={self.socket}",
            f"StateSaveLocation={f / 'state'}", f"SlurmdSpoolDir={f / 'spool'}",
            f"SlurmctldPidFile={f / 'slurmctld.pid'}", f"SlurmdPidFile={f / 'slurmd.pid'}",
            f"SlurmctldLogFile={f / 'slurmctld.log'}", f"SlurmdLogFile={f / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core",
            "SchedulerType=sched/backfill", "SchedulerParameters=sched_interval=5,bf_interval=5",
            "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
            "MpiDefault=none", "ReturnToService=2", "KillWait=30", "MinJobAge=600",
            f"NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count() or 1} State=UNKNOWN",
            f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP",
        ]
        (f / "slurm.conf").write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 60) -> "SlurmCluster":
        """munged, slurmctld, slurmd; returns once the node is idle."""
        self._munge()
        self._conf()
        subprocess.run([_sbin("slurmctld"), "-i"], env=self.env, check=True, timeout=60)
        subprocess.run([_sbin("slurmd")], env=self.env, check=True, timeout=60)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            res = subprocess.run(["sinfo", "-h", "-o", "%T"], env=self.env, capture_output=True, text=True)
            if res.returncode == 0 and res.stdout.strip() == "idle":
                return self
            time.sleep(1)
        logs = "\n".join((self.folder / n).read_text()[-2000:] for n in ("slurmctld.log", "slurmd.log")
                         if (self.folder / n).exists())
        self.stop()
        raise RuntimeError(f"the test SLURM node did not become idle in {timeout:.0f} s:\n{logs}")

    def jobs(self) -> dict[str, str]:
        """job id -> state of every job squeue knows."""
        res = subprocess.run(["squeue", "-h", "-o", "%i|%T"], env=self.env, capture_output=True, text=True,
                             timeout=60, check=True)
        return dict(line.split("|", 1) for line in res.stdout.split())

    def scontrol(self, *args: str) -> None:
        subprocess.run(["scontrol", *args], env=self.env, check=True, timeout=60)

    def stop(self) -> None:
        """Cancel every job, then stop the daemons this object started (by their pid files)."""
        subprocess.run(["scancel", "--full", "-u", "root"], env=self.env, capture_output=True, timeout=60)
        for pid_file in (self.folder / "slurmd.pid", self.folder / "slurmctld.pid", self.munged_pid):
            try:
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
            except (OSError, ValueError):
                pass
        time.sleep(1)
        if self.own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)
