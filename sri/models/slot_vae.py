"""The autoregressive slot VAE assembly: a segregation module + GENESIS's slot prior (GEN, GENv2).

With `scene_variable=True` (Table 4's "+ scene variable" rows) the prior's first input is
GELU(W_s s) with s ~ q(s | detached slot samples) from SRI's scene encoder, and sceneKL joins
the KL. Slot KLs are single-sample Monte-Carlo estimates as in GENESIS and GENESIS-v2.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from sri.models.assembly import SlotModel
from sri.models.genesis_prior import GenesisPrior
from sri.models.outputs import ModelOutput, SampleOutput
from sri.models.relate import SceneEncoder
from sri.models.sampling import sample_output, start_sampling
from sri.objectives import kl_std_normal, normal_log_prob

__all__ = ["AutoregressiveSlotVAE"]

# parameter names of the layout before the models became compositions (checkpoints still load)
_LEGACY_NAMES = (("prior_lstm.", "prior.lstm."), ("prior_linear.", "prior.linear."),
                 ("scene_proj.", "prior.proj."))


class AutoregressiveSlotVAE(SlotModel):
    """Segregation module + autoregressive prior over its slot latents; one loss group ("seg")."""

    def __init__(self, name: str, options: dict[str, Any], segregation: nn.Module) -> None:
        super().__init__(name, options, segregation)
        o = self.options
        D = segregation.latent_dim
        self.prior = GenesisPrior(D, o["scene_dim"] if o["scene_variable"] else None)
        self.scene_encoder = (SceneEncoder(D, o["scene_dim"], o["relation_layers"])
                              if o["scene_variable"] else None)
        self.register_load_state_dict_pre_hook(_rename_legacy)

    def _scene(self, z: Tensor) -> tuple[Tensor | None, Tensor]:
        if self.scene_encoder is None:
            return None, z.new_zeros(z.shape[0])
        s_mu, s_std = self.scene_encoder(z)
        s = s_mu + s_std * torch.randn_like(s_std)
        return s, kl_std_normal(s_mu, s_std)

    def _run(self, x: Tensor, normalized: bool | None = None) -> ModelOutput:
        self._check_input(x)
        seg = self.segregation.encode(x)
        s, scene_kl = self._scene(seg.z.detach())
        p_mu, p_std = self.prior.teacher_forced(s, seg.z)
        kl = (normal_log_prob(seg.z, seg.mu, seg.std) - normal_log_prob(seg.z, p_mu, p_std)).sum((1, 2))
        if seg.extra_kl is not None:
            kl = kl + seg.extra_kl
        rgb, logm = self.segregation.reconstruct(x, seg)
        nll = self._nll(x, logm, rgb, normalized)
        masks = logm.exp()
        B, K = x.shape[0], self.num_slots
        return ModelOutput(terms={"seg_nll": nll, "seg_kl": kl + scene_kl}, recon=(masks * rgb).sum(1),
                           masks=masks, order=torch.arange(K, device=x.device).repeat(B, 1),
                           slot_images=rgb, att_masks=seg.att_log_masks.exp(),
                           extras={"z": seg.z, "scene_kl": scene_kl, "prior_mu": p_mu, "prior_std": p_std,
                                   "mu": seg.mu, "std": seg.std})

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, num_slots: int | None = None,
               generator: torch.Generator | None = None) -> SampleOutput:
        """Prior samples (std times `temperature`), `num_slots` slots (default K), decoded."""
        K, ref, s = start_sampling(self, n, temperature, num_slots, generator)
        z = self.prior.rollout(s, n, K, temperature, generator, ref)
        return sample_output(*self.segregation.generate(z, generator), z)

    @torch.no_grad()
    def imagine(self, x: Tensor, temperature: float = 1.0) -> SampleOutput:
        """Scene-conditional rollout from s ~ q(s | x); needs `scene_variable=True`."""
        if self.scene_encoder is None:
            raise NotImplementedError(f"imagine needs a scene variable: build {self.name} with "
                                      "scene_variable=True, or use the 'sri' model")
        self._check_input(x)
        seg = self.segregation.encode(x)
        s, _ = self._scene(seg.z)
        z = self.prior.rollout(s, x.shape[0], self.num_slots, temperature, None, x)
        return sample_output(*self.segregation.generate(z), z)


def _rename_legacy(module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    for key in list(state_dict):
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix):]
        for old, new in _LEGACY_NAMES:
            if rest.startswith(old):
                state_dict[prefix + new + rest[len(old):]] = state_dict.pop(key)
                break
