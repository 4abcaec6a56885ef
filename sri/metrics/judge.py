"""`judge_samples`: S-Acc's judge, the one function every S-Acc in the suite goes through.

At the image size a learned judge was fit for (32x32 `blocks` samples, `learned_judge`), it decides;
at any other size, or when rule thresholds are overridden, the rule-based judge
(`stacks.judge_samples_rules`) does. docs/judge/ scores both against samples labelled by eye.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

import torch
from torch import Tensor

from sri.metrics.learned_judge import WEIGHTS, learned_verdicts, load_judge
from sri.metrics.stacks import JUDGE_DEFAULTS, judge_samples_rules

METHODS = ("auto", "learned", "rules")


def learned_size() -> int | None:
    """The image size the shipped learned judge was fit at, or None when it is absent."""
    return load_judge()["image_size"] if WEIGHTS.is_file() else None


def judge_method(image_size: int, method: str = "auto") -> str:
    """Which judge `judge_samples` uses for square images of `image_size` ("learned" or "rules")."""
    if method not in METHODS:
        raise ValueError(f"judge method must be one of {METHODS}, got {method!r}")
    if method == "auto":
        return "learned" if learned_size() == image_size else "rules"
    return method


def judge_identity(image_size: int = 32) -> dict[str, Any]:
    """What decides S-Acc at `image_size`: the method, the rule thresholds and (learned) the SHA-256 of
    the fitted trees; results files record it so that S-Acc of different judges is not mixed."""
    out: dict[str, Any] = {"method": judge_method(image_size), "rules": dict(JUDGE_DEFAULTS)}
    if out["method"] == "learned":
        w = load_judge()
        decision = json.dumps({k: w[k] for k in ("image_size", "num_features", "baseline", "trees")}, sort_keys=True)
        out["learned"] = {"file": WEIGHTS.name, "sha256": hashlib.sha256(decision.encode()).hexdigest()}
    return out


def judge_samples(images: Tensor, masks: Tensor | None = None, *, method: str = "auto", **overrides: Any) -> Tensor:
    """Does each generated scene show one physically plausible stack? -> `[N]` bool.

    `images` `[N,3,H,W]` in [0,1] and softmax `masks` `[N,K,1,H,W]`, as a model's `sample` returns
    them (both judges decide from the image; `masks` are accepted for the common signature).
    `method`: "auto" (the learned judge at the size it was fit for, rules elsewhere), "learned" or
    "rules"; `overrides` are rule thresholds (`JUDGE_DEFAULTS`) and imply the rules.
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"judge_samples expects images [N,3,H,W] in [0,1], got shape {tuple(images.shape)}")
    chosen = "rules" if overrides and method == "auto" else judge_method(int(images.shape[-1]), method)
    if chosen == "rules":
        return judge_samples_rules(images, masks, **overrides)
    if overrides:
        raise ValueError(f"rule thresholds {sorted(overrides)} do not apply to the learned judge: "
                         f"pass method='rules' with them")
    arr = images.detach().float().clamp(0, 1).cpu().numpy()
    return torch.from_numpy(learned_verdicts(arr)).bool()
