"""GENESIS's autoregressive slot prior (used by GEN and GENv2), with an optional scene variable.

SRI's scene-conditional prior and its ordered posterior live in `sri.models.imagine`.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from sri.models.blocks import xavier_init

__all__ = ["GenesisPrior"]


class GenesisPrior(nn.Module):
    """p(z_k | z_<k): LSTM(D, 4D) + Linear(4D, 2D), mean tanh(a), std sigmoid(b + 4) + 1e-4.

    Without a scene variable the first slot's prior is N(0, I) and the LSTM starts from z_1; with
    one (`scene_dim`), the LSTM's first input is GELU(W_s s) and every slot has an LSTM prior.
    """

    def __init__(self, latent_dim: int, scene_dim: int | None = None) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.lstm = nn.LSTM(latent_dim, 4 * latent_dim, batch_first=True)
        self.linear = nn.Linear(4 * latent_dim, 2 * latent_dim)
        if scene_dim is not None:
            self.proj = nn.Sequential(nn.Linear(scene_dim, latent_dim), nn.GELU())
            xavier_init(self.proj, 0.02)
        else:
            self.proj = None

    def params(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and std from LSTM outputs h `[..., 4D]`."""
        a, b = self.linear(h).float().chunk(2, dim=-1)
        return torch.tanh(a), torch.sigmoid(b + 4.0) + 1e-4

    def teacher_forced(self, s: Tensor | None, z: Tensor) -> tuple[Tensor, Tensor]:
        """Prior (mean, std) `[B, K, D]` for the slot sequence z `[B, K, D]`."""
        B, K, D = z.shape
        if s is not None:
            out, _ = self.lstm(torch.cat([self.proj(s).unsqueeze(1), z[:, :-1]], 1))
            return self.params(out)
        mu0, std0 = z.new_zeros(B, 1, D), z.new_ones(B, 1, D)
        if K == 1:
            return mu0, std0
        out, _ = self.lstm(z[:, :-1])
        mu, std = self.params(out)
        return torch.cat([mu0, mu], 1), torch.cat([std0, std], 1)

    def rollout(self, s: Tensor | None, n: int, num_slots: int, temperature: float = 1.0,
                generator: torch.Generator | None = None, like: Tensor | None = None) -> Tensor:
        """Sample `num_slots` slots `[n, K, D]`, feeding samples back; std times `temperature`."""
        ref = like if like is not None else next(self.parameters())
        D = self.latent_dim
        zs, state = [], None
        if s is not None:
            inp = self.proj(s).unsqueeze(1)
        else:
            z = torch.randn(n, D, device=ref.device, dtype=ref.dtype, generator=generator) * temperature
            zs.append(z)
            inp = z.unsqueeze(1)
        while len(zs) < num_slots:
            out, state = self.lstm(inp, state)
            mu, std = self.params(out[:, 0])
            z = mu + std * temperature * torch.randn(mu.shape, device=ref.device, dtype=ref.dtype,
                                                     generator=generator)
            zs.append(z)
            inp = z.unsqueeze(1)
        return torch.stack(zs, 1)
