"""What every model assembly shares: its name and options, the segregation module, the input check,
the training-step hook and the likelihood of decoded slots."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from sri.objectives import image_nll

__all__ = ["SlotModel"]


class SlotModel(nn.Module):
    """Base of the assemblies: `name`, `options` (rebuild with `build_model(name, **options)`),
    `segregation`, sizes, `_check_input`, `_nll`, `set_training_step`; subclasses define `_run`."""

    def __init__(self, name: str, options: dict[str, Any], segregation: nn.Module) -> None:
        super().__init__()
        self.name = name
        self.options = dict(options)
        o = self.options
        self.image_size = o["image_size"]
        self.num_slots = o["num_slots"]
        self.slot_dim = o["slot_dim"]
        self.scene_dim = o.get("scene_dim")
        self.segregation = segregation

    def set_training_step(self, step: int) -> None:
        """Tell the segregation module the training step (EMORL's refinement curriculum), if it has one."""
        self.segregation.set_training_step(step)

    def _check_input(self, x: Tensor) -> None:
        S = self.image_size
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] != S or x.shape[3] != S:
            raise ValueError(f"{self.name} expects images [B, 3, {S}, {S}] in [0, 1]; got "
                             f"{tuple(x.shape)} (build the model with image_size={x.shape[-1]} "
                             "or resize the data)")

    def _nll(self, x: Tensor, log_masks: Tensor, rgb: Tensor, normalized: bool | None = None) -> Tensor:
        """The image NLL `[B]` under the model's likelihood (float32 even under autocast)."""
        o = self.options
        norm = o["normalized"] if normalized is None else normalized
        return image_nll(x.float(), log_masks.float(), rgb.float(), o["pixel_std"], o["likelihood"], norm)

    def _run(self, x: Tensor, normalized: bool | None = None) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement _run(x, normalized) "
                                  f"(the assembly base class holds only what its models share)")

    def forward(self, x: Tensor) -> Any:
        """Training pass on x `[B, 3, H, W]` in [0, 1]: a `ModelOutput`."""
        return self._run(x)

    @torch.no_grad()
    def elbo_terms(self, x: Tensor, normalized: bool = True) -> dict[str, Tensor]:
        """-ELBO terms per image (no gradients): `nll`, `kl` (one loss group; SRI overrides)."""
        t = self._run(x, normalized=normalized).terms
        return {"nll": t["seg_nll"], "kl": t["seg_kl"]}
