"""Is a model learning? ARI-FG, reconstruction MSE against the mean-image baseline, and the KL on
held-out scenes, plus what its samples show (S-Acc, visible objects) beside the data's values.

Used by `python -m sri.bench learn` (learning curves) and by the demo's summary. Every model is
treated alike through its output contract: `seg_masks` (the segregation decoder's masks) when the
model has them, else `masks`, for the segmentation; `masks` for the ordered masks; `recon` for the
reconstruction; every term not ending in `_nll` counts as KL.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from sri.metrics.ari import ari_fg, nanmean
from sri.metrics.judge import judge_samples
from sri.metrics.stacks import coloured_blocks, count_blocks, image_blocks

__all__ = ["mean_image", "reconstruction_metrics", "sample_metrics", "data_reference"]


def mean_image(images: Tensor) -> Tensor:
    """The mean training image `[3, H, W]`: the baseline that predicts every scene as the same."""
    return images.float().mean(0)


def _labels(masks: Tensor) -> Tensor:
    return (masks.squeeze(2) if masks.dim() == 5 else masks).argmax(1)


@torch.no_grad()
def reconstruction_metrics(model: nn.Module, images: Tensor, true_masks: Tensor, baseline: Tensor,
                           *, batch_size: int = 64, seed: int = 0) -> dict[str, float]:
    """Held-out scenes `[N,3,H,W]` with their true masks `[N,H,W]` -> learning metrics.

    `ari_fg`: segmentation masks (segregation decoder where the model has one);
    `ari_fg_ordered`: the ordered posterior's masks (models with both only); `mse`: reconstruction;
    `mse_baseline`: the mean training image `baseline`; `mse_ratio` = mse / mse_baseline;
    `kl`: the summed KL terms in nats per image; `nll`: the summed NLL terms.
    """
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    gen_state = torch.get_rng_state()
    torch.manual_seed(seed)  # the posterior samples are noisy: the same noise at every evaluation
    seg, ordered, sq, kl, nll = [], [], 0.0, 0.0, 0.0
    try:
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size].to(device).float()
            m = true_masks[i:i + batch_size].to(device)
            out = model(x)
            main = out.seg_masks if out.seg_masks is not None else out.masks
            seg.append(ari_fg(m, _labels(main)).cpu())
            if out.seg_masks is not None:
                ordered.append(ari_fg(m, _labels(out.masks)).cpu())
            sq += float(((out.recon.float() - x) ** 2).sum())
            kl += float(sum(v.float().sum() for k, v in out.terms.items() if not k.endswith("_nll")))
            nll += float(sum(v.float().sum() for k, v in out.terms.items() if k.endswith("_nll")))
    finally:
        torch.set_rng_state(gen_state)
        model.train(was)
    n = len(images)
    mse = sq / images[0].numel() / n
    base = float(((images.float() - baseline.float().cpu()) ** 2).mean())
    res = {"ari_fg": nanmean(torch.cat(seg)), "mse": mse, "mse_baseline": base,
           "mse_ratio": mse / base if base > 0 else float("nan"), "kl": kl / n, "nll": nll / n}
    if ordered:
        res["ari_fg_ordered"] = nanmean(torch.cat(ordered))
    return res


@torch.no_grad()
def sample_metrics(model: nn.Module, num: int, *, batch_size: int = 64, seed: int = 0,
                   temperature: float = 1.0) -> dict[str, float]:
    """`num` prior samples -> `s_acc` (share judged one plausible stack by `judge_samples`),
    `visible_objects` (mean blocks per sample in the argmax of the masks, `count_blocks`) and
    `coloured_objects` (those of them that are coloured in the image, `coloured_blocks`) and
    `image_objects` (blocks counted from the image alone, `image_blocks`)."""
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    ok, counts, coloured, from_image = [], [], [], []
    done = 0
    while done < num:
        b = min(batch_size, num - done)
        out = model.sample(b, temperature=temperature, generator=gen)
        labels = _labels(out.masks).cpu()
        ok.append(judge_samples(out.images, out.masks))
        counts.append(count_blocks(labels))
        coloured.append(coloured_blocks(out.images, labels))
        from_image.append(image_blocks(out.images))
        done += b
    return {"s_acc": float(torch.cat(ok).float().mean()),
            "visible_objects": float(torch.cat(counts).float().mean()),
            "coloured_objects": float(torch.cat(coloured).float().mean()),
            "image_objects": float(torch.cat(from_image).float().mean())}


@torch.no_grad()
def sample_scene_fd(model: nn.Module, real_images: Tensor, num: int, *, seed: int = 0,
                    batch_size: int = 64) -> float:
    """Frechet distance of `num` prior samples to `real_images` in the blocks scene-feature space
    (`sri.metrics.scene_features`); NaN when no extractor is trained for this image size."""
    from sri.metrics.scene_features import default_weights_path, load_scene_features, scene_frechet_distance

    size = int(real_images.shape[-1])
    if not default_weights_path(size).is_file():
        return float("nan")
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed + 1)
    fake = torch.cat([model.sample(min(batch_size, num - i), generator=gen).images.clamp(0, 1).cpu()
                      for i in range(0, num, batch_size)])
    return scene_frechet_distance(load_scene_features(size), fake, real_images.cpu())


def data_reference(true_masks: Tensor, images: Tensor) -> dict[str, float]:
    """The same sample figures on real scenes: S-Acc of their images `[N,3,H,W]` by the judge,
    visible objects of their ground-truth masks `[N,H,W]`."""
    m = true_masks.cpu()
    return {"s_acc": float(judge_samples(images.cpu()).float().mean()),
            "visible_objects": float(count_blocks(m).float().mean()),
            "coloured_objects": float(coloured_blocks(images.cpu(), m).float().mean()),
            "image_objects": float(image_blocks(images.cpu()).float().mean())}


def meets(res: dict[str, Any], *, ari: float = 0.75, mse_ratio: float = 0.25) -> bool:
    """The demo's bar: ARI-FG >= `ari` and reconstruction MSE <= `mse_ratio` x the baseline's."""
    return bool(res.get("ari_fg", 0.0) >= ari and res.get("mse_ratio", float("inf")) <= mse_ratio)
