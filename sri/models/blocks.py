"""Building blocks of the GENESIS-v2 segregation VAE (Engelcke et al. 2021 and the authors' SRI release).

UNet encoder, instance-colouring stick-breaking (IC-SM), spatial broadcast decoder.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ConvGNReLU", "UNet", "unet_num_blocks", "InstanceColouringSBP", "BroadcastDecoder",
           "SpatialBroadcastDecoder",
           "pixel_coords", "clamp_preserve_gradients", "xavier_init", "check_generator"]


def pixel_coords(size: int, device: torch.device | None = None, dtype: torch.dtype | None = None) -> Tensor:
    """[1, 2, size, size] grid in [-1, 1]; channel 0 varies along rows, channel 1 along columns."""
    lin = torch.linspace(-1.0, 1.0, size, device=device, dtype=dtype)
    g1, g2 = torch.meshgrid(lin, lin, indexing="ij")
    return torch.stack((g1, g2)).unsqueeze(0)


def clamp_preserve_gradients(x: Tensor, lo: float, hi: float) -> Tensor:
    """Clamp the value but pass the gradient straight through."""
    return x + (x.clamp(lo, hi) - x).detach()


def xavier_init(module: nn.Module, gain: float = 0.02) -> None:
    """xavier_normal(gain) on every Linear/Conv weight, zero biases (LSTMs are left alone)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_normal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def check_generator(generator: torch.Generator | None, ref: Tensor) -> None:
    """Fail clearly when a sampling generator is on another device than the model."""
    if generator is not None and generator.device.type != ref.device.type:
        raise ValueError(f"generator is on {generator.device} but the model is on {ref.device}; "
                         f"create it with torch.Generator(device={str(ref.device)!r})")


