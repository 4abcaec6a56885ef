"""Where a result came from: date, commit (and whether the tree was dirty), command, machine, torch."""
from __future__ import annotations

import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["git_state", "provenance", "bench_command", "REPO"]

REPO = Path(__file__).resolve().parent.parent


def git_state(repo: Path = REPO) -> dict[str, Any]:
    """The checkout's commit and whether it has uncommitted changes (None/None outside git)."""
    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def provenance(command: str, device: str = "cpu") -> dict[str, Any]:
    """The fields every committed result carries: date, commit, dirty, command, machine, torch."""
    from sri.train.runtime import machine_info

    machine = machine_info(device)
    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), **git_state(),
            "command": command, "machine": machine, "torch": machine["torch"]}


def bench_command(name: str, argv: list[str] | None) -> str:
    """The command line of a `python -m sri.bench NAME` call (argv None: this process's own)."""
    import shlex
    import sys

    return f"python -m sri.bench {name} " + shlex.join(sys.argv[1:] if argv is None else list(argv))
