"""Seeding and capturing every RNG the training loop touches (torch CPU and CUDA, numpy, python)."""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def rng_state() -> dict[str, Any]:
    """Every RNG the training loop touches: torch (CPU), CUDA, numpy, python.

    Only tensors, numbers, strings, lists and tuples, so that a checkpoint holding it loads with
    `torch.load(weights_only=True)` (numpy's state is stored as a tensor, not a pickled array).
    """
    kind, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    numpy_state = {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                   "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(gauss)}
    state = {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    torch.set_rng_state(state["torch"].cpu() if hasattr(state["torch"], "cpu") else state["torch"])
    npst = state["numpy"]
    if isinstance(npst, dict):  # the safe format written by rng_state
        keys = npst["keys"].cpu().numpy() if hasattr(npst["keys"], "cpu") else np.asarray(npst["keys"])
        npst = (npst["kind"], keys.astype(np.uint32), int(npst["pos"]), int(npst["has_gauss"]),
                float(npst["cached_gaussian"]))
    np.random.set_state(npst)
    py = state["python"]
    # a list after a round trip through some serialisers; random.setstate needs tuples
    random.setstate((py[0], tuple(py[1]), py[2]) if isinstance(py, list) else py)
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
