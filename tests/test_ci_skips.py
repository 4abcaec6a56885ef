"""In CI (SRI_CI=1) a test that skips for a reason other than a designed one fails the run (issue 26)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path


def _run(tmp_path: Path, ci: bool) -> subprocess.CompletedProcess:
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_x.py").write_text(
        "import pytest\n\ndef test_ok():\n    pass\n\n"
        "def test_needs_tool():\n    pytest.skip('no srun on PATH')\n\n"
        "def test_designed():\n    pytest.skip('the fast mode is fp32')\n")
    env = {k: v for k, v in os.environ.items() if k != "SRI_CI"}
    if ci:
        env["SRI_CI"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_a_skip_fails_ci_but_not_a_user(tmp_path):
    user = _run(tmp_path, ci=False)
    assert user.returncode == 0, user.stdout
    ci = _run(tmp_path, ci=True)
    assert ci.returncode == 1, ci.stdout
    assert "test_needs_tool" in ci.stdout and "no srun on PATH" in ci.stdout
    assert "test_designed" not in ci.stdout.split("CI expects to run")[-1]
