"""GENESIS (Engelcke et al. 2020) as a segregation module: a mask VAE and a component VAE.

Facts from the GENESIS paper and its release: the image is encoded to a feature h; mask latents
z^m_k have an autoregressive posterior (an LSTM over [h, z^m_(k-1)]); all z^m_k are decoded in
parallel to mask logits a_k and masks come from stick breaking, m_k = s_(k-1) sigmoid(a_k) with
the remaining scope as the K-th mask; a MONet-style component VAE encodes [x, log m_k] to z^c_k
and a broadcast decoder (ELU) draws its RGB; the likelihood is the mixture over slots with these
(encoder) masks; p(z^c_k | z^m_k) is an MLP 64 -> 256 -> 256 -> 2 * 16; KLs are Monte-Carlo
estimates. The autoregressive prior over z^m is `sri.models.genesis_prior.GenesisPrior`, attached by the
slot-VAE assembly. Our choices where the paper's text leaves them open are marked "(our choice)".
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from sri.models.blocks import SpatialBroadcastDecoder
from sri.models.segregation import Segregation, SegregationModule
from sri.objectives import normal_log_prob

__all__ = ["GatedConv", "SpatialBroadcastDecoder", "stick_breaking", "GenesisSegregation"]

_HIDDEN = 256  # LSTM / MLP width of GENESIS's posterior and component prior


def _std(raw: Tensor) -> Tensor:
    # posterior std: softplus, as GENESIS-v2's heads in this package (our choice for GENESIS)
    return F.softplus(raw + 0.5) + 1e-8


class GatedConv(nn.Module):
    """Gated convolution: conv to 2C channels, h * sigmoid(g)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, 2 * cout, kernel, stride, padding)

    def forward(self, x: Tensor) -> Tensor:
        h, g = self.conv(x).chunk(2, dim=1)
        return h * torch.sigmoid(g)


def stick_breaking(logits: Tensor) -> Tensor:
    """Log-masks `[B, K, 1, H, W]` from mask logits `[B, K, 1, H, W]`: m_k = s_(k-1) sigmoid(a_k), m_K = s_(K-1).

    The K-th logit is unused (the last mask is the remaining scope); masks sum to 1 over K.
    """
    K = logits.shape[1]
    log_scope = torch.zeros_like(logits[:, 0])
    out = []
    for k in range(K - 1):
        out.append(log_scope + F.logsigmoid(logits[:, k]))
        log_scope = log_scope + F.logsigmoid(-logits[:, k])
    out.append(log_scope)
    return torch.stack(out, 1)


