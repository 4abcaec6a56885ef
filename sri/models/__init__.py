"""Models: `build_model(name, **options)` for "sri" and the "genv2" baseline (see docs/ARCHITECTURE.md)."""
from __future__ import annotations

from typing import Any

import torch.nn as nn

from sri.models.outputs import ModelOutput, SampleOutput

__all__ = ["build_model", "ModelOutput", "SampleOutput", "MODEL_NAMES", "IMPLEMENTED", "DEFAULT_OPTIONS"]

IMPLEMENTED = ("sri", "genv2")
MODEL_NAMES = ("sri", "genv2", "gen", "emorl", "sri_sa", "sri_emorl")

# Paper defaults: ShapeStacks SRI-MoG.
DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {
    "sri": dict(image_size=64, num_slots=9, slot_dim=64, scene_dim=128, relation_layers=3,
                likelihood="mog", normalized=True, pixel_std=0.7, matching="greedy",
                shared_decoder=False, scene_variable=True, order_alignment=True,
                cross_order_kl=True),
    # order/matching options do not exist for the baseline (it has no ordered posterior)
    "genv2": dict(image_size=64, num_slots=9, slot_dim=64, scene_dim=128, relation_layers=3,
                  likelihood="mog", normalized=True, pixel_std=0.7, scene_variable=False),
}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _validate(name: str, o: dict[str, Any]) -> None:
    size = o["image_size"]
    if not _is_int(size) or size < 16 or size % 16:
        raise ValueError(f"image_size must be a positive multiple of 16 (e.g. 64 or 96); got {size!r}")
    if not _is_int(o["num_slots"]) or o["num_slots"] < 1:
        raise ValueError(f"num_slots (K) must be an integer >= 1; got {o['num_slots']!r}")
    if not _is_int(o["slot_dim"]) or o["slot_dim"] < 8 or o["slot_dim"] % 8:
        raise ValueError(f"slot_dim must be a positive multiple of 8 (GroupNorm(8)); got {o['slot_dim']!r}")
    if not _is_int(o["scene_dim"]) or o["scene_dim"] < 1:
        raise ValueError(f"scene_dim must be an integer >= 1; got {o['scene_dim']!r}")
    if not _is_int(o["relation_layers"]) or o["relation_layers"] < 0:
        raise ValueError(f"relation_layers must be an integer >= 0; got {o['relation_layers']!r}")
    if o["likelihood"] not in ("gaussian", "mog"):
        raise ValueError(f"likelihood must be 'gaussian' or 'mog'; got {o['likelihood']!r}")
    try:
        std = float(o["pixel_std"])
    except (TypeError, ValueError):
        std = -1.0
    if not std > 0:
        raise ValueError(f"pixel_std must be a number > 0; got {o['pixel_std']!r}")
    o["pixel_std"] = std
    if "matching" in o and o["matching"] not in ("greedy", "hungarian"):
        raise ValueError(f"matching must be 'greedy' or 'hungarian'; got {o['matching']!r}")
    for key in ("normalized", "shared_decoder", "scene_variable", "order_alignment", "cross_order_kl"):
        if key in o and not isinstance(o[key], bool):
            raise ValueError(f"{key} must be True or False; got {o[key]!r}")


def build_model(name: str, **options: Any) -> nn.Module:
    """Build a model by name with keyword options; `model.name` / `model.options` rebuild it."""
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODEL_NAMES)}")
    if name not in IMPLEMENTED:
        raise NotImplementedError(f"model {name!r} is not implemented yet; implemented models: "
                                  f"{', '.join(IMPLEMENTED)}")
    defaults = DEFAULT_OPTIONS[name]
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)} for model {name!r}; valid options: "
                        f"{', '.join(defaults)}")
    resolved = {**defaults, **options}
    _validate(name, resolved)
    if name == "sri":
        from sri.models.sri_model import SRI
        return SRI(resolved)
    from sri.models.genv2 import GenesisV2
    return GenesisV2(resolved)
