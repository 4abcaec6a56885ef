"""Helpers for the experiment tests: a small FID feature extractor the smoke subprocesses register
by import path (`fid_feature_extractor=test_experiments_support:TinyExtractor`), and running scripts."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

from sri.metrics.fid import torch_fidelity_api

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


class TinyExtractor(torch_fidelity_api().FeatureExtractorBase):
    """A fixed random conv net mapping uint8 images to 8-d features (stands in for Inception)."""

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, stride=2)
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
        return (torch.tanh(self.conv(x.float() / 127.5 - 1)).mean((2, 3)),)


def run_script(script: str, args: list[str], cwd: Path, env: dict | None = None,
               timeout: int = 240) -> subprocess.CompletedProcess:
    """Run `python experiments/<script> <args>` in `cwd` with the tests folder importable."""
    e = dict(os.environ, OMP_NUM_THREADS="2", PYTHONPATH=os.pathsep.join(
        [str(TESTS), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    e.pop("SRI_MONGO_URL", None)
    e.update(env or {})
    return subprocess.run([sys.executable, str(ROOT / "experiments" / script), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=e)


def read_file_run(store: Path, run_id: int = 1) -> dict:
    """config, info, run and metrics of one run in a Sacred file store."""
    d = store / str(run_id)
    return {name: json.loads((d / f"{name}.json").read_text()) for name in ("config", "info", "run", "metrics")}
