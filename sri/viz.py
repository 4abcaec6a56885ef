"""One slot palette and mask colouring for every figure (trainer sample grids, report, demo).

Slot i always gets the same colour, whatever the number of slots: the first 30 are matplotlib's
tab10, then ColorBrewer Set3 and Pastel1 (without the colour Set3 already has); later slots get
hues spaced by the golden ratio. Part of the model core: imports neither matplotlib nor sri.report.
"""
from __future__ import annotations

import colorsys
import math
import os
from pathlib import Path

import numpy as np
import torch

_HEX = (
    # tab10
    "1f77b4 ff7f0e 2ca02c d62728 9467bd 8c564b e377c2 7f7f7f bcbd22 17becf "
    # ColorBrewer Set3
    "8dd3c7 ffffb3 bebada fb8072 80b1d3 fdb462 b3de69 fccde5 d9d9d9 bc80bd ccebc5 ffed6f "
    # ColorBrewer Pastel1 (its ccebc5 is in Set3 already)
    "fbb4ae b3cde3 decbe4 fed9a6 ffffcc e5d8bd fddaec f2f2f2")
SLOT_PALETTE = np.array([[int(h[i:i + 2], 16) for i in (0, 2, 4)] for h in _HEX.split()], dtype=np.uint8)
_GOLDEN = (math.sqrt(5) - 1) / 2


def slot_palette(k: int) -> np.ndarray:
    """The colours of slots 0..k-1 as `[k, 3]` uint8 (slot i keeps its colour for any k)."""
    extra = [colorsys.hsv_to_rgb((i * _GOLDEN) % 1.0, 0.65, 0.9) for i in range(max(0, k - len(SLOT_PALETTE)))]
    more = np.round(np.asarray(extra, dtype=np.float64).reshape(-1, 3) * 255).astype(np.uint8)
    return np.concatenate([SLOT_PALETTE, more])[:k]


def slot_colours(k: int) -> np.ndarray:
    """The colours of slots 0..k-1 as `[k, 3]` floats in [0, 1] (for matplotlib)."""
    return slot_palette(k).astype(np.float64) / 255.0


def mask_labels(masks: torch.Tensor) -> np.ndarray:
    """Soft masks `[N,K,1,H,W]` (or `[N,K,H,W]`) -> `[N,H,W]` index of each pixel's argmax slot."""
    if masks.dim() == 5:
        masks = masks[:, :, 0]
    return masks.float().argmax(dim=1).cpu().numpy()


def colour_masks(masks: torch.Tensor) -> np.ndarray:
    """`[N,K,1,H,W]` masks -> `[N,H,W,3]` floats in [0, 1], each pixel in its argmax slot's colour."""
    return slot_colours(masks.shape[1])[mask_labels(masks)]


def mask_colors(masks: torch.Tensor) -> np.ndarray:
    """As `colour_masks`, but uint8 `[N,H,W,3]` (for PNG files)."""
    return slot_palette(masks.shape[1])[mask_labels(masks)]


def to_hwc(images: torch.Tensor) -> np.ndarray:
    """`[N,3,H,W]` in [0,1] -> `[N,H,W,3]` numpy, clipped."""
    return images.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()


def write_sample_grid(images: torch.Tensor, masks: torch.Tensor | None, path: str | os.PathLike,
                      cols: int = 8) -> Path:
    """Save images [n,3,H,W] in [0,1] (and their slot masks below) as one PNG."""
    from PIL import Image

    imgs = (to_hwc(images) * 255).round().astype(np.uint8)
    rows = [imgs]
    if masks is not None:
        rows.append(mask_colors(masks))
    n, h, w, _ = imgs.shape
    cols = min(cols, n)
    nrow = math.ceil(n / cols)
    canvas = np.full((len(rows) * nrow * (h + 2), cols * (w + 2), 3), 255, dtype=np.uint8)
    for r, block in enumerate(rows):
        for i in range(n):
            y = (r * nrow + i // cols) * (h + 2)
            x = (i % cols) * (w + 2)
            canvas[y:y + h, x:x + w] = block[i]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).save(path)
    return path
