"""Synthetic `blocks` / `shapes`: determinism, masks match pixels, plausible towers, on-the-fly datasets."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sri.data import build_dataset
from sri.data.synthetic import generate, render_blocks, render_shapes, split_seed


@pytest.fixture(scope="module")
def blocks():
    out = {(S, 1.0): render_blocks(300, S, seed=7) for S in (32, 64, 96)}
    out.update({(S, 1.6): generate("blocks", 300, S, seed=7, object_scale=1.6) for S in (32, 64)})
    return out


def test_determinism_and_prefix_property():
    for name in ("blocks", "shapes"):
        a, b = generate(name, 40, 64, 3), generate(name, 40, 64, 3)
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
        c = generate(name, 40, 64, 4)
        assert not np.array_equal(a.images, c.images)
        # scene i does not depend on how many are generated, nor on where a run starts
        long = generate(name, 1005, 64, 3)
        np.testing.assert_array_equal(long.images[:40], a.images)
        part = generate(name, 10, 64, 3, start=995)
        np.testing.assert_array_equal(part.masks, long.masks[995:1005])
        assert a.images.dtype == np.uint8 and a.images.shape == (40, 64, 64, 3)
        assert a.masks.dtype == np.uint8 and a.masks.shape == (40, 64, 64) and a.num_objects.shape == (40,)


def _bottom_top(mask: np.ndarray, k: int) -> tuple[int, int]:
    rows = np.flatnonzero((mask == k).any(1))
    return rows.max(), rows.min()


def _floor_row(image: np.ndarray) -> int:
    """Row where the floor starts: the largest colour jump down the first image column."""
    col = image[:, 0].astype(np.int64)
    return int(np.abs(np.diff(col, axis=0)).sum(1).argmax()) + 1


@pytest.mark.parametrize("S,scale", [(32, 1.0), (64, 1.0), (96, 1.0), (32, 1.6), (64, 1.6)])
def test_blocks_are_plausible_stacks(blocks, S, scale):
    sc = blocks[(S, scale)]
    assert set(np.unique(sc.num_objects)) == {2, 3, 4, 5}
    for img, m, n in zip(sc.images, sc.masks, sc.num_objects):
        assert set(np.unique(m)) == set(range(n + 1))  # labels 0..n, all blocks visible
        assert (m[:, 0] == 0).all() and (m[:, -1] == 0).all() and (m[0] == 0).all()
        for k in range(1, n + 1):
            bottom, top = _bottom_top(m, k)
            # solid: every row of the block is one run of pixels, and no row is missing
            for r in range(top, bottom + 1):
                cols = np.flatnonzero(m[r] == k)
                assert cols.size and cols[-1] - cols[0] + 1 == cols.size
            bottom_cols = np.flatnonzero(m[bottom] == k)
            if k == 1:
                # the bottom block touches the floor: background floor pixels right below it
                assert bottom + 1 < S and bottom + 1 >= _floor_row(img)
                assert (m[bottom + 1, bottom_cols] == 0).all()
            else:
                below_bottom, below_top = _bottom_top(m, k - 1)
                assert bottom + 1 == below_top  # resting on the block below, adjacent rows
                assert (m[bottom + 1, bottom_cols] == k - 1).any()
                assert top < below_top  # ordered bottom to top


def _chroma(px: np.ndarray) -> np.ndarray:
    px = px.astype(np.float64)
    return px / np.maximum(px.sum(-1, keepdims=True), 1)


@pytest.mark.parametrize("name", ["blocks", "shapes"])
def test_masks_match_pixels(name):
    sc = generate(name, 200, 64, 11)
    for img, m in zip(sc.images, sc.masks):
        px = img.reshape(-1, 3).astype(np.float64)
        lab = m.reshape(-1)
        sat = (px.max(1) - px.min(1)) / np.maximum(px.max(1), 1)
        assert sat[lab == 0].max() < 0.3  # background: muted colours
        assert sat[lab > 0].min() > 0.45  # objects: saturated colours
        for k in np.unique(lab[lab > 0]):
            ch = _chroma(px[lab == k])
            # one object = one hue under multiplicative shading
            assert np.abs(ch - np.median(ch, 0)).max() < 0.06


def test_shapes_labels_and_painters_order():
    sc = render_shapes(300, 64, seed=5)
    touching = 0
    for m, n in zip(sc.masks, sc.num_objects):
        assert set(np.unique(m)) == set(range(n + 1))
        # labels follow drawing order, far to near: the last-drawn object is never occluded,
        # so its lowest visible row (its floor contact) is the lowest of all objects
        lowest = [np.flatnonzero((m == k).any(1)).max() for k in range(1, n + 1)]
        assert lowest[-1] == max(lowest)
        # occlusion: two different objects share a boundary
        a, b = m[:, :-1], m[:, 1:]
        touching += bool(((a != b) & (a > 0) & (b > 0)).any())
    assert sc.num_objects.max() <= 6 and (sc.num_objects >= 3).mean() > 0.9
    assert touching > 30


def test_build_dataset_on_the_fly_uses_split_seeds():
    tr = build_dataset("blocks", None, "train", num=20, image_size=32, seed=1)
    va = build_dataset("blocks", None, "val", num=20, image_size=32, seed=1)
    assert len(tr) == 20
    item = tr[3]
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0
    assert item["mask"].dtype == torch.long and item["mask"].shape == (32, 32)
    assert int(item["mask"].max()) == item["num_objects"]
    ref = generate("blocks", 20, 32, split_seed(1, "train"))
    np.testing.assert_array_equal((item["image"] * 255).round().byte().permute(1, 2, 0).numpy(), ref.images[3])
    assert not torch.equal(tr[0]["image"], va[0]["image"])
    assert len({split_seed(0, s) for s in ("train", "val", "test")}) == 3
    with pytest.raises(ValueError):
        split_seed(0, "dev")
    s = build_dataset("shapes", None, "test", num=5)
    assert s[0]["image"].shape == (3, 64, 64)


def test_object_scale_enlarges_blocks_only_where_asked():
    base = generate("blocks", 200, 32, 3)
    np.testing.assert_array_equal(generate("blocks", 200, 32, 3, object_scale=1.0).images, base.images)
    big = generate("blocks", 200, 32, 3, object_scale=1.6)
    assert (big.masks > 0).mean() > 1.8 * (base.masks > 0).mean()
    np.testing.assert_array_equal(big.num_objects, base.num_objects)
    ds = build_dataset("blocks", None, "test", num=4, image_size=32, object_scale=1.6)
    assert torch.equal(ds[0]["mask"], torch.from_numpy(generate("blocks", 4, 32, split_seed(0, "test"),
                                                                 object_scale=1.6).masks[0]).long())
    with pytest.raises(ValueError, match="blocks dataset only"):
        generate("shapes", 4, 32, 0, object_scale=1.6)
