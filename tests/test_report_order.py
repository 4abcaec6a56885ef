"""sri.metrics.order against hand computations on constructed masks."""
from __future__ import annotations

import math

import pytest
import torch

from sri.metrics.order import order_consistency, slot_roles


def _masks(layouts, k, h=4, w=4):
    """layouts: per sample a [H,W] list of slot indices → one-hot masks [N,K,1,H,W]."""
    seg = torch.tensor(layouts)  # [N,H,W]
    return torch.nn.functional.one_hot(seg, k).permute(0, 3, 1, 2).unsqueeze(2).float()


def test_hand_computed():
    k = 3
    # Sample 0: slot 0 has 10 px (background), slot 1 6 px.
    s0 = [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1], [1, 1, 1, 1]]
    # Sample 1: slot 0 has 12 px (background), slot 2 4 px.
    s1 = [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [2, 2, 2, 2]]
    # Sample 2: slot 1 has 9 px (background), slot 0 7 px.
    s2 = [[1, 1, 1, 1], [1, 1, 1, 1], [1, 0, 0, 0], [0, 0, 0, 0]]
    # Sample 3: slot 0 has 15 px (background), slot 2 1 px.
    s3 = [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 2]]
    masks = _masks([s0, s1, s2, s3], k)
    roles = slot_roles(masks, min_area=0.05)  # 1 px = 1/16 >= 0.05 counts
    assert roles.tolist() == [[1, 2, 0], [1, 0, 2], [2, 1, 0], [1, 0, 2]]
    r = order_consistency(masks, min_area=0.05)
    # Background slots: 0, 0, 1, 0 → modal share 3/4.
    assert r["order_consistency"] == pytest.approx(0.75)
    h_bg = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / math.log(3)
    assert r["background_slot_entropy"] == pytest.approx(h_bg)
    # Foreground slots: 1, 2, 0, 2 → counts (1, 1, 2) of 4.
    h_fg = -(2 * 0.25 * math.log(0.25) + 0.5 * math.log(0.5)) / math.log(3)
    assert r["foreground_slot_entropy"] == pytest.approx(h_fg)
    # Slot 0: bg 3, fg 1 → 3; slot 1: bg 1, fg 1 → 1; slot 2: fg 2 → 2; used 4 + 2 + 2 = 8.
    assert r["role_consistency"] == pytest.approx(6 / 8)
    assert r["num_samples"] == 4.0
    # A higher min_area drops sample 3's 1-pixel segment from the foreground.
    r2 = order_consistency(masks, min_area=0.1)
    assert r2["role_consistency"] == pytest.approx(5 / 7)


def test_extremes_and_soft_masks():
    k, n = 4, 40
    torch.manual_seed(0)
    fixed = torch.zeros(n, k, 1, 8, 8)
    fixed[:, 0] = 0.7  # slot 0 dominates everywhere: always background
    fixed[:, 1:, :, :2, :2] = 1.0  # slots 1..3 tie in a corner: argmax gives slot 1
    r = order_consistency(fixed.softmax(dim=1))
    assert r["order_consistency"] == 1.0 and r["background_slot_entropy"] == 0.0
    assert r["role_consistency"] == 1.0
    # Background in a uniformly cycling slot: share 1/K, entropy 1.
    cyc = torch.zeros(n, k, 1, 8, 8)
    for i in range(n):
        cyc[i, i % k] = 1.0
    r = order_consistency(cyc)
    assert r["order_consistency"] == pytest.approx(1 / k)
    assert r["background_slot_entropy"] == pytest.approx(1.0)


def test_bad_shapes():
    with pytest.raises(ValueError, match=r"\[N,K,1,H,W\]"):
        order_consistency(torch.zeros(2, 3, 2, 4, 4))
    with pytest.raises(ValueError):
        order_consistency(torch.zeros(3, 4, 4))
