"""Training: `train_step`, `make_gecos` (sri.train.step); the trainer lives in sri.train.trainer.

Names are imported lazily so that `python -m sri.bench train-step` can set OpenMP variables
before torch is loaded.
"""
from __future__ import annotations

from typing import Any

__all__ = ["make_gecos", "train_step", "unwrap_model", "Trainer", "train"]

_FROM = {"make_gecos": "step", "train_step": "step", "unwrap_model": "step",
         "Trainer": "trainer", "train": "trainer"}


def __getattr__(name: str) -> Any:
    if name in _FROM:
        import importlib

        module = importlib.import_module(f"sri.train.{_FROM[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'sri.train' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_FROM))
