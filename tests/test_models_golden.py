"""The models reproduce the outputs recorded before they were restructured as compositions.

tests/golden/models_golden.pt holds, per case, the options, the weights (with the parameter names
of the original layout) and the loss terms, reconstructions, masks, slot order, gradients of four
parameters, ELBO terms and samples under fixed seeds (tests/golden/make_golden.py wrote it).
Loading the old weights also checks that checkpoints written before the change still load.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from sri.models import build_model
from sri.models.slot_vae import _LEGACY_NAMES

# the golden file was recorded with one thread; reductions split over threads round differently
pytestmark = pytest.mark.usefixtures("one_thread")
GOLDEN = Path(__file__).parent / "golden" / "models_golden.pt"
_DATA = torch.load(GOLDEN, weights_only=True)
sys.path.insert(0, str(GOLDEN.parent))
from make_golden import run_case  # noqa: E402


@pytest.mark.parametrize("case", sorted(_DATA["cases"]))
def test_model_reproduces_golden_outputs(case: str) -> None:
    spec = _DATA["cases"][case]
    torch.manual_seed(123)  # a different init: every weight must come from the old state dict
    model = build_model(spec["name"], **spec["options"])
    model.load_state_dict(spec["state"], strict=True)
    want = spec["outputs"]
    old_grads = [k[len("grad."):] for k in want if k.startswith("grad.")]
    got = run_case(model, _DATA["x"], grad_names=[_new_name(n) for n in old_grads])
    for n in old_grads:
        got[f"grad.{n}"] = got.pop(f"grad.{_new_name(n)}")
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        torch.testing.assert_close(got[key], value, rtol=0, atol=0, msg=lambda m: f"{case} {key}: {m}")


def _new_name(old: str) -> str:
    for a, b in _LEGACY_NAMES:
        if old.startswith(a):
            return b + old[len(a):]
    return old
