"""Training: `train_step`, `make_gecos` (sri.train.step); the trainer lives in sri.train.trainer."""
from __future__ import annotations

from typing import Any

from sri.train.step import make_gecos, train_step, unwrap_model

__all__ = ["make_gecos", "train_step", "unwrap_model", "Trainer", "train"]


def __getattr__(name: str) -> Any:
    # the long-running trainer is imported lazily (it pulls in data, metrics and checkpoints)
    if name in ("Trainer", "train"):
        from sri.train import trainer
        return getattr(trainer, name)
    raise AttributeError(f"module 'sri.train' has no attribute {name!r}")
