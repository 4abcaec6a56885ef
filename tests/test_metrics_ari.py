"""ari_fg against sklearn.metrics.adjusted_rand_score on foreground pixels."""
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from sri.metrics import ari_fg, nanmean


def reference(true, pred):
    out = []
    for t, p in zip(true.reshape(len(true), -1), pred.reshape(len(pred), -1)):
        fg = t != 0
        out.append(math.nan if not fg.any() else adjusted_rand_score(t[fg], p[fg]))
    return np.array(out)


def check(true, pred):
    true, pred = np.asarray(true), np.asarray(pred)
    ref = reference(true, pred)
    for table in (1 << 24, 0):  # dense contingency table and the sparse fallback
        got = ari_fg(torch.as_tensor(true), torch.as_tensor(pred), max_dense_table=table).numpy()
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12, equal_nan=True)
    return ref


def test_random_segmentations_match_sklearn():
    rng = np.random.default_rng(0)
    for nt, npred, size in [(3, 4, 8), (7, 9, 16), (2, 2, 5), (11, 5, 32)]:
        true = rng.integers(0, nt, (6, size, size))
        pred = rng.integers(0, npred, (6, size, size))
        # partially correlated predictions, so scores are spread, not all ~0
        pred[:3] = np.where(rng.random((3, size, size)) < 0.7, true[:3], pred[:3])
        check(true, pred)


def test_blocky_segmentations_and_permutations():
    rng = np.random.default_rng(1)
    true = np.zeros((4, 16, 16), int)
    true[:, 2:8, 2:8], true[:, 9:14, 3:12], true[:, 1:5, 10:15] = 1, 2, 3
    perm = np.array([5, 2, 0, 7])  # relabel every true segment: ARI must be exactly 1
    ref = check(true, perm[true])
    assert np.allclose(ref, 1.0)
    noisy = perm[true].copy()
    noisy[rng.random(noisy.shape) < 0.1] = 9
    a = check(true, noisy)
    b = check(true, np.array([3, 8, 1, 4, 6, 0, 2, 9, 5, 7])[noisy])  # pred relabelled: unchanged
    np.testing.assert_allclose(a, b, atol=1e-12)


def test_edge_cases():
    H = W = 6
    one = np.ones((1, H, W), int)
    # single cluster on both sides -> 1.0 (sklearn's special case)
    assert check(one, one * 4)[0] == 1.0
    # all-distinct labels on both sides -> 1.0
    distinct = np.arange(1, H * W + 1).reshape(1, H, W)
    assert check(distinct, distinct[:, ::-1] * 3)[0] == 1.0
    # one cluster vs all distinct -> 0.0
    assert check(one, distinct)[0] == 0.0
    # a single foreground pixel -> 1.0 as sklearn
    single = np.zeros((1, H, W), int)
    single[0, 2, 3] = 5
    assert check(single, np.zeros((1, H, W), int))[0] == 1.0
    # no foreground pixels -> NaN, skipped by nanmean
    empty = np.zeros((2, H, W), int)
    empty[1, :3] = 1
    empty[1, 3:] = 2
    pred = np.zeros((2, H, W), int)
    pred[1, :, :3] = 1
    got = ari_fg(torch.as_tensor(empty), torch.as_tensor(pred))
    assert math.isnan(got[0]) and not math.isnan(got[1])
    assert nanmean(got) == pytest.approx(float(got[1]))
    assert math.isnan(nanmean(ari_fg(torch.zeros(3, 4, 4, dtype=torch.long), torch.zeros(3, 4, 4, dtype=torch.long))))


def test_non_contiguous_and_negative_labels():
    rng = np.random.default_rng(2)
    true = rng.choice([0, 3, 17, 1000, -5], size=(5, 12, 12))
    pred = rng.choice([-2, 40, 7, 123456789], size=(5, 12, 12))
    check(true, pred)


def test_background_pixels_are_ignored():
    true = np.zeros((1, 8, 8), int)
    true[0, :4], true[0, 4:, :4] = 1, 2
    pred = true.copy()
    pred[0, 4:, 4:] = 7  # differs only on background
    assert check(true, pred)[0] == 1.0


def test_many_images_vectorised():
    rng = np.random.default_rng(3)
    true = rng.integers(0, 7, (2000, 32, 32))
    pred = np.where(rng.random(true.shape) < 0.5, true, rng.integers(0, 9, true.shape))
    got = ari_fg(torch.as_tensor(true), torch.as_tensor(pred)).numpy()
    idx = rng.choice(len(true), 20, replace=False)
    np.testing.assert_allclose(got[idx], reference(true[idx], pred[idx]), atol=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match="same"):
        ari_fg(torch.zeros(2, 4, 4, dtype=torch.long), torch.zeros(2, 4, 5, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        ari_fg(torch.zeros(2, 4, 4), torch.zeros(2, 4, 4))
