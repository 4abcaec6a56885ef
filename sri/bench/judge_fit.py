"""`python -m sri.bench judge-check fit`: fit the learned S-Acc judge on the dev part of eye labels.

Training data: the pooled generated samples whose label (in `--labels`) is plausible or implausible
and whose id is in the `dev` part (`judge_pool.split_of`; the held-out third is never read), plus
scenes whose answer is known by construction (`anchors`: `--real` real `blocks` training scenes,
plausible, and the same scenes with a block floating), which anchor the judge where labels are few.
Writes the trees and how they were fit (labels file and a digest of the labels used, counts, 5-fold
dev cross-validation, command, commit) as one JSON file.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sri.bench.judge_pool import load_pool, read_labels, split_of

ANCHOR_KINDS = ("real", "lifted", "lifted_1_row", "faint_piece")


def _faint_piece(img: torch.Tensor, mask: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """`img` with a pale copy of one of its blocks' colours painted on the wall, apart from the tower."""
    out = img.clone()
    H, W = mask.shape
    h, w = int(rng.integers(2, 4)), int(rng.integers(3, 7))
    free = [(r, c) for r in range(1, H // 2 - h) for c in range(1, W - w - 1)
            if not mask[max(r - 2, 0):r + h + 2, max(c - 2, 0):c + w + 2].any()]
    if not free:
        return out
    r, c = free[int(rng.integers(len(free)))]
    blocks = [int(v) for v in torch.unique(mask) if int(v) != 0]
    colour = img[:, mask == blocks[int(rng.integers(len(blocks)))]].mean(1)
    alpha = float(rng.uniform(0.25, 0.6))
    out[:, r:r + h, c:c + w] = (1 - alpha) * out[:, r:r + h, c:c + w] + alpha * colour[:, None, None]
    return out


def anchors(num: int, image_size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Scenes whose answer is known by construction, `num` of each kind in `ANCHOR_KINDS`: real
    `blocks` training scenes (object scale 1.6; plausible), the same with the top block lifted by
    max(3, H // 8) rows or by one row (a gap of background: floating), and with a pale piece of a
    block's colour on the wall (floating under the strict reading). -> (images, plausible, kinds)."""
    from sri.data import build_dataset
    from sri.metrics.stacks import lift_top_block_image

    ds = build_dataset("blocks", None, "train", num=num, image_size=image_size, object_scale=1.6, seed=seed)
    imgs = torch.stack([ds[i]["image"] for i in range(len(ds))])
    masks = torch.stack([ds[i]["mask"] for i in range(len(ds))])
    many = torch.tensor([len(torch.unique(m)) > 2 for m in masks])  # a lift needs a block under it
    rng = np.random.default_rng(seed)
    parts = {"real": imgs, "lifted": lift_top_block_image(imgs[many], masks[many]),
             "lifted_1_row": lift_top_block_image(imgs[many], masks[many], lift=1),
             "faint_piece": torch.stack([_faint_piece(im, m, rng) for im, m in zip(imgs, masks)])}
    kinds = [k for k in ANCHOR_KINDS for _ in range(len(parts[k]))]
    return (torch.cat([parts[k] for k in ANCHOR_KINDS]).numpy(), np.array([k == "real" for k in kinds]), kinds)


def dev_cv(x: np.ndarray, y: np.ndarray, extra_x: np.ndarray, extra_y: np.ndarray) -> list[float]:
    """5-fold cross-validated accuracy on the labelled part, the anchors in every training fold."""
    from sklearn.model_selection import StratifiedKFold

    from sri.metrics.learned_judge import fit_judge, judge_probability, one_mass

    acc = []
    for tr, va in StratifiedKFold(5, shuffle=True, random_state=0).split(x, y):
        w = fit_judge(np.concatenate([x[tr], extra_x]), np.r_[y[tr], extra_y])
        acc.append(float(((one_mass(x[va]) & (judge_probability(x[va], w) > 0.5)) == y[va]).mean()))
    return acc


def labels_digest(labels: dict[int, int], last_id: int) -> str:
    """SHA-256 of the sorted `id,label` rows with id <= `last_id`: what the judge was fit on, unchanged
    when later pools add labels of higher ids (a fresh check of the fitted judge)."""
    rows = "\n".join(f"{i},{v}" for i, v in sorted(labels.items()) if i <= last_id)
    return hashlib.sha256(rows.encode()).hexdigest()


def fit_from_labels(folder: Path, labels: Path, out: Path, *, real: int = 200,
                    command: str = "") -> dict[str, Any]:
    """Fit the judge on the dev part of `labels` over the pools in `folder`; write and return the JSON."""
    import json

    from sri.metrics.judge_features import scene_features
    from sri.metrics.learned_judge import fit_judge
    from sri.provenance import provenance

    pool = load_pool(folder)
    lab = read_labels(labels)
    ids = pool["ids"]
    dev = np.array([lab.get(int(i), -1) >= 0 and split_of(int(i)) == "dev" for i in ids])
    if dev.sum() < 20:
        raise SystemExit(f"judge-check fit: only {int(dev.sum())} labelled dev samples in {labels}; label more "
                         f"(`judge-check make-pool`, then id,label rows) before fitting")
    size = int(pool["images"].shape[-1])
    x = scene_features(pool["images"][dev].astype(np.float32) / 255)
    y = np.array([lab[int(i)] == 1 for i in ids[dev]])
    if real:
        a_imgs, extra_y, kinds = anchors(real, size)
        extra_x = scene_features(a_imgs)
    else:
        extra_x, extra_y, kinds = np.zeros((0, x.shape[1]), np.float32), np.zeros(0, bool), []
    cv = dev_cv(x, y, extra_x, extra_y)
    weights = fit_judge(np.concatenate([x, extra_x]), np.r_[y, extra_y])
    res = {**provenance(command), "image_size": size, **weights,
           "fit_on": {"labels": labels.name, "labels_digest": labels_digest(lab, int(ids.max())),
                      "dev_samples": int(dev.sum()), "dev_plausible": int(y.sum()),
                      "anchors": {k: kinds.count(k) for k in dict.fromkeys(kinds)},
                      "ids": [int(ids.min()), int(ids.max())]},
           "dev_cv_accuracy": float(np.mean(cv)), "dev_cv_folds": cv}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, separators=(",", ":")))
    return res
