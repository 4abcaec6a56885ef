"""One optimisation step with two GECO instances (L_seg and L_SRI) and a non-finite-loss guard."""
from __future__ import annotations

import contextlib
from typing import Any, Mapping

import torch
import torch.nn as nn
from torch import Tensor

from sri.objectives import GECO

__all__ = ["make_gecos", "train_step", "unwrap_model", "SRI_KL_TERMS"]

SRI_KL_TERMS = ("scene_kl", "slot_kl", "cross_order_kl")


def unwrap_model(model: nn.Module) -> nn.Module:
    """The underlying model of a DistributedDataParallel / DataParallel / compiled wrapper."""
    while hasattr(model, "module") and isinstance(model.module, nn.Module):
        model = model.module
    return getattr(model, "_orig_mod", model)


def make_gecos(model: nn.Module, *, goal_per_element: float, geco_lr: float = 1e-6,
               speedup: float = 10.0, alpha: float = 0.99) -> dict[str, GECO]:
    """GECOs for `model`: "seg" (and "sri" for SRI); goal = target * 3HW, step = lr * 64^2 / H^2."""
    m = unwrap_model(model)
    size = int(getattr(m, "image_size"))
    goal = float(goal_per_element) * 3 * size * size
    step = float(geco_lr) * 64 ** 2 / size ** 2
    gecos = {"seg": GECO(goal, step, alpha=alpha, speedup=speedup)}
    if getattr(m, "name", None) == "sri":
        gecos["sri"] = GECO(goal, step, alpha=alpha, speedup=speedup)
    return gecos


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
    """One step of L = GECO_seg(err_seg, KL_seg) + GECO_sri(err_sri, sceneKL + slotKL + crossOrderKL).

    Errors are batch means of per-image NLLs. When the loss is non-finite, no optimizer step is
    taken, GECO is not updated and `finite` is 0.0. Returns floats: `loss`, every term (batch
    mean), `beta_seg`, `beta_sri` (SRI only; the betas used in this step) and `finite`.
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
    geco_seg = gecos["seg"]
    beta_seg = geco_seg.beta
    err_seg = terms["seg_nll"]
    loss = geco_seg.loss(err_seg, terms["seg_kl"], update=False)
    geco_sri = gecos.get("sri")
    beta_sri = None
    if geco_sri is not None and "sri_nll" in terms:
        beta_sri = geco_sri.beta
        err_sri = terms["sri_nll"]
        kl_sri = sum(terms[k] for k in SRI_KL_TERMS)
        loss = loss + geco_sri.loss(err_sri, kl_sri, update=False)
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
        geco_seg.update(err_seg)
        if beta_sri is not None:
            geco_sri.update(err_sri)
    optimizer.zero_grad(set_to_none=True)
    stats = {"loss": float(loss.detach())}
    stats.update({k: float(v.detach()) for k, v in terms.items()})
    stats["beta_seg"] = float(beta_seg)
    if beta_sri is not None:
        stats["beta_sri"] = float(beta_sri)
    stats["finite"] = 1.0 if finite else 0.0
    return stats
