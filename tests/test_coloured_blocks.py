"""`coloured_blocks`: the blocks of a segment map that are coloured in the image."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sri.data.synthetic import generate
from sri.metrics import coloured_blocks, count_blocks


@pytest.fixture(scope="module")
def scenes():
    images, masks, _ = generate("blocks", 40, 32, 3)
    imgs = torch.from_numpy(np.asarray(images)).permute(0, 3, 1, 2).float() / 255.0
    return imgs, torch.from_numpy(np.asarray(masks)).long()


def test_every_block_of_a_real_scene_is_coloured(scenes):
    imgs, masks = scenes
    assert torch.equal(coloured_blocks(imgs, masks), count_blocks(masks))


def test_a_grey_piece_of_wall_is_a_block_but_not_a_coloured_one(scenes):
    imgs, masks = scenes
    img, m = imgs[0].clone(), masks[0].clone()
    m[2:6, 2:6] = 50  # a separate segment in the wall, whose pixels stay the wall's grey
    n_mask = int(count_blocks(m[None])[0])
    assert n_mask == int(count_blocks(masks[:1])[0]) + 1
    assert int(coloured_blocks(img[None], m[None])[0]) == n_mask - 1
    img[:, 2:6, 2:6] = torch.tensor([0.9, 0.1, 0.1])[:, None, None]  # paint it red: now a visible block
    assert int(coloured_blocks(img[None], m[None])[0]) == n_mask


def test_matches_an_independent_count_on_label_maps_without_merges():
    # two separated squares and a grey one, on a grey background reaching every border
    img = torch.full((3, 32, 32), 0.5)
    lab = torch.zeros(32, 32, dtype=torch.long)
    for k, (r, c, col) in enumerate([(4, 4, (1.0, 0.0, 0.0)), (20, 20, (0.0, 0.0, 1.0)), (4, 20, (0.52, 0.5, 0.5))]):
        lab[r:r + 6, c:c + 6] = k + 1
        img[:, r:r + 6, c:c + 6] = torch.tensor(col)[:, None, None]
    colour = (img.max(0).values - img.min(0).values).numpy()
    want = sum(1 for k in (1, 2, 3) if colour[lab.numpy() == k].mean() >= 0.08)
    assert want == 2
    assert int(coloured_blocks(img[None], lab[None])[0]) == want
    assert int(count_blocks(lab[None])[0]) == 3
    with pytest.raises(ValueError, match="do not match"):
        coloured_blocks(img[None], lab[None, :16])
