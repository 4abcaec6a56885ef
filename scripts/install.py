#!/usr/bin/env python
"""One-command install: torch (kept if present), sri with its dev extras, torch-fidelity.

torch, when missing, is chosen here rather than left to pip's configuration: on Linux or
Windows without an NVIDIA GPU (no `nvidia-smi` on PATH, no /proc/driver/nvidia/version) the CPU
build from PyTorch's CPU index (`2.13.0+cpu`); otherwise the default index's wheel (the CUDA
build on Linux, the only build on macOS). An installed torch, of any build, is kept.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

TORCH_PIN = "torch==2.13.0"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
FIDELITY_PIN = "torch-fidelity==0.4.0"


def pip(*args: str) -> None:
    """`pip install ARGS` with this interpreter, echoing the command."""
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.check_call(cmd)


def has_nvidia_gpu(proc_file: str = "/proc/driver/nvidia/version") -> bool:
    """Whether this machine shows an NVIDIA driver (`nvidia-smi` on PATH or the kernel module)."""
    return shutil.which("nvidia-smi") is not None or os.path.exists(proc_file)


def torch_install_args(installed: str | None, nvidia: bool, platform: str = sys.platform) -> list[str] | None:
    """pip arguments that install torch, or None to keep the installed version `installed`."""
    if installed is not None:
        return None
    if not nvidia and platform != "darwin":
        return [TORCH_PIN, "--index-url", CPU_INDEX]
    return [TORCH_PIN]


def installed_torch() -> str | None:
    """The installed torch's version, or None."""
    try:
        import torch
    except ImportError:
        return None
    return str(torch.__version__)


def main() -> int:
    """Install torch (kept if present), sri with its dev extras, and torch-fidelity."""
    version = installed_torch()
    nvidia = has_nvidia_gpu()
    args = torch_install_args(version, nvidia, sys.platform)
    if args is None:
        import torch

        print(f"keeping the installed torch {version} "
              f"(CUDA {'available' if torch.cuda.is_available() else 'not available'})")
    else:
        why = ("CPU build: no NVIDIA GPU found" if CPU_INDEX in args
               else "default wheel: NVIDIA driver found" if nvidia else "default wheel (macOS)")
        print(f"no torch installed; installing the {why}", flush=True)
        pip(*args)
    pip("-e", ".[dev]")
    # torch-fidelity declares torchvision, whose only wheels here pull another torch build;
    # sri imports the parts of torch-fidelity it needs without torchvision (sri.metrics.fid).
    pip("--no-deps", FIDELITY_PIN)
    return 0


if __name__ == "__main__":
    sys.exit(main())
