"""Learning metrics (sri.metrics.learning) and visible-object counting, on cases with known answers."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
from sklearn.metrics import adjusted_rand_score

from sri.data import build_dataset
from sri.metrics.learning import data_reference, mean_image, meets, reconstruction_metrics
from sri.metrics.stacks import count_blocks
from sri.models.outputs import ModelOutput


def _scenes(n: int = 24, size: int = 32):
    ds = build_dataset("blocks", None, "test", num=n, image_size=size)
    items = [ds[i] for i in range(n)]
    return (torch.stack([it["image"] for it in items]), torch.stack([it["mask"] for it in items]),
            torch.tensor([int(it["num_objects"]) for it in items]))


class _Fixed(nn.Module):
    """Returns given reconstructions and masks (by input identity) and constant loss terms."""

    def __init__(self, images, recon, masks, kl=3.0, seg_masks=None):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.images, self.recon, self.masks, self.kl, self.seg = images, recon, masks, kl, seg_masks

    def forward(self, x):
        idx = [int((self.images - xi).abs().flatten(1).sum(1).argmin()) for xi in x]
        B = x.shape[0]
        terms = {"seg_nll": torch.full((B,), 10.0), "seg_kl": torch.full((B,), self.kl)}
        seg = None if self.seg is None else self.seg[idx]
        return ModelOutput(terms=terms, recon=self.recon[idx], masks=self.masks[idx],
                           order=torch.zeros(B, 1, dtype=torch.long), seg_masks=seg)


def _onehot(labels: torch.Tensor, K: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, K).permute(0, 3, 1, 2).unsqueeze(2).float()


def test_count_blocks_matches_the_number_of_objects_of_true_scenes():
    _, masks, n = _scenes(100)
    assert torch.equal(count_blocks(masks), n)


def test_count_blocks_on_hand_made_maps():
    m = np.zeros((1, 32, 32), np.int64)
    m[0, 10:14, 4:10] = 1          # two separate squares
    m[0, 20:25, 20:26] = 2
    assert count_blocks(m).tolist() == [2]
    m[0, 30:32, 0:3] = 3           # a piece touching two borders is background, not a block
    assert count_blocks(m).tolist() == [2]
    assert count_blocks(np.zeros((1, 32, 32), np.int64)).tolist() == [0]


def test_reconstruction_metrics_perfect_model():
    x, masks, _ = _scenes(16)
    model = _Fixed(x, x.clone(), _onehot(masks, 6))
    res = reconstruction_metrics(model, x, masks, mean_image(x), batch_size=5)
    assert res["ari_fg"] == 1.0 and res["mse"] == 0.0 and res["mse_ratio"] == 0.0
    assert abs(res["kl"] - 3.0) < 1e-6 and abs(res["nll"] - 10.0) < 1e-6
    assert "ari_fg_ordered" not in res
    assert meets(res)


def test_reconstruction_metrics_mean_image_and_independent_ari():
    x, masks, _ = _scenes(16)
    base = mean_image(x)
    rng = np.random.default_rng(0)
    pred = torch.from_numpy(rng.integers(0, 4, masks.shape))
    # segregation masks random, ordered masks perfect
    model = _Fixed(x, base.expand_as(x).clone(), _onehot(masks, 6), seg_masks=_onehot(pred, 4))
    res = reconstruction_metrics(model, x, masks, base, batch_size=7)
    assert abs(res["mse_ratio"] - 1.0) < 1e-6
    assert abs(res["mse_baseline"] - float(((x - base) ** 2).mean())) < 1e-9
    want = np.mean([adjusted_rand_score(masks[i][masks[i] > 0].numpy(), pred[i][masks[i] > 0].numpy())
                    for i in range(len(x))])
    assert abs(res["ari_fg"] - want) < 1e-5
    assert res["ari_fg_ordered"] == 1.0
    assert not meets(res)


def test_data_reference_of_true_scenes():
    images, masks, n = _scenes(50)
    ref = data_reference(masks, images)
    assert ref["s_acc"] > 0.9
    assert abs(ref["visible_objects"] - n.float().mean().item()) < 1e-6
