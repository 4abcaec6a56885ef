"""Logged runs → the paper's tables (`tables`), the paper check (`check`), figures (`figures`) and
Omniboard (`omniboard`); the command line is `python -m sri.report {tables,figures,check-paper,omniboard}`."""
from __future__ import annotations

from typing import Any

_EXPORTS = {
    "build_tables": "sri.report.tables",
    "collect_results": "sri.report.tables",
    "write_tables": "sri.report.tables",
    "run_check": "sri.report.check",
    "make_figures": "sri.report.figures",
    "load_paper_results": "sri.report.paper",
    "TABLES": "sri.report.paper",
}


def __getattr__(name: str) -> Any:
    # Lazy: `python -m sri.report omniboard` should not import torch or matplotlib.
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(name)
