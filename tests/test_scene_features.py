"""The blocks scene-feature Frechet distance, on sets whose answer is known."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sri.data.synthetic import render_blocks_variant
from sri.metrics.scene_features import MAX_BLOCKS, default_weights_path, load_scene_features, scene_targets, validate


def test_variants_change_exactly_what_they_say():
    plain = render_blocks_variant(200, 32, 5, "plain")
    floating = render_blocks_variant(200, 32, 5, "float", lift=2)
    missing = render_blocks_variant(200, 32, 5, "missing")
    multi = plain.num_objects >= 2
    # missing: one block fewer where there were two or more
    assert np.array_equal(missing.num_objects[multi], plain.num_objects[multi] - 1)
    # float: some lifted block's lowest row is now 2 rows above the top row of the block below
    for i in np.nonzero(multi)[0][:50]:
        m = floating.masks[i]
        rows = [np.nonzero((m == j).any(1))[0] for j in range(1, int(floating.num_objects[i]) + 1)]
        gaps = [lower.min() - upper.max() - 1 for lower, upper in zip(rows[:-1], rows[1:])]
        assert 2 in gaps and all(g in (0, 2) for g in gaps), gaps
    with pytest.raises(ValueError, match="variant"):
        render_blocks_variant(2, 32, 0, "upside-down")


def test_scene_targets_from_masks():
    img = np.zeros((1, 16, 16, 3), np.uint8)
    m = np.zeros((1, 16, 16), np.int64)
    m[0, 10:14, 4:8] = 1
    img[0, 10:14, 4:8] = (255, 0, 0)
    m[0, 6:10, 5:9] = 2
    count, blocks = scene_targets(img, m)
    assert count.tolist() == [2]
    assert blocks.shape == (1, MAX_BLOCKS, 8)
    assert torch.allclose(blocks[0, 0], torch.tensor([1, 10 / 16, 13 / 16, 4 / 16, 7 / 16, 1, 0, 0]))
    assert blocks[0, 1, 0] == 1 and blocks[0, 2:].abs().sum() == 0


@pytest.mark.skipif(not default_weights_path(32).is_file(), reason="scene-feature weights not trained")
@pytest.mark.parametrize("scale", [1.0, 1.6])
def test_shipped_extractor_separates_floating_and_missing_blocks(scale):
    res = validate(load_scene_features(32), num=500, object_scale=scale)
    assert res["identical"] < 1e-6
    assert res["count_accuracy"] > 0.95
    # the same distribution is close; a floating block or a missing one is clearly farther
    assert res["float"] > 3 * res["independent_real"]
    assert res["missing"] > 10 * res["independent_real"]
