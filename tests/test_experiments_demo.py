"""`python -m sri.demo --smoke`: both runs, report tables/figures and the side-by-side figure."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_experiments_support import ROOT  # noqa: E402


@pytest.mark.slow
def test_demo_pipeline_smoke(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-m", "sri.demo", "--smoke"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    assert "sri demo finished" in res.stdout
    assert (tmp_path / "runs/demo/1/run.json").is_file() and (tmp_path / "runs/demo/2/run.json").is_file()
    assert (tmp_path / "figures/demo/demo_sri_vs_genv2.png").stat().st_size > 1000
    assert (tmp_path / "tables/demo/table2.csv").is_file()
