"""Process-level runtime settings for CPU training."""
from __future__ import annotations

import os
import sys


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
