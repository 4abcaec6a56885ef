"""The independent-slot VAE assembly: a segregation module with a slot prior that is not autoregressive (EMORL).

The slot KL is the module's own (`Segregation.kl`, e.g. EMORL's hierarchical prior) or else the
single-sample KL of the slots to N(0, I) plus `extra_kl`; samples draw every slot from N(0, I).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from sri.models.assembly import SlotModel
from sri.models.outputs import ModelOutput, SampleOutput
from sri.models.sampling import sample_output, start_sampling
from sri.models.segregation import segregation_kl, segregation_nll

__all__ = ["IndependentSlotVAE"]


class IndependentSlotVAE(SlotModel):
    """Segregation module + independent slot prior; one loss group ("seg"); generation order = slot index."""

    def __init__(self, name: str, options: dict[str, Any], segregation: nn.Module) -> None:
        super().__init__(name, options, segregation)
        self.scene_encoder = None  # no scene variable (read by `start_sampling`)

    def _run(self, x: Tensor, normalized: bool | None = None) -> ModelOutput:
        self._check_input(x)
        seg = self.segregation.encode(x)
        kl = segregation_kl(seg)
        rgb, logm = self.segregation.reconstruct(x, seg)
        nll = segregation_nll(seg, self._nll(x, logm, rgb, normalized))
        masks = logm.exp()
        B, K = x.shape[0], self.num_slots
        return ModelOutput(terms={"seg_nll": nll, "seg_kl": kl}, recon=(masks * rgb).sum(1), masks=masks,
                           order=torch.arange(K, device=x.device).repeat(B, 1), slot_images=rgb,
                           att_masks=seg.att_log_masks.exp(),
                           extras={"z": seg.z, "mu": seg.mu, "std": seg.std, **seg.context})

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, num_slots: int | None = None,
               generator: torch.Generator | None = None) -> SampleOutput:
        """Every slot from N(0, temperature^2 I), `num_slots` slots (default K), decoded."""
        K, ref, _ = start_sampling(self, n, temperature, num_slots, generator)
        z = torch.randn(n, K, self.segregation.latent_dim, device=ref.device, dtype=ref.dtype,
                        generator=generator) * temperature
        return sample_output(*self.segregation.generate(z, generator), z)
