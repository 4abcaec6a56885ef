"""Evaluation metrics: ARI-FG, FID (torch-fidelity features, no torchvision needed), bpd, S-Acc."""
from __future__ import annotations

from sri.metrics.ari import ari_fg, nanmean
from sri.metrics.bpd import bits_per_dim, nelbo_nats, sri_loss_nats
from sri.metrics.fid import (
    INCEPTION_NAME,
    INCEPTION_WEIGHTS_FILE,
    INCEPTION_WEIGHTS_URL,
    FIDStats,
    InceptionWeightsMissing,
    build_feature_extractor,
    cached_stats,
    extract_features,
    feature_statistics,
    fid_between,
    fid_from_stats,
    frechet_distance,
    quantize_uint8,
    register_feature_extractor,
    resolve_inception_weights,
    torch_fidelity_api,
)
from sri.metrics.judge import judge_identity, judge_samples
from sri.metrics.stacks import (
    coloured_blocks,
    count_blocks,
    float_one_block,
    image_blocks,
    judge_samples_masks_only,
    judge_samples_rules,
    s_acc,
    stack_is_plausible,
    validate_stack_judge,
)

__all__ = [
    "ari_fg", "nanmean", "bits_per_dim", "nelbo_nats", "sri_loss_nats",
    "INCEPTION_NAME", "INCEPTION_WEIGHTS_FILE", "INCEPTION_WEIGHTS_URL", "FIDStats",
    "InceptionWeightsMissing", "build_feature_extractor", "cached_stats", "extract_features",
    "feature_statistics", "fid_between", "fid_from_stats", "frechet_distance", "quantize_uint8",
    "register_feature_extractor", "resolve_inception_weights", "torch_fidelity_api",
    "coloured_blocks", "count_blocks", "image_blocks", "float_one_block", "judge_samples",
    "judge_samples_masks_only", "judge_samples_rules", "judge_identity", "s_acc", "stack_is_plausible",
    "validate_stack_judge", "order_consistency",
]


def __getattr__(name: str):
    # order_consistency lives in sri.metrics.order (owned by the reporting code); loaded lazily.
    if name == "order_consistency":
        from sri.metrics.order import order_consistency
        return order_consistency
    raise AttributeError(f"module 'sri.metrics' has no attribute {name!r}")
