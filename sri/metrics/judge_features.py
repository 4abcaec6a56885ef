"""Measured features of a generated scene for the learned S-Acc judge (docs/judge/).

Each feature is something a person looks at when calling a sample one standing stack: how many
coloured masses and specks there are at several colour levels, how much faint colour lies apart
from the main mass and where (above it, beside it, on the floor), whether a band of background
colour crosses the mass, where the mass stands against the wall/floor line, how its width changes
from row to row (a narrow neck, two runs side by side), whether what rests on each row has its
centre of mass over that row, and the rule-based judge's own verdicts.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from sri.metrics.stacks import (
    JUDGE_DEFAULTS,
    JUDGE_LENIENT,
    background_gap,
    coloured_components,
    judge_image,
    wall_floor_row,
)

LEVELS = (0.04, 0.06, 0.1, 0.16)
# In the order `image_features` writes them; t<level>: traced at that colour level, 1-row gaps closed.
FEATURE_NAMES = (
    ["rules_strict", "rules_lenient"]
    + [f"{q}_t{t}" for t in (0.05, 0.08, 0.12) for q in ("objects", "specks", "pieces", "rest_area")]
    + [f"apart_{where}_{lv}" for lv in LEVELS for where in ("all", "above", "floor")]
    + [f"background_gap_{e}" for e in (0.05, 0.1, 0.15)]
    + ["bottom_below_horizon", "top", "height", "area", "colour_mean", "colour_p25", "width",
       "touches_side", "touches_top"]
    + ["neck", "most_runs", "base_runs", "overhang", "base_width"]
    + [f"column_gap_{q}_{e}" for e in (0.06, 0.1) for q in ("share", "row_max")]
    + [f"{q}_unclosed_t{t}" for t in (0.08, 0.16) for q in ("objects", "rest_area")]
    + ["wall_colour", "floor_colour"])


def _runs(row: np.ndarray) -> int:
    """How many separate runs of True a boolean row holds."""
    return int(np.sum(row[1:] & ~row[:-1]) + row[0]) if row.size else 0


def _profile(mass: np.ndarray) -> list[float]:
    """Width-profile features of the mass: neck ratio, most runs in a row, runs in the bottom rows,
    worst overhang of the load above a row beyond that row's span, bottom width / widest row."""
    rows = np.nonzero(mass.any(1))[0]
    widths = mass.sum(1).astype(float)
    top, bot = int(rows.min()), int(rows.max())
    neck = 1.0
    for r in range(top + 1, bot):
        side = min(widths[top:r].max(), widths[r + 1:bot + 1].max())
        if side > 0:
            neck = min(neck, widths[r] / side)
    runs = max(_runs(mass[r]) for r in rows)
    base_runs = max(_runs(mass[r]) for r in rows[-3:])
    cols = np.arange(mass.shape[1])
    overhang = 0.0
    for r in rows[1:]:
        above = mass[top:r]
        cx = (above.sum(0) * cols).sum() / max(above.sum(), 1)
        span = np.nonzero(mass[r])[0]
        overhang = max(overhang, span.min() - cx, cx - span.max(), 0.0)
    return [neck, float(runs), float(base_runs), overhang / mass.shape[1],
            widths[bot] / max(widths.max(), 1.0)]


def _column_gaps(img: np.ndarray, colour: np.ndarray, mass: np.ndarray, eps: float) -> tuple[float, float]:
    """Share of the mass's columns with a background-coloured pixel between two mass pixels, and
    the most such columns in one row over that row's width (a gap under part of a block)."""
    H = img.shape[1]
    bg = ~ndimage.binary_dilation(colour > 0.08, iterations=1)
    ref = np.array([np.median(img[:, r, bg[r]], axis=1) if bg[r].sum() > 2 else img[:, r].mean(1)
                    for r in range(H)])  # [H, 3]
    like_bg = np.abs(img.transpose(1, 2, 0) - ref[:, None, :]).max(2) < eps
    cols = np.nonzero(mass.any(0))[0]
    gap = np.zeros_like(mass)
    for c in cols:
        rs = np.nonzero(mass[:, c])[0]
        seg = like_bg[rs.min():rs.max() + 1, c]
        gap[rs.min():rs.max() + 1, c] = seg
    per_row = gap.sum(1) / np.maximum(mass.sum(1), 1)
    return float(gap.any(0)[cols].mean()), float(per_row.max())


def image_features(img: np.ndarray) -> np.ndarray:
    """The feature vector of one image `[3,H,W]` in [0,1] (see the module docstring)."""
    d = JUDGE_DEFAULTS
    H, W = img.shape[1:]
    n = H * W
    g = d["gap"] * max(1, H // 32)
    colour = img.max(0) - img.min(0)
    f: list[float] = [float(judge_image(img, **d)), float(judge_image(img, **JUDGE_LENIENT))]
    for t in (0.05, d["t_low"], 0.12):
        comp, k, sizes = coloured_components(colour, t, g)
        strong = np.bincount(comp[colour > d["t_high"]].ravel(), minlength=k + 1)[1:]
        seen = strong >= d["min_speck"] * n
        f += [float(np.sum(seen & (sizes >= d["min_object"] * n))), float(np.sum(seen & (sizes < d["min_object"] * n))),
              float(k), (sizes.sum() - sizes.max()) / n if k else 0.0]
    comp, k, sizes = coloured_components(colour, d["t_low"], g)
    if k == 0:
        return np.array(f + [0.0] * (len(FEATURE_NAMES) - len(f)), np.float32)
    mass = comp == int(np.argmax(sizes)) + 1
    rows = np.nonzero(mass.any(1))[0]
    top, bot = int(rows.min()), int(rows.max())
    near = ndimage.binary_dilation(mass, iterations=1)
    apart = ~near
    horizon = wall_floor_row(img, colour > d["t_high"])
    above = np.zeros_like(mass)
    above[:top] = True
    floor = np.zeros_like(mass)
    floor[horizon:] = True
    for level in LEVELS:
        c = (colour > level) & apart
        f += [c.sum() / n, (c & above).sum() / n, (c & floor).sum() / n]
    f += [float(background_gap(img, colour > d["t_low"], mass, eps, 2)) for eps in (0.05, 0.1, 0.15)]
    f += [(bot - horizon) / H, top / H, (bot - top + 1) / H, mass.sum() / n, float(colour[mass].mean()),
          float(np.percentile(colour[mass], 25)), mass.any(0).sum() / W,
          float(mass[:, 0].any() or mass[:, -1].any()), float(mass[0].any())]
    f += _profile(mass)
    for eps in (0.06, 0.1):
        f += list(_column_gaps(img, colour, mass, eps))
    for t in (0.08, 0.16):
        _, k0, s0 = coloured_components(colour, t, 0)
        f += [float(np.sum(s0 >= d["min_object"] * n)), (s0.sum() - s0.max()) / n if k0 else 0.0]
    bg = ~near
    f += [float(colour[bg & ~floor].mean()) if (bg & ~floor).any() else 0.0,
          float(colour[bg & floor].mean()) if (bg & floor).any() else 0.0]
    return np.array(f, np.float32)


def scene_features(images: np.ndarray) -> np.ndarray:
    """Features `[N, F]` (`FEATURE_NAMES`) of images `[N,3,H,W]` in [0,1]."""
    return np.stack([image_features(np.asarray(im, np.float32)) for im in images])
