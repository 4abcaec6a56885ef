"""The one registry of models: per name, how to build it, its options, loss groups and traits.

Everything outside `sri/models` (trainer, configs, evaluation, reports) asks this registry about a
model instead of comparing its name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch.nn as nn

__all__ = ["LossGroup", "LOSS_GROUPS", "ModelSpec", "REGISTRY", "MODEL_NAMES", "IMPLEMENTED",
           "DEFAULT_OPTIONS", "model_spec", "build_model"]


@dataclass(frozen=True)
class LossGroup:
    """One GECO-constrained objective: the error term and the KL terms it weighs."""

    nll: str
    kl: tuple[str, ...]


LOSS_GROUPS: dict[str, LossGroup] = {
    "seg": LossGroup("seg_nll", ("seg_kl",)),  # the segregation VAE (or the whole baseline)
    "sri": LossGroup("sri_nll", ("scene_kl", "slot_kl", "cross_order_kl")),  # L_SRI, Eq. 8-12
}


@dataclass(frozen=True)
class ModelSpec:
    """A model name's builder (None: not implemented yet), options and facts the others read."""

    name: str
    label: str  # the model's name in the paper
    build: Callable[[str, dict[str, Any]], nn.Module] | None
    defaults: dict[str, Any]
    loss_groups: tuple[str, ...] = ("seg",)  # one GECO each
    geco: str = "genesis"  # the GECO form the trainer uses for every loss group
    autoregressive: bool = True  # an autoregressive slot prior (a generation order to score)
    ordered_posterior: bool = False  # SRI's order-aligned posterior and second decoder
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def implemented(self) -> bool:
        return self.build is not None

    def has_scene_variable(self, options: dict[str, Any]) -> bool:
        """Whether a model built with `options` has a scene variable s."""
        return bool({**self.defaults, **options}.get("scene_variable", False))


def _build_sri(name: str, o: dict[str, Any]) -> nn.Module:
    from sri.models.segregation import GenesisV2Segregation
    from sri.models.sri_model import SRI

    return SRI(name, o, GenesisV2Segregation(o["image_size"], o["num_slots"], o["slot_dim"]))


def _build_genv2(name: str, o: dict[str, Any]) -> nn.Module:
    from sri.models.segregation import GenesisV2Segregation
    from sri.models.slot_vae import AutoregressiveSlotVAE

    return AutoregressiveSlotVAE(name, o, GenesisV2Segregation(o["image_size"], o["num_slots"], o["slot_dim"]))


def _build_gen(name: str, o: dict[str, Any]) -> nn.Module:
    from sri.models.genesis import GenesisSegregation
    from sri.models.slot_vae import AutoregressiveSlotVAE

    return AutoregressiveSlotVAE(name, o, GenesisSegregation(
        o["image_size"], o["num_slots"], mask_dim=o["slot_dim"], component_dim=o["component_dim"],
        feature_dim=o["feature_dim"]))


def _emorl_module(o: dict[str, Any]) -> nn.Module:
    from sri.models.emorl import EmorlSegregation

    return EmorlSegregation(o["image_size"], o["num_slots"], o["slot_dim"], refinement_steps=o["refinement_steps"],
                            refinement_steps_late=o["refinement_steps_late"], curriculum_step=o["curriculum_step"],
                            likelihood=o["likelihood"], normalized=o["normalized"], pixel_std=o["pixel_std"],
                            decoder_width=o["decoder_width"])


def _build_emorl(name: str, o: dict[str, Any]) -> nn.Module:
    from sri.models.independent_vae import IndependentSlotVAE

    return IndependentSlotVAE(name, o, _emorl_module(o))


def _build_sri_emorl(name: str, o: dict[str, Any]) -> nn.Module:
    from sri.models.sri_model import SRI

    return SRI(name, o, _emorl_module(o))


def _build_sri_sa(name: str, o: dict[str, Any]) -> nn.Module:
    from sri.models.slot_attention import SlotAttentionSegregation
    from sri.models.sri_model import SRI

    return SRI(name, o, SlotAttentionSegregation(o["image_size"], o["num_slots"], o["slot_dim"],
                                                 o["sa_iterations"]))


# Paper defaults (ShapeStacks, appendix A.4): image 64, K 9, slot latents 64, scene 128.
_COMMON = dict(image_size=64, num_slots=9, slot_dim=64, scene_dim=128, relation_layers=3,
               likelihood="mog", normalized=True, pixel_std=0.7)
_SRI = dict(_COMMON, matching="greedy", shared_decoder=False, scene_variable=True,
            order_alignment=True, cross_order_kl=True)
