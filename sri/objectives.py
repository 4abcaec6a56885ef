"""Image likelihoods (Eqs. 3-4), diagonal-Gaussian KLs and GECO (GENESIS form; EMORL form).

Shapes: images `[B, 3, H, W]`, per-slot means `[B, K, 3, H, W]`, log-masks `[B, K, 1, H, W]`
(log-softmax over K). Every NLL is summed over C, H, W and returned per image `[B]`.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "gaussian_nll", "mog_nll", "image_nll", "normal_log_prob", "kl_normal", "kl_std_normal",
    "mc_kl_normal", "softplus_std", "GECO", "EmorlGECO", "GECO_FORMS", "LOG_2PI",
]

LOG_2PI = math.log(2.0 * math.pi)


def normal_log_prob(x: Tensor, mean: Tensor, std: Tensor | float, normalized: bool = True) -> Tensor:
    """Element-wise log N(x; mean, std^2); without the -0.5 log(2 pi) term when not normalised."""
    std_t = torch.as_tensor(std, dtype=mean.dtype, device=mean.device)
    out = -0.5 * ((x - mean) / std_t) ** 2 - torch.log(std_t)
    return out - 0.5 * LOG_2PI if normalized else out


def gaussian_nll(x: Tensor, log_masks: Tensor, means: Tensor, std: float,
                 normalized: bool = True) -> Tensor:
    """Eq. 3: -log N(x; sum_k m_k x_k, std^2) summed over C,H,W -> `[B]`."""
    recon = (log_masks.exp() * means).sum(1)
    return -normal_log_prob(x, recon, std, normalized).flatten(1).sum(1)


def mog_nll(x: Tensor, log_masks: Tensor, means: Tensor, std: float,
            normalized: bool = True) -> Tensor:
    """Eq. 4: -log sum_k m_k N(x; x_k, std^2) via logsumexp over slots, summed over C,H,W -> `[B]`.

    As in the authors' release the mixture is taken per pixel *and channel* (the GECO targets of
    the authors' release were tuned for this form).
    """
    log_p = normal_log_prob(x.unsqueeze(1), means, std, normalized) + log_masks
    return -torch.logsumexp(log_p, dim=1).flatten(1).sum(1)


def image_nll(x: Tensor, log_masks: Tensor, means: Tensor, std: float, likelihood: str,
              normalized: bool = True) -> Tensor:
    """Dispatch on `likelihood` ("gaussian" | "mog")."""
    if likelihood == "gaussian":
        return gaussian_nll(x, log_masks, means, std, normalized)
    if likelihood == "mog":
        return mog_nll(x, log_masks, means, std, normalized)
    raise ValueError(f"unknown likelihood {likelihood!r}; use 'gaussian' or 'mog'")


def kl_normal(mu_q: Tensor, std_q: Tensor, mu_p: Tensor, std_p: Tensor) -> Tensor:
    """Analytic KL(N(mu_q, std_q^2) || N(mu_p, std_p^2)) of diagonal Gaussians, summed over the last dim."""
    var_ratio = (std_q / std_p) ** 2
    t = ((mu_q - mu_p) / std_p) ** 2
    return 0.5 * (var_ratio + t - 1.0 - torch.log(var_ratio)).sum(-1)


def kl_std_normal(mu: Tensor, std: Tensor) -> Tensor:
    """Analytic KL(N(mu, std^2) || N(0, I)), summed over the last dim."""
    return 0.5 * (std ** 2 + mu ** 2 - 1.0 - 2.0 * torch.log(std)).sum(-1)


def mc_kl_normal(z: Tensor, mu_q: Tensor, std_q: Tensor, mu_p: Tensor | float = 0.0,
                 std_p: Tensor | float = 1.0) -> Tensor:
    """Single-sample KL estimate log q(z) - log p(z), summed over the last dim."""
    mu_p = torch.as_tensor(mu_p, dtype=z.dtype, device=z.device)
    std_p = torch.as_tensor(std_p, dtype=z.dtype, device=z.device)
    return (normal_log_prob(z, mu_q, std_q) - normal_log_prob(z, mu_p, std_p)).sum(-1)


def softplus_std(x: Tensor) -> Tensor:
    """SRI std parameterisation: sqrt(softplus(min(x, 80)) + 1e-5)."""
    return torch.sqrt(F.softplus(x.clamp(max=80.0)) + 1e-5)


class GECO:
    """GECO Lagrange multiplier in the GENESIS form (as in the GENESIS-v2 and SRI releases).

    `loss(err, kl)` returns err + beta * kl with the current beta and then (unless
    `update=False`) updates the error EMA and beta:
    err_ema <- err (first step) else alpha * err_ema + (1 - alpha) * err;
    beta <- clamp(beta * exp(step_size * (goal - err_ema) * (speedup if goal > err_ema else 1)),
    beta_min, beta_max).
    """

    def __init__(self, goal: float, step_size: float, alpha: float = 0.99,
                 speedup: float | None = 10.0, beta_init: float = 1.0,
                 beta_min: float = 1e-10, beta_max: float = 1e10) -> None:
        self.goal = float(goal)
        self.step_size = float(step_size)
        self.alpha = float(alpha)
        self.speedup = None if speedup is None else float(speedup)
        self.beta_min = float(beta_min)
        self.beta_max = float(beta_max)
        self.beta = float(beta_init)
        self.err_ema: float | None = None

    def loss(self, err: Tensor, kl: Tensor, update: bool = True) -> Tensor:
        """err + beta * kl with the beta from before this step; then update (optional)."""
        out = err + self.beta * kl
        if update:
            self.update(err)
        return out

    def update(self, err: Tensor | float) -> None:
        """Advance the error EMA and beta with a (batch-mean) reconstruction error."""
        e = float(err.detach()) if isinstance(err, Tensor) else float(err)
        if self.err_ema is None:
            self.err_ema = e
        else:
            self.err_ema = self.alpha * self.err_ema + (1.0 - self.alpha) * e
        constraint = self.goal - self.err_ema
        scale = self.speedup if (self.speedup is not None and constraint > 0) else 1.0
        # in log space so that huge steps clamp instead of overflowing
        log_beta = math.log(self.beta) + self.step_size * scale * constraint
        log_beta = min(max(log_beta, math.log(self.beta_min)), math.log(self.beta_max))
        self.beta = min(max(math.exp(log_beta), self.beta_min), self.beta_max)

    def state_dict(self) -> dict[str, Any]:
        """Plain-python state (goal, step size, alpha, speedup, bounds, beta, err_ema)."""
        return {"goal": self.goal, "step_size": self.step_size, "alpha": self.alpha,
                "speedup": self.speedup, "beta_min": self.beta_min, "beta_max": self.beta_max,
                "beta": self.beta, "err_ema": self.err_ema}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state written by `state_dict` (tensors are accepted as well)."""
        for key in ("goal", "step_size", "alpha", "beta_min", "beta_max", "beta"):
            if key in state:
                setattr(self, key, float(state[key]))
        if "speedup" in state:
            self.speedup = None if state["speedup"] is None else float(state["speedup"])
        if "err_ema" in state:
            self.err_ema = None if state["err_ema"] is None else float(state["err_ema"])

    def __repr__(self) -> str:
        return (f"GECO(goal={self.goal:.4g}, step_size={self.step_size:.3g}, beta={self.beta:.4g}, "
                f"err_ema={self.err_ema})")


