"""GENESIS-v2 segregation VAE: UNet + IC-SM masks + slot posterior heads + broadcast decoder."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from sri.models.blocks import BroadcastDecoder, ConvGNReLU, InstanceColouringSBP, UNet

__all__ = ["GenesisV2Segregation", "Segregation"]


@dataclass
class Segregation:
    """Segregation pass: attention log-masks, slot posterior (randomly ordered) and samples."""

    att_log_masks: Tensor  # [B, K, 1, H, W]
    mu: Tensor  # [B, K, D]
    std: Tensor  # [B, K, D]
    z: Tensor  # [B, K, D]


class GenesisV2Segregation(nn.Module):
    """The independent-slot GENESIS-v2 encoder and its spatial broadcast decoder."""

    def __init__(self, image_size: int, num_slots: int, slot_dim: int = 64) -> None:
        super().__init__()
        self.image_size = image_size
        self.num_slots = num_slots
        self.slot_dim = slot_dim
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
        feats = self.feat_head(enc)  # computed once per image, not once per slot
        masks = log_m.exp().flatten(2)  # [B, K, HW]
        pooled = torch.bmm(masks, feats.flatten(2).transpose(1, 2))  # [B, K, 2D]
        pooled = pooled / (masks.sum(-1, keepdim=True) + 1e-5)
        mu, s = self.z_head(pooled).chunk(2, dim=-1)
        std = F.softplus(s + 0.5) + 1e-8
        z = mu + std * torch.randn_like(std)
        return Segregation(log_m, mu, std, z)
