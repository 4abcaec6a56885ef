"""The SRI assembly: Segregate (any segregation module), Relate (scene encoder), Imagine (ordered slots)."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from sri.matching import match
from sri.models.assembly import SlotModel
from sri.models.blocks import BroadcastDecoder
from sri.models.imagine import AutoregressivePosterior, AutoregressivePrior
from sri.models.outputs import ModelOutput, SampleOutput
from sri.models.relate import SceneEncoder
from sri.models.sampling import decode_sample, start_sampling
from sri.models.segregation import segregation_kl, segregation_nll
from sri.objectives import kl_normal, kl_std_normal

__all__ = ["SRI"]


def _gather_slots(x: Tensor, order: Tensor) -> Tensor:
    """x `[B, K, ...]` reordered so that position i holds x[:, order[:, i]]."""
    idx = order.view(*order.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:])
    return x.gather(1, idx)


class SRI(SlotModel):
    """The SRI model (paper Sections 3-4). Build it with `sri.models.build_model("sri", ...)`.

    The segregation module (GENESIS-v2's for `sri`) is trained by L_seg with its own independent
    N(0, I) slot prior; L_SRI trains relate and imagine; L_SRI sees detached slot samples/means (no gradient into
    the segregation VAE). With `shared_decoder=False` (the release) L_SRI and sampling use a second
    decoder of the same architecture; with True they use the segregation decoder (paper text).
    """

    def __init__(self, name: str, options: dict[str, Any], segregation: nn.Module) -> None:
        super().__init__(name, options, segregation)
        o = self.options
        D = segregation.latent_dim
        self.scene_encoder = (SceneEncoder(D, o["scene_dim"], o["relation_layers"])
                              if o["scene_variable"] else None)
        self.prior = AutoregressivePrior(D, o["scene_dim"], o["scene_variable"])
        self.posterior = AutoregressivePosterior(D, o["scene_dim"], o["scene_variable"])
        # the second decoder has the segregation decoder's architecture (the release's choice)
        if o["shared_decoder"]:
            self.sri_decoder = None
        else:
            made = segregation.make_decoder()
            self.sri_decoder = made if made is not None else BroadcastDecoder(o["image_size"], D)

    @property
    def decoder(self) -> nn.Module:
        """The decoder of L_SRI and of sampling."""
        return self.segregation.decoder if self.sri_decoder is None else self.sri_decoder

    def _scene(self, z_o: Tensor, params: dict[str, Tensor] | None = None) -> tuple[Tensor | None, Tensor]:
        """Sample s ~ q(s | z_o) and its KL to N(0, I) (zeros without a scene variable)."""
        if self.scene_encoder is None:
            return None, z_o.new_zeros(z_o.shape[0])
        s_mu, s_std = self.scene_encoder(z_o)
        s = s_mu + s_std * torch.randn_like(s_std)
        if params is not None:
            params.update(scene_mu=s_mu, scene_std=s_std)
        return s, kl_std_normal(s_mu, s_std)

    def _run(self, x: Tensor, normalized: bool | None = None, decode_seg: bool = True) -> ModelOutput:
        self._check_input(x)
        o = self.options
        B, K = x.shape[0], self.num_slots
        zeros = x.new_zeros(B)
        # 1. Segregate (trained by L_seg only)
        seg = self.segregation.encode(x)
        seg_kl = segregation_kl(seg)
        if decode_seg:
            seg_rgb, seg_logm = self.segregation.reconstruct(x, seg)
            seg_nll = segregation_nll(seg, self._nll(x, seg_logm, seg_rgb, normalized))
        # 2. Relate, on detached slot samples
        mu_o, z_o = seg.mu.detach(), seg.z.detach()
        params: dict[str, Tensor] = {}
        s, scene_kl = self._scene(z_o, params)
        # 3. Imagine: rollout, match, ordered posterior with correlated variances
        r_z = None
        if o["order_alignment"]:
            r_z, r_mu, r_std = self.prior.rollout(s, K, batch_size=B, like=x)
            order = match(o["matching"], r_mu, mu_o)
        else:
            order = torch.arange(K, device=x.device).repeat(B, 1)
        mu_hat = _gather_slots(mu_o, order)
        q_std = self.posterior(s, mu_hat)
        z_hat = mu_hat + q_std * torch.randn_like(q_std)
        p_mu, p_std = self.prior.teacher_forced(s, z_hat)
        slot_kl = kl_normal(mu_hat, q_std, p_mu, p_std).sum(1)
        if o["order_alignment"] and o["cross_order_kl"]:
            cross_kl = kl_normal(mu_hat, q_std, r_mu, r_std).sum(1)
        else:
            cross_kl = zeros
        rgb, logm = self.decoder.decode_slots(z_hat)
        sri_nll = self._nll(x, logm, rgb, normalized)
        masks = logm.exp()
        terms = {"seg_nll": seg_nll if decode_seg else zeros, "seg_kl": seg_kl, "sri_nll": sri_nll,
                 "scene_kl": scene_kl, "slot_kl": slot_kl, "cross_order_kl": cross_kl}
        return ModelOutput(
            terms=terms, recon=(masks * rgb).sum(1), masks=masks, order=order, slot_images=rgb,
            seg_recon=(seg_logm.exp() * seg_rgb).sum(1) if decode_seg else None,
            seg_masks=seg_logm.exp() if decode_seg else None, att_masks=seg.att_log_masks.exp(),
            extras={"z": z_hat, "mu": mu_hat, "seg_z": seg.z, "q_std": q_std, "prior_mu": p_mu,
                    "prior_std": p_std, **params,
                    **({"rollout_z": r_z, "rollout_mu": r_mu, "rollout_std": r_std}
                       if r_z is not None else {})})

    @torch.no_grad()
    def elbo_terms(self, x: Tensor, normalized: bool = True) -> dict[str, Tensor]:
        """-ELBO terms of L_SRI per image (no gradients): `nll, scene_kl, slot_kl, cross_order_kl`."""
        out = self._run(x, normalized=normalized, decode_seg=False)
        t = out.terms
        return {"nll": t["sri_nll"], "scene_kl": t["scene_kl"], "slot_kl": t["slot_kl"],
                "cross_order_kl": t["cross_order_kl"]}

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, num_slots: int | None = None,
               generator: torch.Generator | None = None) -> SampleOutput:
        """Unconditional scenes: s ~ N(0, tau^2 I), rollout of `num_slots` (default K) slots, decode."""
        K, ref, s = start_sampling(self, n, temperature, num_slots, generator)
        z, _, _ = self.prior.rollout(s, K, batch_size=n, temperature=temperature,
                                     generator=generator, like=ref)
        return decode_sample(self.decoder, z)

    @torch.no_grad()
    def imagine(self, x: Tensor, temperature: float = 1.0) -> SampleOutput:
        """Scene-conditional rollout from s ~ q(s | x) (Figure 15)."""
        self._check_input(x)
        seg = self.segregation.encode(x)
        s, _ = self._scene(seg.z)
        z, _, _ = self.prior.rollout(s, self.num_slots, batch_size=x.shape[0],
                                     temperature=temperature, like=x)
        return decode_sample(self.decoder, z)
