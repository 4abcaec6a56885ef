"""Process-level runtime settings for CPU training."""
from __future__ import annotations

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
