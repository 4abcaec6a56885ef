"""Negative ELBO in bits per dimension from a model's `elbo_terms` (normalised likelihood)."""
from __future__ import annotations

import math

from torch import Tensor

AUX_TERMS = ("cross_order_kl",)  # auxiliary KLs of L_SRI that are not part of the model's ELBO


def bits_per_dim(nats: Tensor | float, num_dims: int) -> Tensor | float:
    """Convert nats per image to bits per dimension: nats / (ln 2 * num_dims), num_dims = 3*H*W."""
    if num_dims <= 0:
        raise ValueError(f"num_dims must be positive (3*H*W), got {num_dims}")
    return nats / (math.log(2.0) * num_dims)


def _check(terms: dict[str, Tensor]) -> list[str]:
    if "nll" not in terms:
        raise KeyError(f"elbo_terms must contain 'nll' (got {sorted(terms)}); see docs/ARCHITECTURE.md")
    return [k for k in terms if k.endswith("kl")]


def nelbo_nats(terms: dict[str, Tensor]) -> Tensor:
    """The model's -ELBO per image in nats: nll + every KL term except the auxiliary crossOrderKL.

    genv2: nll + kl; SRI: nll + scene_kl + slot_kl.
    """
    kls = [k for k in _check(terms) if k not in AUX_TERMS]
    return sum((terms[k] for k in kls), terms["nll"])


def sri_loss_nats(terms: dict[str, Tensor]) -> Tensor:
    """L_SRI per image in nats (Table 3): nll + all KL terms, crossOrderKL included when present."""
    return sum((terms[k] for k in _check(terms)), terms["nll"])


__all__ = ["bits_per_dim", "nelbo_nats", "sri_loss_nats", "AUX_TERMS"]
