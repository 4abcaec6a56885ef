"""One optimisation step: one GECO per loss group of the model (registry), non-finite-loss guard."""
from __future__ import annotations

import contextlib
from typing import Any, Mapping

import torch
import torch.nn as nn
from torch import Tensor

from sri.models.registry import LOSS_GROUPS, model_spec
from sri.objectives import GECO, GECO_FORMS, EmorlGECO

__all__ = ["make_gecos", "train_step", "unwrap_model", "SRI_KL_TERMS"]

SRI_KL_TERMS = LOSS_GROUPS["sri"].kl


def unwrap_model(model: nn.Module) -> nn.Module:
    """The underlying model of a DistributedDataParallel / DataParallel / compiled wrapper."""
    while hasattr(model, "module") and isinstance(model.module, nn.Module):
        model = model.module
    return getattr(model, "_orig_mod", model)


def make_gecos(model: nn.Module, *, goal_per_element: float, geco_lr: float = 1e-6,
               speedup: float = 10.0, alpha: float = 0.99) -> dict[str, GECO | EmorlGECO]:
    """One GECO per loss group of `model` (its registry entry); goal = target * 3HW, step = lr * 64^2 / H^2.

    The registry's `geco` picks the form from `sri.objectives.GECO_FORMS` ("genesis": `GECO`,
    "emorl": `EmorlGECO`).
    """
    m = unwrap_model(model)
    size = int(getattr(m, "image_size"))
    goal = float(goal_per_element) * 3 * size * size
    step = float(geco_lr) * 64 ** 2 / size ** 2
    spec = model_spec(m)
    cls = GECO_FORMS[spec.geco]
    return {group: cls(goal, step, alpha=alpha, speedup=speedup) for group in spec.loss_groups}


def _images(batch: Any, device: torch.device) -> Tensor:
    x = batch["image"] if isinstance(batch, Mapping) else batch
    if not isinstance(x, Tensor):
        raise TypeError("train_step expects a tensor [B,3,H,W] or a dict with key 'image'; got "
                        f"{type(x).__name__}")
    if x.dtype == torch.uint8:
        raise TypeError("train_step expects float images in [0, 1]; got uint8 (divide by 255)")
    return x.to(device, dtype=torch.float32, non_blocking=True)


def train_step(model: nn.Module, batch: Any, optimizer: torch.optim.Optimizer,
               gecos: Mapping[str, GECO], *, scaler: Any = None, amp_dtype: torch.dtype | None = None,
               grad_clip: float | None = None) -> dict[str, float]:
    """One step of L = sum over loss groups g of GECO_g(err_g, KL_g) (`sri.models.LOSS_GROUPS`).

    For SRI: GECO_seg(err_seg, KL_seg) + GECO_sri(err_sri, sceneKL + slotKL + crossOrderKL).
    Errors are batch means of per-image NLLs. When the loss is non-finite, no optimizer step is
    taken, GECO is not updated and `finite` is 0.0. Returns floats: `loss`, every term (batch
    mean), `beta_<group>` per GECO (the betas used in this step) and `finite`.
    Under torch.distributed the finite flag is all-reduced so that all ranks skip together; GECO
    sees this rank's error unless its `update` averages over ranks (the trainer's GECOs do).
    """
    device = next(model.parameters()).device
    x = _images(batch, device)
    optimizer.zero_grad(set_to_none=True)
    amp = (torch.autocast(device_type=device.type, dtype=amp_dtype) if amp_dtype is not None
           else contextlib.nullcontext())
    with amp:
        out = model(x)
    terms = {k: v.float().mean() for k, v in out.terms.items()}
    betas: dict[str, float] = {}
    errs: dict[str, Tensor] = {}
    loss = None
    for group, geco in gecos.items():
        spec = LOSS_GROUPS[group]
        missing = [k for k in (spec.nll, *spec.kl) if k not in terms]
        if missing:
            raise KeyError(f"loss group {group!r} needs the terms {', '.join(missing)}, which the model "
                           f"does not return (its terms: {', '.join(terms)}); make_gecos gives the groups "
                           "of the model's registry entry")
        betas[group], errs[group] = geco.beta, terms[spec.nll]
        kl = terms[spec.kl[0]]
        for k in spec.kl[1:]:
            kl = kl + terms[k]
        part = geco.loss(errs[group], kl, update=False)
        loss = part if loss is None else loss + part
    flag = torch.isfinite(loss.detach()).to(torch.float32)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # every DDP rank must skip together, or the gradient all-reduce would hang
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
    finite = bool(flag.item())
    if finite:
        if scaler is not None:
            scaler.scale(loss).backward()
            if grad_clip is not None:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
        for group, geco in gecos.items():
            geco.update(errs[group])
    optimizer.zero_grad(set_to_none=True)
    stats = {"loss": float(loss.detach())}
    stats.update({k: float(v.detach()) for k, v in terms.items()})
    for group, beta in betas.items():
        stats[f"beta_{group}"] = float(beta)
    stats["finite"] = 1.0 if finite else 0.0
    return stats
