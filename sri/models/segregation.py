"""Segregation modules: the common pass record and GENESIS-v2's (UNet + IC-SM + broadcast decoder).

A segregation module turns an image into K randomly ordered slots and decodes slots to images. It
has `image_size`, `num_slots`, `latent_dim` (the size of the slot latent a prior models) and
`decoder`, and three methods: `encode(x) -> Segregation`, `reconstruct(x, seg)` (decoding of the
posterior pass) and `generate(z, generator)` (decoding of prior samples), both returning
(slot rgb `[B, K, 3, H, W]`, log-masks `[B, K, 1, H, W]` that exponentiate to a softmax over K).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from sri.models.blocks import BroadcastDecoder, ConvGNReLU, InstanceColouringSBP, UNet
from sri.objectives import mc_kl_normal

__all__ = ["GenesisV2Segregation", "Segregation", "SegregationModule", "segregation_kl", "segregation_nll"]


@dataclass
class Segregation:
    """Segregation pass: attention log-masks, slot posterior (randomly ordered) and samples.

    `extra_kl [B]` holds the module's own KL terms for latents the slot prior does not model (e.g.
    GENESIS's component latents); `context` what `reconstruct` needs beyond z.
    A module with its own slot prior (EMORL's hierarchical prior) sets `kl [B]`, its whole KL, which
    an assembly with an independent slot prior uses instead of the single-sample KL of z to N(0, I)
    plus `extra_kl`. `aux_nll [B]` (training only, value 0) carries the gradient of the module's
    other reconstruction losses (EMORL's weighted refinement iterations); assemblies add it to the
    NLL they compute from `reconstruct`.
    """

    att_log_masks: Tensor  # [B, K, 1, H, W]
    mu: Tensor  # [B, K, D]
    std: Tensor  # [B, K, D]
    z: Tensor  # [B, K, D]
    extra_kl: Tensor | None = None  # [B]
    kl: Tensor | None = None  # [B]
    aux_nll: Tensor | None = None  # [B]
    context: dict[str, Tensor] = field(default_factory=dict)


def segregation_kl(seg: Segregation) -> Tensor:
    """Slot KL `[B]` of a pass under an independent slot prior: the module's own `kl`, else the
    single-sample KL of z to N(0, I) plus `extra_kl`."""
    if seg.kl is not None:
        return seg.kl
    kl = mc_kl_normal(seg.z, seg.mu, seg.std).sum(1)
    return kl if seg.extra_kl is None else kl + seg.extra_kl


def segregation_nll(seg: Segregation, nll: Tensor) -> Tensor:
    """An assembly's NLL `[B]` of `reconstruct` plus the module's zero-valued `aux_nll` surrogate."""
    return nll if seg.aux_nll is None else nll + seg.aux_nll


class SegregationModule(nn.Module):
    """The contract every segregation module keeps (the module docstring): `image_size`, `num_slots`,
    `latent_dim`, `encode`; `reconstruct` and `generate` decode slot latents with `decoder` unless a
    module overrides both (GENESIS's has a mask and a component decoder instead of one `decoder`);
    `make_decoder` gives SRI's second decoder (None: the standard
    broadcast decoder); `set_training_step` tells a module with a curriculum the step."""

    image_size: int
    num_slots: int
    latent_dim: int
    decoder: nn.Module

    def encode(self, x: Tensor) -> Segregation:
        """Image `[B, 3, H, W]` -> the posterior pass (`Segregation`)."""
        raise NotImplementedError(f"{type(self).__name__} must implement encode(x) -> Segregation "
                                  f"(SegregationModule is the contract, not a module)")

    def reconstruct(self, x: Tensor, seg: Segregation) -> tuple[Tensor, Tensor]:
        """Decode the posterior samples: (rgb `[B, K, 3, H, W]`, log-masks `[B, K, 1, H, W]`)."""
        return self.decoder.decode_slots(seg.z)

    def generate(self, z: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Decode prior samples z `[B, K, D]` (deterministic unless a module overrides it)."""
        return self.decoder.decode_slots(z)

    def make_decoder(self) -> nn.Module | None:
        """A new decoder of this module's architecture for SRI's L_SRI (None: the standard one)."""
        return None

    def set_training_step(self, step: int) -> None:
        """The training step, for modules with a curriculum (none by default)."""


class GenesisV2Segregation(SegregationModule):
    """The independent-slot GENESIS-v2 encoder and its spatial broadcast decoder."""

    def __init__(self, image_size: int, num_slots: int, slot_dim: int = 64) -> None:
        super().__init__()
        self.image_size = image_size
        self.num_slots = num_slots
        self.slot_dim = slot_dim
        self.latent_dim = slot_dim
        self.encoder = UNet(image_size, 3, filters=min(slot_dim, 64))
        feat = self.encoder.out_channels
        self.att_process = InstanceColouringSBP(image_size, num_slots, feat_dim=feat)
        self.seg_head = ConvGNReLU(feat, feat, 3, 1, 1)
        self.feat_head = nn.Sequential(ConvGNReLU(feat, feat, 3, 1, 1), nn.Conv2d(feat, 2 * slot_dim, 1))
        self.z_head = nn.Sequential(nn.LayerNorm(2 * slot_dim), nn.Linear(2 * slot_dim, 2 * slot_dim),
                                    nn.ReLU(inplace=True), nn.Linear(2 * slot_dim, 2 * slot_dim))
        self.decoder = BroadcastDecoder(image_size, slot_dim)

    def encode(self, x: Tensor) -> Segregation:
        """Masks via IC-SM, slot features pooled under each mask, posterior N(mu, std) and a sample."""
        enc = F.relu(self.encoder(x))
        log_m = self.att_process(self.seg_head(enc))  # [B, K, 1, H, W]
        # feat_head = ConvGNReLU + Conv1x1. The Conv1x1 is linear and so is the mask pooling, so
        # pool the 64-d features first and apply the 1x1 conv to the K pooled vectors (exact, and
        # once per image where the release ran the whole head once per slot).
        feats = self.feat_head[0](enc).flatten(2)  # [B, C, HW]
        masks = log_m.exp().flatten(2)  # [B, K, HW]
        msum = masks.sum(-1, keepdim=True)  # [B, K, 1]
        conv = self.feat_head[1]
        pooled = torch.bmm(masks, feats.transpose(1, 2))  # [B, K, C]
        pooled = pooled @ conv.weight.flatten(1).t() + msum * conv.bias
        pooled = pooled / (msum + 1e-5)  # [B, K, 2D]
        # contiguous copies, not chunk views: views returned from a torch.compile'd graph and
        # detached later trip AOT autograd's view replay ("shape ... is invalid for input")
        mu, s = (t.contiguous() for t in self.z_head(pooled).float().chunk(2, dim=-1))
        std = F.softplus(s + 0.5) + 1e-8
        z = mu + std * torch.randn_like(std)
        return Segregation(log_m, mu, std, z)
