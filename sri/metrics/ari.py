"""Foreground adjusted Rand index (ARI-FG), vectorised over a batch of segmentations."""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

# Largest dense contingency table (images x true labels x predicted labels) built in one go;
# beyond it the counts are taken from a sorted (sparse) table instead.
MAX_DENSE_TABLE = 1 << 24
SMALL_LABELS = 256


def _as_label_tensor(x, name: str) -> Tensor:
    t = torch.as_tensor(np.asarray(x)) if not isinstance(x, Tensor) else x
    if t.dtype.is_floating_point or t.dtype.is_complex:
        raise TypeError(f"{name} must hold integer labels, got dtype {t.dtype}; "
                        f"convert with .long() (e.g. masks.argmax(1) for soft masks)")
    return t.long()


def _compact(labels: Tensor) -> tuple[Tensor, int, int | None]:
    """Labels -> (indices 0..n-1, n, index of label 0 or None); small non-negative labels are
    used as they are (no sort): empty table rows/columns add nothing to the sums."""
    lo, hi = int(labels.min()), int(labels.max())
    if lo >= 0 and hi < SMALL_LABELS:
        return labels, hi + 1, 0
    uniq, inv = torch.unique(labels, return_inverse=True)
    zero = torch.nonzero(uniq == 0)
    return inv, len(uniq), (int(zero[0, 0]) if zero.numel() else None)


def ari_fg(true_mask, pred_mask, *, max_dense_table: int = MAX_DENSE_TABLE) -> Tensor:
    """Per-image ARI on foreground pixels (true label != 0): [B,H,W] int maps -> [B] float64.

    Equal to `sklearn.metrics.adjusted_rand_score(true[fg], pred[fg])` per image (1.0 when both
    partitions agree on every pair, e.g. one cluster on both sides); NaN for an image with no
    foreground pixel (average with `nanmean`). Labels may be any integers, in any order.
    """
    t = _as_label_tensor(true_mask, "true_mask")
    p = _as_label_tensor(pred_mask, "pred_mask").to(t.device)
    if t.shape != p.shape:
        raise ValueError(f"true_mask {tuple(t.shape)} and pred_mask {tuple(p.shape)} must have the "
                         f"same [B,H,W] shape (argmax the predicted masks over slots first)")
    if t.dim() < 2:
        raise ValueError(f"expected [B,H,W] (or [B,N]) label maps, got shape {tuple(t.shape)}")
    B = t.shape[0]
    t = t.reshape(B, -1)
    p = p.reshape(B, -1)
    fg = t != 0
    f64 = dict(dtype=torch.float64, device=t.device)
    n = fg.sum(1).to(**f64)
    if not bool(fg.any()):
        return torch.full((B,), math.nan, **f64)
    ti, T, bg = _compact(t)
    pi, P, _ = _compact(p)
    img = torch.arange(B, device=t.device).unsqueeze(1)
    if B * T * P <= max_dense_table:
        # Table over all pixels; the background row (true label 0) is zeroed afterwards, which
        # avoids gathering the foreground pixels (slow for millions of pixels).
        counts = torch.bincount(((img * T + ti) * P + pi).flatten(), minlength=B * T * P)
        counts = counts.view(B, T, P).to(**f64)
        if bg is not None:
            counts[:, bg] = 0
        sum_sq = counts.square().sum((1, 2))
        sum_true_sq = counts.sum(2).square().sum(1)
        sum_pred_sq = counts.sum(1).square().sum(1)
    else:
        img, ti, pi = img.expand_as(t)[fg], ti[fg], pi[fg]

        def per_image_sum_sq(key: Tensor, per_image: int) -> Tensor:
            uniq, c = torch.unique(key, return_counts=True)
            return torch.zeros(B, **f64).scatter_add_(0, uniq // per_image, c.to(torch.float64).square())
        sum_sq = per_image_sum_sq((img * T + ti) * P + pi, T * P)
        sum_true_sq = per_image_sum_sq(img * T + ti, T)
        sum_pred_sq = per_image_sum_sq(img * P + pi, P)
    # Pair confusion counts over ordered pairs, as sklearn.metrics.pair_confusion_matrix.
    tp = sum_sq - n
    fp = sum_pred_sq - sum_sq
    fn = sum_true_sq - sum_sq
    tn = n * n - fp - fn - sum_sq
    denom = (tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)
    agree = (fn == 0) & (fp == 0)
    ari = torch.where(
        agree, torch.ones_like(n), 2.0 * (tp * tn - fn * fp) / torch.where(agree, torch.ones_like(n), denom)
    )
    return torch.where(n > 0, ari, torch.full_like(n, math.nan))


def nanmean(values: Tensor) -> float:
    """Mean over the finite entries (ARI of images without foreground is NaN); NaN if none."""
    v = torch.as_tensor(values, dtype=torch.float64)
    v = v[~torch.isnan(v)]
    return float(v.mean()) if v.numel() else math.nan
