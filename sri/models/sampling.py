"""Pieces shared by the models' `sample` / `imagine`: the scene prior draw and decoding."""
from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from sri.models.blocks import BroadcastDecoder, check_generator
from sri.models.outputs import SampleOutput

__all__ = ["start_sampling", "decode_sample", "sample_output"]


def start_sampling(model: nn.Module, n: int, temperature: float, num_slots: int | None,
                   generator: torch.Generator | None) -> tuple[int, Tensor, Tensor | None]:
    """Validate a sampling request; returns (K, a parameter for device/dtype, s ~ N(0, tau^2 I) or None)."""
    K = model.num_slots if num_slots is None else int(num_slots)
    if K < 1 or n < 1:
        raise ValueError(f"sample needs n >= 1 and num_slots >= 1; got n={n}, num_slots={K}")
    ref = next(model.parameters())
    check_generator(generator, ref)
    s = None
    if model.scene_encoder is not None:
        s = torch.randn(n, model.scene_dim, device=ref.device, dtype=ref.dtype,
                        generator=generator) * temperature
    return K, ref, s


def decode_sample(decoder: BroadcastDecoder, z: Tensor) -> SampleOutput:
    """Decode slots z `[n, K, D]` into images, softmax masks and per-slot images."""
    rgb, logm = decoder.decode_slots(z)
    return sample_output(rgb, logm, z)


def sample_output(rgb: Tensor, logm: Tensor, z: Tensor | None) -> SampleOutput:
    """Compose decoded slots (rgb `[n, K, 3, H, W]`, log-masks `[n, K, 1, H, W]`) into scenes."""
    masks = logm.exp()
    return SampleOutput(images=(masks * rgb).sum(1), masks=masks, slot_images=rgb, z=z)
