"""Output containers of the models."""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

__all__ = ["ModelOutput", "SampleOutput"]


@dataclass
class ModelOutput:
    """Forward pass: per-image loss `terms` (name -> `[B]`), reconstruction and decoder masks.

    `recon [B,3,H,W]`, `masks [B,K,1,H,W]` and `slot_images [B,K,3,H,W]` come from the ordered
    posterior (SRI) or the only posterior (genv2); `order [B,K]` long holds at position i the
    segregation slot placed there. `seg_*` are the segregation VAE's own decoding (SRI only) and
    `att_masks` its IC-SM attention masks.
    """

    terms: dict[str, Tensor]
    recon: Tensor
    masks: Tensor
    order: Tensor
    slot_images: Tensor | None = None
    seg_recon: Tensor | None = None
    seg_masks: Tensor | None = None
    att_masks: Tensor | None = None
    extras: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class SampleOutput:
    """Generated scenes: `images [n,3,H,W]`, `masks [n,K,1,H,W]`, `slot_images [n,K,3,H,W]`, `z [n,K,D]`."""

    images: Tensor
    masks: Tensor
    slot_images: Tensor
    z: Tensor | None = None
