"""Helpers for the experiment tests: a small FID feature extractor the smoke subprocesses register
by import path (`fid_feature_extractor=test_experiments_support:TinyExtractor`), and running scripts."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


from tiny_fid import TinyExtractor  # noqa: E402,F401  (import path used by smoke configs)


def run_script(script: str, args: list[str], cwd: Path, env: dict | None = None,
               timeout: int = 240) -> subprocess.CompletedProcess:
    """Run `python experiments/<script> <args>` in `cwd` with the tests folder importable."""
    e = dict(os.environ, OMP_NUM_THREADS="2", PYTHONPATH=os.pathsep.join(
        [str(TESTS), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    e.pop("SRI_MONGO_URL", None)
    e.update(env or {})
    return subprocess.run([sys.executable, str(ROOT / "experiments" / script), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=e)


def read_file_run(store: Path, run_id: int = 1) -> dict:
    """config, info, run and metrics of one run in a Sacred file store."""
    d = store / str(run_id)
    return {name: json.loads((d / f"{name}.json").read_text()) for name in ("config", "info", "run", "metrics")}
