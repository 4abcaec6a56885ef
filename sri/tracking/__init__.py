"""Run tracking: Sacred observers (MongoDB or file store), reading runs back, runs as a DataFrame."""
from __future__ import annotations

from typing import Any

_EXPORTS = {
    "RunRecord": "sri.tracking.store",
    "load_runs": "sri.tracking.store",
    "resolve_store": "sri.tracking.store",
    "attach_observers": "sri.tracking.observers",
    "runs_frame": "sri.tracking.frame",
    "config_fingerprint": "sri.tracking.frame",
}


def __getattr__(name: str) -> Any:
    # Lazy, so that importing sri.tracking does not import sacred/pymongo until needed.
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(name)
