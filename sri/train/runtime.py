"""Process-level runtime: the device to train on, the CPU allocator, stop signals, machine info.

Nothing here imports torch at module level (`python -m sri.bench` sets OpenMP variables first).
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import torch


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """'auto' -> cuda:<local_rank> when CUDA is available, else cpu; anything else as given."""
    import torch

    from sri.configs import ConfigError

    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} but CUDA is not available here; use device=cpu or auto")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device(f"cuda:{local_rank}")
    return dev


def threading_is_main() -> bool:
    """True in the main thread (only there can signal handlers be installed)."""
    return threading.current_thread() is threading.main_thread()


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def install_stop_handlers(on_signal: Callable[[int], None]) -> dict[int, Any]:
    """Call `on_signal(signum)` on SIGTERM/SIGINT instead of dying; the previous handlers (to give
    to `restore_handlers`). Outside the main thread nothing is installed."""
    old: dict[int, Any] = {}
    if threading_is_main():
        def handler(signum, frame):  # noqa: ARG001
            on_signal(signum)
        for sig in STOP_SIGNALS:
            old[sig] = signal.signal(sig, handler)
    return old


def restore_handlers(old: dict[int, Any]) -> None:
    """Put back the handlers `install_stop_handlers` replaced."""
    for sig, h in old.items():
        signal.signal(sig, h)


# The fastest training mode validated on CPU (`--fast` of `python -m sri.bench train-step`; the trainer's
# `amp` / `compile` keys). bf16 autocast is 1.6x faster at the paper config but fails `python -m
# sri.bench fast-check` (its KL plateaus at about half of fp32's over 2,000 steps), and torch.compile
# made the CPU step slower (docs/PERFORMANCE.md): so the fastest validated mode is eager fp32.
FAST_MODE: dict[str, object] = {"amp": None, "compile": False}


def tune_cpu_allocator() -> bool:
    """Keep freed memory in the glibc heap (no mmap / trim) so big activations do not page-fault.

    Every training step allocates and frees several 300 MB activations; with glibc defaults each
    comes from a fresh mmap, and zero-filling those pages costs seconds of system time per step.
    Returns False where glibc's `mallopt` is unavailable. Process-wide; call once at start-up.
    """
    import ctypes
    import ctypes.util

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4
        ok = libc.mallopt(m_mmap_max, 0) == 1
        ok &= libc.mallopt(m_trim_threshold, ctypes.c_int(2 ** 31 - 1)) == 1
        return bool(ok)
    except (OSError, AttributeError):
        return False


def machine_info(device: str = "cpu") -> dict[str, object]:
    """CPU model, cores, torch threads and version, and the CUDA device if one is used."""
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info: dict[str, object] = {"cpu": cpu, "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
                               "torch": torch.__version__, "python": platform.python_version(),
                               "hostname": platform.node()}
    if str(device).startswith("cuda") and torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(torch.device(device))
    return info
