"""Order consistency: how consistently a generative slot model uses each slot index for one role.

Figure 4 of the paper claims SRI generates objects in a consistent order (e.g. slot 1 is always
the background) while GENv2 does not. Given the masks of many samples in generation order, each
pixel is assigned to its argmax slot; per sample the *background* is the slot with the largest
area (ties: lowest index) and every other slot covering at least `min_area` of the image is a
*foreground* segment. Returned numbers (all in [0, 1]):

- `order_consistency`: share of samples whose background is in the modal background slot
  (about 1/K for a random order, 1 for a fixed background slot);
- `background_slot_entropy`: entropy of the background slot index / log K (0 = always the same slot);
- `foreground_slot_entropy`: entropy of the slot indices of all foreground segments / log K;
- `role_consistency`: over slot indices, the share of a slot's non-empty uses that are in its
  modal role (background or foreground), weighted by how often the slot is used.
"""
from __future__ import annotations

import math

import torch

__all__ = ["order_consistency", "order_consistency_from_model", "slot_roles"]

EMPTY, BACKGROUND, FOREGROUND = 0, 1, 2


def _as_masks(masks: torch.Tensor) -> torch.Tensor:
    if not isinstance(masks, torch.Tensor):
        masks = torch.as_tensor(masks)
    if masks.dim() == 5:
        if masks.shape[2] != 1:
            raise ValueError(f"masks must be [N,K,1,H,W]; got {tuple(masks.shape)} (dim 2 must be 1)")
        masks = masks[:, :, 0]
    if masks.dim() != 4:
        raise ValueError(f"masks must be [N,K,1,H,W] or [N,K,H,W]; got {tuple(masks.shape)}")
    if masks.shape[0] == 0 or masks.shape[1] < 2:
        raise ValueError(f"need at least one sample and two slots; got {tuple(masks.shape)}")
    return masks


def slot_roles(masks: torch.Tensor, min_area: float = 0.005) -> torch.Tensor:
    """Role of each slot in each sample, `[N, K]` long: 0 empty, 1 background, 2 foreground.

    `masks` is `[N,K,1,H,W]` (or `[N,K,H,W]`), slot dimension in generation order.
    """
    masks = _as_masks(masks)
    n, k, h, w = masks.shape
    hard = masks.argmax(dim=1)  # [N,H,W]
    area = torch.stack([(hard == j).sum(dim=(1, 2)) for j in range(k)], dim=1).double() / (h * w)
    # argmax returns the first maximum: ties go to the lowest slot index.
    background = area.argmax(dim=1)
    roles = torch.where(area >= min_area, FOREGROUND, EMPTY).long()
    roles[torch.arange(n), background] = BACKGROUND
    return roles


def _normalised_entropy(counts: torch.Tensor) -> float:
    total = counts.sum()
    if total <= 0:
        return float("nan")
    p = counts.double() / total
    p = p[p > 0]
    return float(-(p * p.log()).sum() / math.log(counts.numel()))


def order_consistency(masks: torch.Tensor, min_area: float = 0.005) -> dict[str, float]:
    """Order-consistency statistics of generated masks `[N,K,1,H,W]` (see module docstring)."""
    roles = slot_roles(masks, min_area=min_area)
    n, k = roles.shape
    bg_slot = (roles == BACKGROUND).long().argmax(dim=1)
    bg_counts = torch.bincount(bg_slot, minlength=k)
    fg_counts = (roles == FOREGROUND).sum(dim=0)
    used_bg = (roles == BACKGROUND).sum(dim=0)
    used = used_bg + fg_counts
    return {
        "order_consistency": float(bg_counts.max()) / n,
        "background_slot_entropy": _normalised_entropy(bg_counts),
        "foreground_slot_entropy": _normalised_entropy(fg_counts),
        "role_consistency": float(torch.maximum(used_bg, fg_counts).sum()) / float(used.sum()),
        "num_samples": float(n),
    }


@torch.no_grad()
def order_consistency_from_model(model: torch.nn.Module, *, num_samples: int = 256,
                                 batch_size: int = 64, seed: int = 0, temperature: float = 1.0,
                                 device: torch.device | str | None = None,
                                 min_area: float = 0.005) -> dict[str, float]:
    """Sample `num_samples` scenes with `model.sample` and score them (deterministic given
    `seed` and `batch_size`: the generator stream is consumed batch by batch)."""
    if not hasattr(model, "sample"):
        raise TypeError(f"{type(model).__name__} has no sample(): order consistency needs a "
                        f"generative (autoregressive) slot model")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed))
    was_training = model.training
    model.eval()
    chunks = []
    try:
        done = 0
        while done < num_samples:
            b = min(batch_size, num_samples - done)
            out = model.sample(b, temperature=temperature, generator=generator)
            chunks.append(out.masks.float().cpu())
            done += b
    finally:
        model.train(was_training)
    return order_consistency(torch.cat(chunks), min_area=min_area)