class GenesisSegregation(SegregationModule):
    """GENESIS's mask VAE + component VAE; slot latents for the prior are the mask latents z^m."""

    def __init__(self, image_size: int, num_slots: int, mask_dim: int = 64, component_dim: int = 16,
                 feature_dim: int = 256) -> None:
        super().__init__()
        self.image_size = image_size
        self.num_slots = num_slots
        self.latent_dim = mask_dim
        self.component_dim = component_dim
        fm = image_size // 16
        # mask encoder: 4 gated Conv5x5 stride 2 (32, 32, 64, 64) and a Linear to h (our choice of widths)
        chans = (32, 32, 64, 64)
        self.mask_encoder = nn.Sequential(*[m for cin, cout in zip((3,) + chans[:-1], chans)
                                            for m in (GatedConv(cin, cout, 5, 2, 2), nn.ELU())])
        self.feature = nn.Sequential(nn.Linear(64 * fm * fm, feature_dim), nn.ELU())
        self.mask_lstm = nn.LSTM(feature_dim + mask_dim, _HIDDEN, batch_first=True)
        self.mask_head = nn.Linear(_HIDDEN, 2 * mask_dim)
        self.mask_decoder = SpatialBroadcastDecoder(image_size, mask_dim, 1)
        # component VAE (MONet): [x, log m_k] -> 4 x Conv3x3 stride 2 (32, 32, 64, 64) + ELU -> MLP
        self.comp_encoder = nn.Sequential(*[m for cin, cout in zip((4,) + chans[:-1], chans)
                                            for m in (nn.Conv2d(cin, cout, 3, 2, 1), nn.ELU())])
        self.comp_head = nn.Sequential(nn.Linear(64 * fm * fm, _HIDDEN), nn.ELU(),
                                       nn.Linear(_HIDDEN, 2 * component_dim))
        self.comp_decoder = SpatialBroadcastDecoder(image_size, component_dim, 3)
        self.comp_prior = nn.Sequential(nn.Linear(mask_dim, _HIDDEN), nn.ELU(), nn.Linear(_HIDDEN, _HIDDEN),
                                        nn.ELU(), nn.Linear(_HIDDEN, 2 * component_dim))

    # ---- mask VAE ----------------------------------------------------------------------------
    def features(self, x: Tensor) -> Tensor:
        """The image feature h `[B, feature_dim]`."""
        return self.feature(self.mask_encoder(x).flatten(1))

    def mask_posterior_step(self, h: Tensor, z_prev: Tensor, state: tuple[Tensor, Tensor] | None
                            ) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor]]:
        """q(z^m_k | x, z^m_(k-1)): (mean, std, LSTM state) from [h, z^m_(k-1)] (zeros for k = 1)."""
        out, state = self.mask_lstm(torch.cat([h, z_prev], -1).unsqueeze(1), state)
        mu, raw = self.mask_head(out[:, 0]).float().chunk(2, dim=-1)
        return mu, _std(raw), state

    def mask_log_masks(self, zm: Tensor) -> Tensor:
        """Decode mask latents `[B, K, D]` in parallel and stick-break: log-masks `[B, K, 1, H, W]`."""
        B, K, D = zm.shape
        logits = self.mask_decoder(zm.reshape(B * K, D)).view(B, K, 1, self.image_size, self.image_size)
        return stick_breaking(logits.float())

    # ---- component VAE -----------------------------------------------------------------------
    def component_posterior(self, x: Tensor, log_masks: Tensor) -> tuple[Tensor, Tensor]:
        """q(z^c_k | x, log m_k): (mean, std) `[B, K, Dc]` from the image and each slot's log-mask."""
        B, K = log_masks.shape[:2]
        S = self.image_size
        inp = torch.cat([x.unsqueeze(1).expand(-1, K, -1, -1, -1), log_masks.to(x.dtype)], 2)
        mu, raw = self.comp_head(self.comp_encoder(inp.reshape(B * K, 4, S, S)).flatten(1)).float().chunk(2, -1)
        return mu.view(B, K, -1), _std(raw).view(B, K, -1)

    def component_prior(self, zm: Tensor) -> tuple[Tensor, Tensor]:
        """p(z^c_k | z^m_k): mean and std sigmoid(b + 4) + 1e-4 (our choice: as the mask prior's std)."""
        mu, b = self.comp_prior(zm).float().chunk(2, dim=-1)
        return mu, torch.sigmoid(b + 4.0) + 1e-4

    def component_rgb(self, zc: Tensor) -> Tensor:
        """Decode component latents `[B, K, Dc]` to slot RGB `[B, K, 3, H, W]` (sigmoid)."""
        B, K, D = zc.shape
        S = self.image_size
        return torch.sigmoid(self.comp_decoder(zc.reshape(B * K, D))).view(B, K, 3, S, S)

    # ---- the segregation-module interface ----------------------------------------------------
    def encode(self, x: Tensor) -> Segregation:
        """Mask latents (autoregressive posterior), masks, component latents and their KL."""
        B, K = x.shape[0], self.num_slots
        h = self.features(x)
        z_prev = h.new_zeros(B, self.latent_dim)
        state = None
        mus, stds, zs = [], [], []
        for _ in range(K):
            mu, std, state = self.mask_posterior_step(h, z_prev, state)
            z_prev = mu + std * torch.randn_like(std)
            mus.append(mu), stds.append(std), zs.append(z_prev)
        zm, mu_m, std_m = torch.stack(zs, 1), torch.stack(mus, 1), torch.stack(stds, 1)
        log_m = self.mask_log_masks(zm)
        mu_c, std_c = self.component_posterior(x, log_m)
        zc = mu_c + std_c * torch.randn_like(std_c)
        p_mu, p_std = self.component_prior(zm)
        comp_kl = (normal_log_prob(zc, mu_c, std_c) - normal_log_prob(zc, p_mu, p_std)).sum((1, 2))
        return Segregation(att_log_masks=log_m, mu=mu_m, std=std_m, z=zm, extra_kl=comp_kl,
                           context={"log_masks": log_m, "zc": zc})

    def reconstruct(self, x: Tensor, seg: Segregation) -> tuple[Tensor, Tensor]:
        """Slot RGB from the component posterior and the encoder's masks."""
        return self.component_rgb(seg.context["zc"]), seg.context["log_masks"]

    def generate(self, z: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Masks from mask latents z `[B, K, D]`, component latents from p(z^c | z^m), their RGB."""
        log_m = self.mask_log_masks(z)
        mu, std = self.component_prior(z)
        eps = torch.randn(mu.shape, device=mu.device, dtype=mu.dtype, generator=generator)
        return self.component_rgb(mu + std * eps), log_m
