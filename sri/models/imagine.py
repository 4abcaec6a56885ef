"""Imagine stage: scene-conditioned autoregressive slot prior and the order-aligned posterior."""
from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from sri.models.blocks import xavier_init
from sri.objectives import softplus_std

__all__ = ["AutoregressivePrior", "AutoregressivePosterior"]


def _randn(shape, like: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(shape, device=like.device, dtype=like.dtype, generator=generator)


class AutoregressivePrior(nn.Module):
    """p(z_k | z_<k, s): first LSTM input GELU(W_s s) from a zero state; LSTM(D, 4D); mean and std heads.

    With `scene_variable=False` the first slot prior is N(0, I) and the LSTM starts from z_1.
    """

    def __init__(self, slot_dim: int = 64, scene_dim: int = 128, scene_variable: bool = True) -> None:
        super().__init__()
        self.slot_dim = slot_dim
        self.scene_variable = scene_variable
        self.proj = nn.Sequential(nn.Linear(scene_dim, slot_dim), nn.GELU()) if scene_variable else None
        self.lstm = nn.LSTM(slot_dim, 4 * slot_dim, batch_first=True)
        self.mu = nn.Linear(4 * slot_dim, slot_dim)
        self.sp = nn.Linear(4 * slot_dim, slot_dim)
        for m in (self.proj, self.mu, self.sp):
            if m is not None:
                xavier_init(m, 0.02)

    def _heads(self, h: Tensor) -> tuple[Tensor, Tensor]:
        return self.mu(h).float(), softplus_std(self.sp(h).float())

    def rollout(self, s: Tensor | None, num_slots: int, batch_size: int | None = None,
                temperature: float = 1.0, generator: torch.Generator | None = None,
                like: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Sample K slots feeding its own reparameterised samples back; std times `temperature`.

        Returns (z, mean, std), each `[B, K, D]`. `like` gives device/dtype when `s` is None.
        """
        ref = s if s is not None else like
        B = s.shape[0] if s is not None else int(batch_size)
        zs, mus, stds = [], [], []
        state = None
        if self.scene_variable:
            inp = self.proj(s).unsqueeze(1)
        else:
            mu = torch.zeros(B, self.slot_dim, device=ref.device, dtype=ref.dtype)
            std = torch.full_like(mu, float(temperature))
            z = mu + std * _randn(mu.shape, mu, generator)
            zs.append(z), mus.append(mu), stds.append(std)
            inp = z.unsqueeze(1)
        while len(zs) < num_slots:
            out, state = self.lstm(inp, state)
            mu, std = self._heads(out[:, 0])
            std = std * temperature
            z = mu + std * _randn(mu.shape, mu, generator)
            zs.append(z), mus.append(mu), stds.append(std)
            inp = z.unsqueeze(1)
        return torch.stack(zs, 1), torch.stack(mus, 1), torch.stack(stds, 1)

    def teacher_forced(self, s: Tensor | None, z: Tensor) -> tuple[Tensor, Tensor]:
        """Prior (mean, std) `[B, K, D]` for the given slot sequence z `[B, K, D]` (one LSTM call)."""
        B, K, D = z.shape
        if self.scene_variable:
            seq = torch.cat([self.proj(s).unsqueeze(1), z[:, :-1]], 1)
            out, _ = self.lstm(seq)
            return self._heads(out)
        mu0 = torch.zeros(B, 1, D, device=z.device, dtype=z.dtype)
        if K == 1:
            return mu0, torch.ones_like(mu0)
        out, _ = self.lstm(z[:, :-1])
        mu, std = self._heads(out)
        return torch.cat([mu0, mu], 1), torch.cat([torch.ones_like(mu0), std], 1)


class AutoregressivePosterior(nn.Module):
    """Correlated posterior std from LSTM([GELU(W_s s), mu_1, ..., mu_{K-1}]); zeros replace W_s s without s."""

    def __init__(self, slot_dim: int = 64, scene_dim: int = 128, scene_variable: bool = True) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(scene_dim, slot_dim), nn.GELU()) if scene_variable else None
        self.lstm = nn.LSTM(slot_dim, 4 * slot_dim, batch_first=True)
        self.sp = nn.Linear(4 * slot_dim, slot_dim)
        for m in (self.proj, self.sp):
            if m is not None:
                xavier_init(m, 0.02)

    def forward(self, s: Tensor | None, mu: Tensor) -> Tensor:
        """Std `[B, K, D]` for the ordered means mu `[B, K, D]`."""
        if self.proj is not None:
            first = self.proj(s).unsqueeze(1)
        else:
            first = torch.zeros_like(mu[:, :1])
        out, _ = self.lstm(torch.cat([first, mu[:, :-1]], 1))
        return softplus_std(self.sp(out).float())
