"""Slot order alignment (paper Appendix A.1): greedy (Algorithm 1) and Hungarian matching."""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["greedy_match", "hungarian_match", "match", "matching_cost"]


def _check(rollout_means: Tensor, segregation_means: Tensor) -> None:
    if rollout_means.dim() != 3 or rollout_means.shape != segregation_means.shape:
        raise ValueError(
            "matching expects rollout_means and segregation_means of the same shape [B, K, D]; "
            f"got {tuple(rollout_means.shape)} and {tuple(segregation_means.shape)}")


def matching_cost(rollout_means: Tensor, segregation_means: Tensor) -> Tensor:
    """C[b, i, j] = ||rollout_i - segregation_j||_2 as [B, K, K]; non-finite entries become 1e30."""
    _check(rollout_means, segregation_means)
    diff = rollout_means.unsqueeze(2) - segregation_means.unsqueeze(1)
    cost = diff.pow(2).sum(-1).sqrt()
    return torch.nan_to_num(cost, nan=1e30, posinf=1e30, neginf=1e30)


@torch.no_grad()
def greedy_match(rollout_means: Tensor, segregation_means: Tensor) -> Tensor:
    """Algorithm 1: rollout position i = 1..K takes the cheapest unused segregation slot.

    Inputs `[B, K, D]`; returns `order [B, K]` long, `order[b, i]` = segregation slot placed at i.
    Ties go to the lowest index.
    """
    cost = matching_cost(rollout_means.detach().float(), segregation_means.detach().float())
    B, K, _ = cost.shape
    used = torch.zeros(B, K, dtype=torch.bool, device=cost.device)
    cols = []
    for i in range(K):
        row = cost[:, i].masked_fill(used, float("inf"))
        j = row.argmin(dim=1)
        used[torch.arange(B, device=cost.device), j] = True
        cols.append(j)
    return torch.stack(cols, dim=1).long()


@torch.no_grad()
def hungarian_match(rollout_means: Tensor, segregation_means: Tensor) -> Tensor:
    """Minimum total-cost assignment (scipy `linear_sum_assignment`); same contract as greedy."""
    from scipy.optimize import linear_sum_assignment

    cost = matching_cost(rollout_means.detach().float(), segregation_means.detach().float())
    cost_np = cost.cpu().numpy().astype(np.float64)
    out = np.empty(cost_np.shape[:2], dtype=np.int64)
    for b in range(cost_np.shape[0]):
        rows, cols = linear_sum_assignment(cost_np[b])
        out[b, rows] = cols
    return torch.from_numpy(out).to(rollout_means.device)


def match(method: str, rollout_means: Tensor, segregation_means: Tensor) -> Tensor:
    """Dispatch on `method` ("greedy" | "hungarian")."""
    if method == "greedy":
        return greedy_match(rollout_means, segregation_means)
    if method == "hungarian":
        return hungarian_match(rollout_means, segregation_means)
    raise ValueError(f"unknown matching {method!r}; use 'greedy' or 'hungarian'")
