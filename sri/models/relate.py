"""Relate stage: permutation-invariant scene encoder f_phi (residual relation attention + sum pooling)."""
from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from sri.models.blocks import xavier_init
from sri.objectives import softplus_std

__all__ = ["RelationAttention", "SceneEncoder"]


class RelationAttention(nn.Module):
    """x_i <- x_i + MLP(LN(x_i + sum_j a_ij v_ij)), a = softmax_j(q_i.k_j / sqrt(D)), v_ij = MLP([x_i; x_i - x_j])."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = dim ** -0.5
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU(), nn.Linear(dim, dim))
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        """x `[B, K, D]` -> `[B, K, D]`."""
        D = x.shape[-1]
        attn = torch.softmax((self.q(x) * self.scale) @ self.k(x).transpose(1, 2), dim=-1)  # [B,K,K]
        # first value layer on [x_i; x_i - x_j] = (W1 + W2) x_i - W2 x_j + b, without the K^2 concat
        w1, w2 = self.v[0].weight[:, :D], self.v[0].weight[:, D:]
        a_i = x @ (w1 + w2).t() + self.v[0].bias
        c_j = x @ w2.t()
        v = self.v[2](self.v[1](a_i.unsqueeze(2) - c_j.unsqueeze(1)))  # [B,K,K,D]
        out = torch.einsum("bij,bijd->bid", attn, v)
        return x + self.mlp(self.norm(x + out))


class SceneEncoder(nn.Module):
    """q(s | x) from a set of slots `[B, K, D]`: L relation layers, sum pool, GELU(Linear), mean/std heads."""

    def __init__(self, slot_dim: int = 64, scene_dim: int = 128, layers: int = 3) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(RelationAttention(slot_dim) for _ in range(layers))
        self.pool = nn.Sequential(nn.Linear(slot_dim, scene_dim), nn.GELU())
        self.mu = nn.Linear(scene_dim, scene_dim)
        self.sp = nn.Linear(scene_dim, scene_dim)
        xavier_init(self, 0.02)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Returns (mean `[B, S]`, std `[B, S]`)."""
        for block in self.blocks:
            z = block(z)
        h = self.pool(z.sum(1))
        return self.mu(h).float(), softplus_std(self.sp(h).float())