# EMORL: unnormalised Gaussian, sigma 0.1; I refinement steps, then `refinement_steps_late` from
# `curriculum_step` (0: no curriculum; SRI-EMORL fixes I = 2); the broadcast decoder's width is
# EMORL's 64 channels (`decoder_width`, lowered only by the CPU-scale preset `emorl_cpu`)
_EMORL = dict(likelihood="gaussian", normalized=False, pixel_std=0.1, refinement_steps=3,
              refinement_steps_late=1, curriculum_step=100_000, decoder_width=64)

REGISTRY: dict[str, ModelSpec] = {
    "sri": ModelSpec("sri", "SRI", _build_sri, _SRI, loss_groups=("seg", "sri"), ordered_posterior=True),
    # order/matching options do not exist for the baselines (they have no ordered posterior)
    "genv2": ModelSpec("genv2", "GENv2", _build_genv2, dict(_COMMON, scene_variable=False)),
    "gen": ModelSpec("gen", "GEN", _build_gen,
                     dict(_COMMON, scene_variable=False, component_dim=16, feature_dim=256)),
    "emorl": ModelSpec("emorl", "EMORL", _build_emorl, dict(_COMMON, **_EMORL), geco="emorl",
                       autoregressive=False),
    "sri_sa": ModelSpec("sri_sa", "SRI-SA*", _build_sri_sa, dict(_SRI, sa_iterations=3),
                        loss_groups=("seg", "sri"), ordered_posterior=True),
    "sri_emorl": ModelSpec("sri_emorl", "SRI-EMORL", _build_sri_emorl,
                           {**_SRI, **_EMORL, "refinement_steps": 2, "curriculum_step": 0},
                           loss_groups=("seg", "sri"), geco="emorl", ordered_posterior=True),
}
# options that change only the objective (the image likelihood), never a parameter: a checkpoint
# trained with one value can start a run with another (trainer's init_checkpoint)
LIKELIHOOD_OPTIONS = ("likelihood", "normalized", "pixel_std")
# options a run may change when it starts from a checkpoint: the likelihood's, and the number of
# slots where no parameter depends on it (the weights must still load: SRI-SA*'s per-slot
# initialisations do not, and are refused)
CONTINUABLE_OPTIONS = (*LIKELIHOOD_OPTIONS, "num_slots")
MODEL_NAMES = tuple(REGISTRY)
IMPLEMENTED = tuple(n for n, s in REGISTRY.items() if s.implemented)
DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {n: dict(s.defaults) for n, s in REGISTRY.items()}


def model_spec(model: str | nn.Module) -> ModelSpec:
    """The registry entry of a model name or of a built model (wrappers are looked through)."""
    if isinstance(model, nn.Module):
        while hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        model = getattr(getattr(model, "_orig_mod", model), "name", None)
    if model not in REGISTRY:
        raise ValueError(f"unknown model {model!r}; valid names: {', '.join(MODEL_NAMES)}")
    return REGISTRY[model]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_int(o: dict[str, Any], key: str, low: int, hint: str = "") -> None:
    if key in o and (not _is_int(o[key]) or o[key] < low):
        raise ValueError(f"{key} must be an integer >= {low}{hint}; got {o[key]!r}")


def _validate(o: dict[str, Any]) -> None:
    size = o["image_size"]
    if not _is_int(size) or size < 16 or size % 16:
        raise ValueError(f"image_size must be a positive multiple of 16 (e.g. 64 or 96); got {size!r}")
    _check_int(o, "num_slots", 1, " (K)")
    if not _is_int(o["slot_dim"]) or o["slot_dim"] < 8 or o["slot_dim"] % 8:
        raise ValueError(f"slot_dim must be a positive multiple of 8 (GroupNorm(8)); got {o['slot_dim']!r}")
    for key in ("scene_dim", "component_dim", "feature_dim", "refinement_steps", "sa_iterations"):
        _check_int(o, key, 1)
    for key in ("relation_layers", "refinement_steps_late", "curriculum_step"):
        _check_int(o, key, 0)
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
    spec = model_spec(name)
    if not spec.implemented:
        raise NotImplementedError(f"model {name!r} is not implemented yet; implemented models: "
                                  f"{', '.join(IMPLEMENTED)}")
    unknown = sorted(set(options) - set(spec.defaults))
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)} for model {name!r}; valid options: "
                        f"{', '.join(spec.defaults)}")
    resolved = {**spec.defaults, **options}
    _validate(resolved)
    return spec.build(name, resolved)
