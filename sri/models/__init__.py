"""Models as compositions, declared once in `sri.models.registry` (see docs/ARCHITECTURE.md).

`build_model(name, **options)` builds any implemented model; `model_spec(name)` says what the
trainer, configs and reports need to know about it (loss groups, traits, paper label).
"""
from __future__ import annotations

from sri.models.outputs import ModelOutput, SampleOutput
from sri.models.registry import (
                                 DEFAULT_OPTIONS,
                                 IMPLEMENTED,
                                 LOSS_GROUPS,
                                 MODEL_NAMES,
                                 REGISTRY,
                                 LossGroup,
                                 ModelSpec,
                                 build_model,
                                 model_spec,
)

__all__ = ["build_model", "model_spec", "ModelOutput", "SampleOutput", "MODEL_NAMES", "IMPLEMENTED",
           "DEFAULT_OPTIONS", "REGISTRY", "ModelSpec", "LOSS_GROUPS", "LossGroup"]
