"""Atomic checkpoint files and rebuilding a model from one."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write `state` with torch.save to a temp file in the same folder, then rename (atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict, with a clear error for a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path} (train a model first, e.g. "
                                f"`python experiments/table3_ablation.py with smoke`)")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # corrupt / truncated file
        raise RuntimeError(f"checkpoint {path} could not be read ({type(e).__name__}: {e}); "
                           f"it may be truncated or not a sri checkpoint") from e


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu"):
    """Rebuild the model stored in a checkpoint and load its weights; returns (model, ckpt)."""
    from sri.models import build_model

    ckpt = load_checkpoint(path, map_location)
    for key in ("model_name", "model_options", "model_state"):
        if key not in ckpt:
            raise RuntimeError(f"checkpoint {path} has no {key!r}: not a sri checkpoint")
    model = build_model(ckpt["model_name"], **ckpt["model_options"])
    model.load_state_dict(ckpt["model_state"])
    model.to(map_location)
    model.eval()
    return model, ckpt
