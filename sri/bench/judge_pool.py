"""The pooled samples labelled by eye (docs/judge/): reading pools and labels, and the dev/test split."""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np

__all__ = ["split_of", "load_pool", "read_labels", "read_counts"]


def split_of(sample_id: int) -> str:
    """'test' for a fixed third of the ids (by hash, chosen before labelling), else 'dev'."""
    return "test" if int(hashlib.sha256(str(int(sample_id)).encode()).hexdigest(), 16) % 3 == 0 else "dev"


def load_pool(folder: Path) -> dict[str, np.ndarray]:
    """Every pool in `folder` joined: images, masks, ids, sources (as checkpoint names)."""
    parts = [np.load(p) for p in sorted(folder.glob("pool_*.npz"))]
    if not parts:
        raise FileNotFoundError(f"no pool_*.npz in {folder}: run `python -m sri.bench judge-check make-pool` first")
    return {"images": np.concatenate([p["images"] for p in parts]),
            "masks": np.concatenate([p["masks"] for p in parts]),
            "ids": np.concatenate([p["ids"] for p in parts]),
            "sources": np.concatenate([p["checkpoints"][p["sources"]] for p in parts])}


def read_labels(path: Path) -> dict[int, int]:
    """id -> 1 (plausible), 0 (implausible) or -1 (ambiguous) from a CSV with columns id,label."""
    out: dict[int, int] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            lab = int(row["label"])
            if lab not in (-1, 0, 1):
                raise ValueError(f"{path}: label of id {row['id']} must be 1, 0 or -1, got {lab}")
            out[int(row["id"])] = lab
    return out


def read_counts(path: Path) -> dict[int, int]:
    """id -> blocks counted by eye, from the optional `blocks` column of the labels CSV (blank: not counted)."""
    out: dict[int, int] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            value = (row.get("blocks") or "").strip()
            if value:
                if not value.isdigit():
                    raise ValueError(f"{path}: blocks of id {row['id']} must be a count (0, 1, 2, ...) or blank, "
                                     f"got {value!r}")
                out[int(row["id"])] = int(value)
    return out
