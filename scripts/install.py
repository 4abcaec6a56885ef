#!/usr/bin/env python
"""One-command install: torch (kept if present), sri with its dev extras, torch-fidelity."""
from __future__ import annotations

import subprocess
import sys

TORCH_PIN = "torch==2.13.0"
FIDELITY_PIN = "torch-fidelity==0.4.0"


def pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.check_call(cmd)


def main() -> int:
    try:
        import torch  # noqa: F401

        print(f"keeping the installed torch {torch.__version__} "
              f"(CUDA {'available' if torch.cuda.is_available() else 'not available'})")
    except ImportError:
        # On a CPU-only machine this resolves to the CPU build; on a CUDA machine to the CUDA one.
        pip(TORCH_PIN)
    pip("-e", ".[dev]")
    # torch-fidelity declares torchvision, whose only wheels here pull another torch build;
    # sri imports the parts of torch-fidelity it needs without torchvision (sri.metrics.fid).
    pip("--no-deps", FIDELITY_PIN)
    return 0


if __name__ == "__main__":
    sys.exit(main())
