"""A small FID feature extractor for tests (a seeded random conv net standing in for Inception).

Importing this module registers it as "tiny"; smoke runs reach it by import path
(`fid_feature_extractor=tiny_fid:TinyExtractor`) and `sri evaluate` by `--import tiny_fid`.
"""
from __future__ import annotations

import torch
from torch import nn

from sri.metrics.fid import register_feature_extractor, torch_fidelity_api

NAME = "tiny"


class TinyExtractor(torch_fidelity_api().FeatureExtractorBase):
    """uint8 images -> 16-d features: tanh of a fixed random stride-2 conv, averaged over pixels."""

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(3, 16, 3, stride=2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g) * 0.3)
            self.conv.bias.zero_()

    @staticmethod
    def get_provided_features_list():
        return ("feat",)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return "feat"

    def forward(self, x):
        assert x.dtype == torch.uint8, "FID extractors receive quantised uint8 images"
        return (torch.tanh(self.conv(x.float() / 127.5 - 1)).mean((2, 3)),)


if NAME not in torch_fidelity_api().registry:
    register_feature_extractor(NAME, TinyExtractor)


def write_fake_inception_weights(path, scratch) -> None:
    """Save a state dict with Inception's shapes (random values) at `path`: the real weights
    cannot be downloaded here. `scratch` is a folder for a temporary empty file."""
    from pathlib import Path

    cls = torch_fidelity_api().FeatureExtractorInceptionV3
    orig = cls.load_state_dict
    empty = Path(scratch) / "empty.pth"
    torch.save({}, empty)
    cls.load_state_dict = lambda self, sd, *a, **k: None
    try:
        torch.manual_seed(0)
        net = cls("x", ["2048"], feature_extractor_weights_path=str(empty))
    finally:
        cls.load_state_dict = orig
    torch.save(net.state_dict(), path)
