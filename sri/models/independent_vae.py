"""The independent-slot VAE assembly: a segregation module with a slot prior that is not autoregressive (EMORL).

The slot KL is the module's own (`Segregation.kl`, e.g. EMORL's hierarchical prior) or else the
single-sample KL of the slots to N(0, I) plus `extra_kl`; samples draw every slot from N(0, I).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from sri.models.outputs import ModelOutput, SampleOutput
from sri.models.sampling import sample_output, start_sampling
from sri.models.segregation import segregation_kl, segregation_nll
from sri.objectives import image_nll

__all__ = ["IndependentSlotVAE"]


class IndependentSlotVAE(nn.Module):
    """Segregation module + independent slot prior; one loss group ("seg"); generation order = slot index."""

    def __init__(self, name: str, options: dict[str, Any], segregation: nn.Module) -> None:
        super().__init__()
        self.name = name
        self.options = dict(options)
        o = self.options
        self.image_size = o["image_size"]
        self.num_slots = o["num_slots"]
        self.slot_dim = o["slot_dim"]
        self.segregation = segregation
        self.scene_encoder = None  # no scene variable (read by `start_sampling`)

    def set_training_step(self, step: int) -> None:
        """Tell the segregation module the training step (EMORL's refinement curriculum), if it has one."""
        setter = getattr(self.segregation, "set_training_step", None)
        if setter is not None:
            setter(step)

    def _check_input(self, x: Tensor) -> None:
        S = self.image_size
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] != S or x.shape[3] != S:
            raise ValueError(f"{self.name} expects images [B, 3, {S}, {S}] in [0, 1]; got "
                             f"{tuple(x.shape)} (build the model with image_size={x.shape[-1]} "
                             "or resize the data)")

    def _run(self, x: Tensor, normalized: bool | None = None) -> ModelOutput:
        self._check_input(x)
        o = self.options
        seg = self.segregation.encode(x)
        kl = segregation_kl(seg)
        rgb, logm = self.segregation.reconstruct(x, seg)
        norm = o["normalized"] if normalized is None else normalized
        nll = image_nll(x.float(), logm.float(), rgb.float(), o["pixel_std"], o["likelihood"], norm)
        nll = segregation_nll(seg, nll)
        masks = logm.exp()
        B, K = x.shape[0], self.num_slots
        return ModelOutput(terms={"seg_nll": nll, "seg_kl": kl}, recon=(masks * rgb).sum(1), masks=masks,
                           order=torch.arange(K, device=x.device).repeat(B, 1), slot_images=rgb,
                           att_masks=seg.att_log_masks.exp(),
                           extras={"z": seg.z, "mu": seg.mu, "std": seg.std, **seg.context})

    def forward(self, x: Tensor) -> ModelOutput:
        """Training pass on x `[B, 3, H, W]` in [0, 1]; terms `seg_nll`, `seg_kl`."""
        return self._run(x)

    @torch.no_grad()
    def elbo_terms(self, x: Tensor, normalized: bool = True) -> dict[str, Tensor]:
        """-ELBO terms per image (no gradients): `nll`, `kl`."""
        t = self._run(x, normalized=normalized).terms
        return {"nll": t["seg_nll"], "kl": t["seg_kl"]}

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, num_slots: int | None = None,
               generator: torch.Generator | None = None) -> SampleOutput:
        """Every slot from N(0, temperature^2 I), `num_slots` slots (default K), decoded."""
        K, ref, _ = start_sampling(self, n, temperature, num_slots, generator)
        z = torch.randn(n, K, self.segregation.latent_dim, device=ref.device, dtype=ref.dtype,
                        generator=generator) * temperature
        return sample_output(*self.segregation.generate(z, generator), z)