class ConvGNReLU(nn.Sequential):
    """Conv (no bias) + GroupNorm(8) + ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, padding: int = 1,
                 groups: int = 8) -> None:
        super().__init__(nn.Conv2d(cin, cout, kernel, stride, padding, bias=False),
                         nn.GroupNorm(groups, cout), nn.ReLU(inplace=True))


def unet_num_blocks(image_size: int) -> int:
    """int(log2(size) - 1) blocks as the release, reduced until size / 2^(n-1) is an integer."""
    n = int(math.log2(image_size) - 1)
    while n > 1 and image_size % (2 ** (n - 1)) != 0:
        n -= 1
    return n


class UNet(nn.Module):
    """GENESIS-v2 UNet: nearest down/up-sampling, MLP bottleneck, skip concatenation.

    For n blocks with c filters: down channels [c]*(n-3) + [2c]*3, up channels [2c, 2c] + [c]*(n-2)
    (the release's 4/5/6-block tables, generalised). Output `[B, c, H, W]` after ReLU.
    """

    def __init__(self, image_size: int, in_channels: int = 3, filters: int = 64) -> None:
        super().__init__()
        n = unet_num_blocks(image_size)
        c = filters
        enc_out = [c] * max(n - 3, 0) + [2 * c] * min(n, 3)
        enc_in = [in_channels] + enc_out[:-1]
        dec_out = ([2 * c, 2 * c] + [c] * (n - 2))[:n]
        dec_in, prev = [], 2 * c
        for i in range(n):
            dec_in.append(prev + enc_out[-1 - i])
            prev = dec_out[i]
        self.down = nn.ModuleList(ConvGNReLU(i, o) for i, o in zip(enc_in, enc_out))
        self.up = nn.ModuleList(ConvGNReLU(i, o) for i, o in zip(dec_in, dec_out))
        self.fm = image_size // 2 ** (n - 1)
        flat = 2 * c * self.fm ** 2
        self.mlp = nn.Sequential(nn.Linear(flat, 128), nn.ReLU(inplace=True),
                                 nn.Linear(128, 128), nn.ReLU(inplace=True),
                                 nn.Linear(128, flat), nn.ReLU(inplace=True))
        self.out_channels = dec_out[-1]

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        h = x
        for i, block in enumerate(self.down):
            h = block(h)
            skips.append(h)
            if i < len(self.down) - 1:
                h = h[:, :, ::2, ::2]  # == nearest downsampling by 2
        B = x.shape[0]
        h = self.mlp(h.reshape(B, -1)).view(B, -1, self.fm, self.fm)
        for i, block in enumerate(self.up):
            h = block(torch.cat([h, skips[-1 - i]], dim=1))
            if i < len(self.up) - 1:
                h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        return h


class InstanceColouringSBP(nn.Module):
    """IC-SM stick breaking with exactly K masks (K-1 kernel steps plus the remaining scope).

    Semi-convolutional 8-d embeddings: gate * Conv1x1(features) + (0,..,0, y, x) coordinates, the
    scalar gate initialised to 0; Gaussian kernel with learnable width, initial 1 / (K ln 2).
    """

    def __init__(self, image_size: int, num_slots: int, feat_dim: int = 64, colour_dim: int = 8) -> None:
        super().__init__()
        self.num_slots = num_slots
        self.colour_dim = colour_dim
        self.conv = nn.Conv2d(feat_dim, colour_dim, 1)
        self.gate = nn.Parameter(torch.tensor(0.0))
        self.log_sigma = nn.Parameter(torch.tensor(1.0 / (num_slots * math.log(2.0))).log())
        uv = torch.cat([torch.zeros(1, colour_dim - 2, image_size, image_size),
                        pixel_coords(image_size)], dim=1)
        self.register_buffer("uv", uv, persistent=False)

    def embed(self, features: Tensor) -> Tensor:
        """Pixel embeddings `[B, colour_dim, H, W]`."""
        return self.gate * self.conv(features) + self.uv.to(features.dtype)

    def forward(self, features: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Log-masks `[B, K, 1, H, W]` (they exponentiate to masks summing to 1 over K)."""
        colour = self.embed(features).float()  # float32 distances even under autocast
        B, D, H, W = colour.shape
        flat = colour.flatten(2)  # [B, D, HW]
        noise = torch.rand(B, H * W, device=features.device, dtype=flat.dtype, generator=generator)
        sigma = self.log_sigma.exp()
        log_s = torch.zeros(B, H * W, device=features.device, dtype=flat.dtype)
        log_m = []
        for _ in range(self.num_slots - 1):
            seed_idx = (noise * log_s.exp()).argmax(1)  # [B]
            seed = flat.gather(2, seed_idx.view(B, 1, 1).expand(B, D, 1))  # [B, D, 1]
            dist = (flat - seed).pow(2).sum(1)
            alpha = clamp_preserve_gradients(torch.exp(-dist / sigma), 0.01, 0.99)
            log_m.append(log_s + torch.log(alpha))
            log_s = log_s + torch.log1p(-alpha)
        log_m.append(log_s)
        return torch.stack(log_m, 1).view(B, self.num_slots, 1, H, W)


class BroadcastDecoder(nn.Module):
    """Spatial broadcast decoder: z tiled to (size/16)^2 + coords, 4 x [ConvT(5, s2) GN ReLU], Conv1x1 -> 4.

    `forward(z [N, D])` returns (rgb `[N, 3, H, W]` after sigmoid, mask logits `[N, 1, H, W]`).
    """

    def __init__(self, image_size: int, latent_dim: int = 64) -> None:
        super().__init__()
        if image_size % 16:
            raise ValueError(f"image_size must be a multiple of 16, got {image_size}")
        self.size0 = image_size // 16
        c = latent_dim  # channels as the release: [c, c, min(c, 64), min(c, 64)]
        layers: list[nn.Module] = []
        cin = latent_dim + 2
        for cout in (c, c, min(c, 64), min(c, 64)):
            layers += [nn.ConvTranspose2d(cin, cout, 5, 2, 2, 1), nn.GroupNorm(8, cout), nn.ReLU(inplace=True)]
            cin = cout
        layers.append(nn.Conv2d(cin, 4, 1))
        self.net = nn.Sequential(*layers)
        self.register_buffer("coords", pixel_coords(self.size0), persistent=False)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        N = z.shape[0]
        s = self.size0
        h = torch.cat([z.view(N, -1, 1, 1).expand(-1, -1, s, s),
                       self.coords.to(z.dtype).expand(N, -1, -1, -1)], dim=1)
        h = self.net[:-1](h)
        # the final Conv1x1 (64 -> 4) as a batched matmul: oneDNN handles 4 output channels poorly
        conv = self.net[-1]
        w = conv.weight.view(1, 4, -1).expand(N, -1, -1)
        out = torch.baddbmm(conv.bias.view(1, 4, 1), w, h.flatten(2))
        out = out.view(N, 4, *h.shape[-2:])
        return torch.sigmoid(out[:, :3]), out[:, 3:]

    def decode_slots(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Decode all slots `z [B, K, D]` in one batched call.

        Returns (slot rgb `[B, K, 3, H, W]`, log-masks `[B, K, 1, H, W]` = log-softmax over K).
        """
        B, K, D = z.shape
        rgb, logits = self(z.reshape(B * K, D))
        H, W = rgb.shape[-2:]
        rgb = rgb.view(B, K, 3, H, W)
        log_masks = torch.log_softmax(logits.view(B, K, 1, H, W), dim=1)
        return rgb, log_masks


class SpatialBroadcastDecoder(nn.Module):
    """Valid-convolution broadcast decoder (MONet, GENESIS, EMORL): z tiled to the image size plus the
    border the convolutions eat, with a position map, 4 x [valid Conv3x3 + ELU], then a valid
    Conv(`final_kernel`) to `out_channels`. `positions(size)` gives the `[1, P, size, size]` map
    (default: the (y, x) grid in [-1, 1])."""

    def __init__(self, image_size: int, latent_dim: int, out_channels: int, width: int = 32,
                 final_kernel: int = 1, positions=pixel_coords) -> None:
        super().__init__()
        self.size = image_size + 8 + (final_kernel - 1)
        coords = positions(self.size)
        layers: list[nn.Module] = []
        cin = latent_dim + coords.shape[1]
        for _ in range(4):
            layers += [nn.Conv2d(cin, width, 3), nn.ELU(inplace=True)]
            cin = width
        layers.append(nn.Conv2d(width, out_channels, final_kernel))
        self.net = nn.Sequential(*layers)
        self.register_buffer("coords", coords, persistent=False)

    def forward(self, z: Tensor) -> Tensor:
        """z `[N, D]` -> `[N, out_channels, S, S]`."""
        N, s = z.shape[0], self.size
        h = torch.cat([z.view(N, -1, 1, 1).expand(-1, -1, s, s),
                       self.coords.to(z.dtype).expand(N, -1, -1, -1)], dim=1)
        return self.net(h)
