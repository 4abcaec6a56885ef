"""The README's one-command install, word for word, in a fresh virtual environment (slow).

Clones the committed HEAD of this repository (uncommitted changes are not part of it), creates a
venv without system site packages, runs `python scripts/install.py` in it with the venv
activated, then imports the installed packages and runs the `sri` console command.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]


class Installed:
    """A fresh venv with the project installed from a clone."""

    def __init__(self, root: Path) -> None:
        self.repo = root / "repo"
        self.venv = root / "venv"
        self.bin = self.venv / "bin"
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "CONDA_PREFIX")}
        self.env["VIRTUAL_ENV"] = str(self.venv)  # what `source venv/bin/activate` does
        self.env["PATH"] = str(self.bin) + os.pathsep + os.environ.get("PATH", "")
        self.install_seconds = float("nan")
        self.install_log = ""

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), cwd=self.repo, env=self.env, capture_output=True,
                              text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    if shutil.which("git") is None:
        pytest.skip("git is needed to clone the repository")
    inst = Installed(tmp_path_factory.mktemp("install"))
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(inst.repo)], check=True,
                   timeout=300)
    # `python -m venv` from inside a venv bases the new one on the base interpreter.
    subprocess.run([sys.executable, "-m", "venv", str(inst.venv)], check=True, timeout=300)
    start = time.perf_counter()
    out = inst.run("python", "scripts/install.py", timeout=2000)
    inst.install_seconds = time.perf_counter() - start
    inst.install_log = out.stdout + out.stderr
    print(f"\n`python scripts/install.py` in a fresh venv took {inst.install_seconds:.0f} s")
    assert out.returncode == 0, inst.install_log[-6000:]
    return inst


def test_venv_is_isolated(installed):
    cfg = (installed.venv / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = false" in cfg
    out = installed.run("python", "-c", "import sys; print(sys.prefix)")
    assert Path(out.stdout.strip()) == installed.venv


def test_install_gets_cpu_or_kept_torch_and_imports_sri(installed):
    code = ("import sri, torch, sri.cli; print(torch.__version__); print(sri.__file__)")
    out = installed.run("python", "-c", code)
    assert out.returncode == 0, out.stderr
    torch_version, sri_file = out.stdout.split()
    assert torch_version.split("+")[0] == "2.13.0"
    nvidia = shutil.which("nvidia-smi") or os.path.exists("/proc/driver/nvidia/version")
    if not nvidia and sys.platform.startswith("linux"):
        # no GPU: scripts/install.py takes torch from PyTorch's CPU index, whatever pip's config
        assert torch_version == "2.13.0+cpu", torch_version
        assert "download.pytorch.org/whl/cpu" in installed.install_log
    # Editable install: the package is the clone's source tree.
    assert Path(sri_file).resolve().is_relative_to(installed.repo.resolve())


def test_sri_console_command(installed):
    sri = installed.bin / "sri"
    assert sri.is_file(), "the `sri` console script was not installed"
    out = installed.run("sri", "--help")
    assert out.returncode == 0, out.stderr
    assert "usage" in out.stdout.lower()


def test_tracking_dependencies_import(installed):
    # sacred 0.8.7 imports pkg_resources, which setuptools >= 82 no longer ships.
    code = ("import warnings; warnings.simplefilter('ignore')\n"
            "import sacred, pymongo\n"
            "print(sacred.__version__)")
    out = installed.run("python", "-c", code)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split()[-1] == "0.8.7"


def test_sweep_dependencies_import(installed):
    """pandas (runs_frame) and submitit (SLURM sweeps) come with the install, with the kept torch."""
    code = ("import pandas, submitit, torch\n"
            "from sri.tracking import runs_frame\n"
            "print(len(runs_frame([])), torch.__version__)")
    out = installed.run("python", "-c", code)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["0", out.stdout.split()[1]] and out.stdout.split()[1].startswith("2.13.0")
    help_out = installed.run("sri", "sweep", "--help")
    assert help_out.returncode == 0 and "--launcher" in help_out.stdout, help_out.stderr
