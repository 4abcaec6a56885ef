"""GENESIS-v2 baseline with its autoregressive prior (optionally with a scene variable, Table 4)."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from sri.models.blocks import xavier_init
from sri.models.outputs import ModelOutput, SampleOutput
from sri.models.relate import SceneEncoder
from sri.models.sampling import decode_sample, start_sampling
from sri.models.segregation import GenesisV2Segregation
from sri.objectives import image_nll, kl_std_normal, normal_log_prob

__all__ = ["GenesisV2"]


class GenesisV2(nn.Module):
    """GENv2: segregation VAE with prior LSTM(D, 4D) + Linear(4D, 2D), tanh mean, std sigmoid(x+4)+1e-4.

    First slot prior N(0, I); with `scene_variable=True` the prior's first input is GELU(W_s s)
    with s ~ q(s | detached slot samples) from SRI's scene encoder, and sceneKL joins the KL.
    The slot KL is a single-sample Monte-Carlo estimate as in GENESIS-v2.
    """

    name = "genv2"

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__()
        self.options = dict(options)
        o = self.options
        self.image_size = o["image_size"]
        self.num_slots = o["num_slots"]
        self.slot_dim = o["slot_dim"]
        self.scene_dim = o["scene_dim"]
        D = o["slot_dim"]
        self.segregation = GenesisV2Segregation(o["image_size"], o["num_slots"], D)
        self.prior_lstm = nn.LSTM(D, 4 * D, batch_first=True)
        self.prior_linear = nn.Linear(4 * D, 2 * D)
        if o["scene_variable"]:
            self.scene_encoder = SceneEncoder(D, o["scene_dim"], o["relation_layers"])
            self.scene_proj = nn.Sequential(nn.Linear(o["scene_dim"], D), nn.GELU())
            xavier_init(self.scene_proj, 0.02)
        else:
            self.scene_encoder = None
            self.scene_proj = None

    def _check_input(self, x: Tensor) -> None:
        S = self.image_size
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] != S or x.shape[3] != S:
            raise ValueError(f"genv2 expects images [B, 3, {S}, {S}] in [0, 1]; got {tuple(x.shape)}")

    def _prior_params(self, h: Tensor) -> tuple[Tensor, Tensor]:
        a, b = self.prior_linear(h).float().chunk(2, dim=-1)
        return torch.tanh(a), torch.sigmoid(b + 4.0) + 1e-4

    def _prior(self, s: Tensor | None, z: Tensor) -> tuple[Tensor, Tensor]:
        """Teacher-forced prior (mean, std) `[B, K, D]` for posterior samples z."""
        B, K, D = z.shape
        if s is not None:
            out, _ = self.prior_lstm(torch.cat([self.scene_proj(s).unsqueeze(1), z[:, :-1]], 1))
            return self._prior_params(out)
        mu0, std0 = z.new_zeros(B, 1, D), z.new_ones(B, 1, D)
        if K == 1:
            return mu0, std0
        out, _ = self.prior_lstm(z[:, :-1])
        mu, std = self._prior_params(out)
        return torch.cat([mu0, mu], 1), torch.cat([std0, std], 1)

    def _run(self, x: Tensor, normalized: bool | None = None) -> ModelOutput:
        self._check_input(x)
        o = self.options
        seg = self.segregation.encode(x)
        s, scene_kl = None, x.new_zeros(x.shape[0])
        if self.scene_encoder is not None:
            s_mu, s_std = self.scene_encoder(seg.z.detach())
            s = s_mu + s_std * torch.randn_like(s_std)
            scene_kl = kl_std_normal(s_mu, s_std)
        p_mu, p_std = self._prior(s, seg.z)
        kl = (normal_log_prob(seg.z, seg.mu, seg.std) - normal_log_prob(seg.z, p_mu, p_std)).sum((1, 2))
        rgb, logm = self.segregation.decoder.decode_slots(seg.z)
        norm = o["normalized"] if normalized is None else normalized
        nll = image_nll(x.float(), logm.float(), rgb.float(), o["pixel_std"], o["likelihood"], norm)
        masks = logm.exp()
        B, K = x.shape[0], self.num_slots
        return ModelOutput(terms={"seg_nll": nll, "seg_kl": kl + scene_kl}, recon=(masks * rgb).sum(1),
                           masks=masks, order=torch.arange(K, device=x.device).repeat(B, 1),
                           slot_images=rgb, att_masks=seg.att_log_masks.exp(),
                           extras={"z": seg.z, "scene_kl": scene_kl})

    def forward(self, x: Tensor) -> ModelOutput:
        """Training pass; terms `seg_nll`, `seg_kl` (slot KL + sceneKL when enabled)."""
        return self._run(x)

    @torch.no_grad()
    def elbo_terms(self, x: Tensor, normalized: bool = True) -> dict[str, Tensor]:
        """-ELBO terms per image (no gradients): `nll`, `kl`."""
        t = self._run(x, normalized=normalized).terms
        return {"nll": t["seg_nll"], "kl": t["seg_kl"]}

    def _rollout(self, s: Tensor | None, n: int, K: int, temperature: float,
                 generator: torch.Generator | None, ref: Tensor) -> Tensor:
        D = self.slot_dim
        zs, state = [], None
        if s is not None:
            inp = self.scene_proj(s).unsqueeze(1)
        else:
            z = torch.randn(n, D, device=ref.device, dtype=ref.dtype, generator=generator) * temperature
            zs.append(z)
            inp = z.unsqueeze(1)
        while len(zs) < K:
            out, state = self.prior_lstm(inp, state)
            mu, std = self._prior_params(out[:, 0])
            z = mu + std * temperature * torch.randn(mu.shape, device=ref.device, dtype=ref.dtype,
                                                     generator=generator)
            zs.append(z)
            inp = z.unsqueeze(1)
        return torch.stack(zs, 1)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, num_slots: int | None = None,
               generator: torch.Generator | None = None) -> SampleOutput:
        """Prior samples (std times `temperature`), `num_slots` slots (default K), decoded."""
        K, ref, s = start_sampling(self, n, temperature, num_slots, generator)
        z = self._rollout(s, n, K, temperature, generator, ref)
        return decode_sample(self.segregation.decoder, z)

    @torch.no_grad()
    def imagine(self, x: Tensor, temperature: float = 1.0) -> SampleOutput:
        """Scene-conditional rollout from s ~ q(s | x); needs `scene_variable=True`."""
        if self.scene_encoder is None:
            raise NotImplementedError("imagine needs a scene variable: build genv2 with "
                                      "scene_variable=True, or use the 'sri' model")
        self._check_input(x)
        seg = self.segregation.encode(x)
        s_mu, s_std = self.scene_encoder(seg.z)
        s = s_mu + s_std * torch.randn_like(s_std)
        z = self._rollout(s, x.shape[0], self.num_slots, temperature, None, x)
        return decode_sample(self.segregation.decoder, z)