def _softplus(b: float) -> float:
    return max(b, 0.0) + math.log1p(math.exp(-abs(b)))


def _softplus_inverse(y: float) -> float:
    return y + math.log(-math.expm1(-y))


class EmorlGECO:
    """GECO in EfficientMORL's form (EfficientMORL paper and release): a softplus Lagrange multiplier on the error.

    `loss(err, kl)` returns lambda * err + kl with lambda = softplus(b) from before this step
    (the constant -lambda * goal of the Lagrangian is dropped). `update(err)`:
    err_ema <- err (first step) else alpha * err_ema + (1 - alpha) * err (an EMA of the
    constraint err - goal, since goal is fixed); after `warm_start` updates,
    b <- max(b + step_size * (err_ema - goal) * (speedup if err_ema < goal else 1), b_min).
    b starts at b_min = 0.55, so lambda >= softplus(0.55) ~ 1.005 and decays back to about 1 (the
    ELBO) once the target is reached. `beta` = 1 / lambda is the KL weight relative to the error,
    as the GENESIS form's beta, for logs and comparisons.
    """

    def __init__(self, goal: float, step_size: float, alpha: float = 0.99,
                 speedup: float | None = 10.0, b_init: float = 0.55, b_min: float = 0.55,
                 warm_start: int = 1000) -> None:
        self.goal = float(goal)
        self.step_size = float(step_size)
        self.alpha = float(alpha)
        self.speedup = None if speedup is None else float(speedup)
        self.b_min = float(b_min)
        self.b = max(float(b_init), self.b_min)
        self.warm_start = int(warm_start)
        self.steps = 0
        self.err_ema: float | None = None

    @property
    def multiplier(self) -> float:
        """The Lagrange multiplier lambda = softplus(b) on the reconstruction error."""
        return _softplus(self.b)

    @property
    def beta(self) -> float:
        """The KL weight relative to the error, 1 / lambda."""
        return 1.0 / self.multiplier

    def loss(self, err: Tensor, kl: Tensor, update: bool = True) -> Tensor:
        """lambda * err + kl with the lambda from before this step; then update (optional)."""
        out = self.multiplier * err + kl
        if update:
            self.update(err)
        return out

    def update(self, err: Tensor | float) -> None:
        """Advance the error EMA and, after the warm start, b with a (batch-mean) reconstruction error."""
        e = float(err.detach()) if isinstance(err, Tensor) else float(err)
        self.err_ema = e if self.err_ema is None else self.alpha * self.err_ema + (1.0 - self.alpha) * e
        self.steps += 1
        if self.steps <= self.warm_start:
            return
        constraint = self.err_ema - self.goal  # > 0: violated
        scale = self.speedup if (self.speedup is not None and constraint < 0) else 1.0
        self.b = max(self.b + self.step_size * scale * constraint, self.b_min)

    def state_dict(self) -> dict[str, Any]:
        """Plain-python state (hyper-parameters, b, steps, err_ema; `beta` for reading only)."""
        return {"goal": self.goal, "step_size": self.step_size, "alpha": self.alpha,
                "speedup": self.speedup, "b_min": self.b_min, "warm_start": self.warm_start,
                "b": self.b, "steps": self.steps, "err_ema": self.err_ema, "beta": self.beta}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state written by `state_dict`; a state with only `beta` sets b = softplus^-1(1 / beta)."""
        for key in ("goal", "step_size", "alpha", "b_min"):
            if key in state:
                setattr(self, key, float(state[key]))
        for key in ("warm_start", "steps"):
            if key in state:
                setattr(self, key, int(state[key]))
        if "speedup" in state:
            self.speedup = None if state["speedup"] is None else float(state["speedup"])
        if "err_ema" in state:
            self.err_ema = None if state["err_ema"] is None else float(state["err_ema"])
        if "b" in state:
            self.b = float(state["b"])
        elif "beta" in state:
            self.b = max(_softplus_inverse(1.0 / float(state["beta"])), self.b_min)

    def __repr__(self) -> str:
        return (f"EmorlGECO(goal={self.goal:.4g}, step_size={self.step_size:.3g}, b={self.b:.4g}, "
                f"steps={self.steps}, err_ema={self.err_ema})")


# the GECO forms a model's registry entry can name (`ModelSpec.geco`)
GECO_FORMS: dict[str, type] = {"genesis": GECO, "emorl": EmorlGECO}
