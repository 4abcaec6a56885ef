"""scripts/install.py's choice of torch build (the fresh-venv install itself is in test_install.py)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "install.py"


@pytest.fixture(scope="module")
def install():
    spec = importlib.util.spec_from_file_location("sri_install_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cpu_wheel_only_without_gpu_and_without_torch(install):
    cpu = ["torch==2.13.0", "--index-url", "https://download.pytorch.org/whl/cpu"]
    assert install.torch_install_args(None, nvidia=False, platform="linux") == cpu
    assert install.torch_install_args(None, nvidia=False, platform="win32") == cpu
    assert install.torch_install_args(None, nvidia=True, platform="linux") == ["torch==2.13.0"]
    assert install.torch_install_args(None, nvidia=False, platform="darwin") == ["torch==2.13.0"]
    # an installed torch is kept, whatever its build
    for version in ("2.13.0+cpu", "2.13.0+cu128", "2.5.1"):
        for nvidia in (False, True):
            assert install.torch_install_args(version, nvidia=nvidia, platform="linux") is None


def test_gpu_detection(install, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    proc = tmp_path / "nvidia-version"
    assert install.has_nvidia_gpu(str(proc)) is False
    proc.write_text("NVRM version: ...\n")
    assert install.has_nvidia_gpu(str(proc)) is True
    proc.unlink()
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\n")
    smi.chmod(0o755)
    assert install.has_nvidia_gpu(str(proc)) is True


def test_main_installs_in_order(install, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(install, "pip", lambda *a: calls.append(a))
    monkeypatch.setattr(install, "installed_torch", lambda: None)
    monkeypatch.setattr(install, "has_nvidia_gpu", lambda: False)
    monkeypatch.setattr(install.sys, "platform", "linux")
    assert install.main() == 0
    assert calls == [("torch==2.13.0", "--index-url", "https://download.pytorch.org/whl/cpu"),
                     ("-e", ".[dev]"), ("--no-deps", "torch-fidelity==0.4.0")]
    assert "CPU build: no NVIDIA GPU found" in capsys.readouterr().out
    calls.clear()
    monkeypatch.setattr(install, "installed_torch", lambda: "2.13.0+cpu")
    assert install.main() == 0
    assert calls == [("-e", ".[dev]"), ("--no-deps", "torch-fidelity==0.4.0")]
    assert "keeping the installed torch 2.13.0+cpu" in capsys.readouterr().out
