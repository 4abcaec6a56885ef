"""The names of the paper's final metrics: the one list that configs, evaluation and reports use."""
from __future__ import annotations

__all__ = ["METRICS"]

# FID, ARI-FG of the foreground, the negative ELBO and SRI's loss in bits per dimension, S-Acc
METRICS = ("fid", "ari_fg", "nelbo_bpd", "sri_loss_bpd", "s_acc")
