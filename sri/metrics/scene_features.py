"""A Frechet distance for `blocks` scenes that needs no Inception weights.

A small CNN is trained on `blocks` to predict, from the image alone, the ground truth of each
scene: the number of blocks and, per block (bottom to top), whether it is there, its bounding box
and its mean colour. Its 128-d penultimate layer is the feature space; the Frechet distance of
two image sets is computed there (`sri.metrics.fid.frechet_distance`). Validated on sets whose
answer is known (`validate`): two independent sets of real scenes are close; the same scenes with
one block floating, or with the top block missing, are clearly farther.

    python -m sri.metrics.scene_features train --size 32     # 140 s wall-clock on one core (docs/RESULTS.md)
    python -m sri.metrics.scene_features validate --size 32
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ["SceneFeatureNet", "scene_targets", "train_scene_features", "load_scene_features",
           "scene_features", "scene_frechet_distance", "validate", "default_weights_path"]

MAX_BLOCKS = 5
FEATURE_DIM = 128


def default_weights_path(image_size: int) -> Path:
    """Where `train` writes and the suite reads the weights for one image size (in the package)."""
    return Path(__file__).resolve().parent / "weights" / f"scene_features_{int(image_size)}.pt"


class SceneFeatureNet(nn.Module):
    """Conv(3->32) + 3 strided convs (->64->64->128) + Linear -> 128-d features; heads for the targets."""

    def __init__(self, image_size: int = 32) -> None:
        super().__init__()
        if image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8, got {image_size}")
        self.image_size = int(image_size)
        self.convs = nn.Sequential(
            nn.Conv2d(3, 32, 3, 1, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(64, 64, 3, 2, 1), nn.ReLU(), nn.Conv2d(64, 128, 3, 2, 1), nn.ReLU())
        self.fc = nn.Linear(128 * (image_size // 8) ** 2, FEATURE_DIM)
        self.count_head = nn.Linear(FEATURE_DIM, MAX_BLOCKS + 1)
        self.block_head = nn.Linear(FEATURE_DIM, MAX_BLOCKS * 8)  # present, 4 box sides, 3 colour

    def features(self, x: Tensor) -> Tensor:
        """Images `[B,3,S,S]` in [0,1] -> features `[B,128]`."""
        return self.fc(self.convs(x * 2 - 1).flatten(1))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = F.relu(self.features(x))
        return self.count_head(h), self.block_head(h).view(-1, MAX_BLOCKS, 8)


def scene_targets(images: np.ndarray, masks: np.ndarray) -> tuple[Tensor, Tensor]:
    """uint8 images `[N,S,S,3]`, masks `[N,S,S]` (0 background, j = j-th block from the bottom) ->
    (count `[N]` long, blocks `[N,5,8]`: present, top, bottom, left, right (/S), mean RGB)."""
    N, S = masks.shape[:2]
    blocks = np.zeros((N, MAX_BLOCKS, 8), np.float32)
    rows, cols = np.arange(S), np.arange(S)
    for j in range(MAX_BLOCKS):
        m = masks == j + 1
        present = m.any((1, 2))
        r, c = m.any(2), m.any(1)
        blocks[:, j, 0] = present
        blocks[:, j, 1] = np.where(present, np.where(r, rows, S).min(1), 0) / S
        blocks[:, j, 2] = np.where(present, np.where(r, rows, -1).max(1), 0) / S
        blocks[:, j, 3] = np.where(present, np.where(c, cols, S).min(1), 0) / S
        blocks[:, j, 4] = np.where(present, np.where(c, cols, -1).max(1), 0) / S
        area = np.maximum(m.sum((1, 2)), 1)[:, None]
        blocks[:, j, 5:] = (images.astype(np.float32) / 255 * m[..., None]).sum((1, 2)) / area
    count = blocks[:, :, 0].sum(1).astype(np.int64)
    return torch.from_numpy(count), torch.from_numpy(blocks)


def _loss(net: SceneFeatureNet, x: Tensor, count: Tensor, blocks: Tensor) -> Tensor:
    logits, pred = net(x)
    present = blocks[..., 0]
    attr = ((pred[..., 1:] - blocks[..., 1:]) ** 2).sum(-1)
    return (F.cross_entropy(logits, count) + F.binary_cross_entropy_with_logits(pred[..., 0], present)
            + 10 * (attr * present).sum(1).mean())


def _as_input(images: np.ndarray) -> Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255


SCALES = (1.0, 1.6)  # the default blocks and the demo's (object_scale)


def train_scene_features(image_size: int = 32, *, steps: int = 5000, batch_size: int = 64,
                         num_train: int = 20_000, seed: int = 0, progress: bool = True,
                         scales: Sequence[float] = SCALES) -> SceneFeatureNet:
    """Train the extractor on `num_train` generated `blocks` scenes (seed-specific, train split),
    split evenly over the object scales `scales`."""
    from sri.data.synthetic import generate, split_seed

    torch.manual_seed(seed)
    parts = [generate("blocks", num_train // len(scales), image_size, split_seed(seed + 1000 + i, "train"),
                      object_scale=sc) for i, sc in enumerate(scales)]
    images = np.concatenate([p.images for p in parts])
    masks = np.concatenate([p.masks for p in parts])
    x = _as_input(images)
    count, blocks = scene_targets(images, masks)
    net = SceneFeatureNet(image_size)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    for step in range(steps):
        idx = torch.randint(len(x), (batch_size,), generator=gen)
        loss = _loss(net, x[idx], count[idx], blocks[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if progress and (step % 500 == 0 or step == steps - 1):
            print(f"[scene-features] step {step}: loss {float(loss.detach()):.4f} ({time.time() - t0:.0f} s)",
                  file=sys.stderr, flush=True)
    return net.eval()


def save_scene_features(net: SceneFeatureNet, path: str | Path, meta: dict | None = None) -> Path:
    """Weights (fp32, weights_only-loadable) plus metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"image_size": net.image_size, "state": net.state_dict(), "meta": meta or {}}, path)
    return path


def load_scene_features(image_size: int = 32, path: str | Path | None = None) -> SceneFeatureNet:
    """The trained extractor for `image_size` (train it first: `python -m sri.metrics.scene_features train`)."""
    path = Path(path) if path is not None else default_weights_path(image_size)
    if not path.is_file():
        raise FileNotFoundError(f"no scene-feature weights at {path}; train them with `python -m "
                                f"sri.metrics.scene_features train --size {image_size}`")
    ck = torch.load(path, map_location="cpu", weights_only=True)
    net = SceneFeatureNet(int(ck["image_size"]))
    net.load_state_dict(ck["state"])
    return net.eval()


@torch.no_grad()
def scene_features(net: SceneFeatureNet, images: Tensor, batch_size: int = 256) -> Tensor:
    """Float images `[N,3,S,S]` in [0,1] -> features `[N,128]`."""
    return torch.cat([net.features(images[i:i + batch_size].float().cpu())
                      for i in range(0, len(images), batch_size)])


def scene_frechet_distance(net: SceneFeatureNet, images_a: Tensor, images_b: Tensor) -> float:
    """Frechet distance between two image sets in the extractor's feature space."""
    from sri.metrics.fid import feature_statistics, frechet_distance

    a = feature_statistics(scene_features(net, images_a))
    b = feature_statistics(scene_features(net, images_b))
    return float(frechet_distance(a.mu, a.sigma, b.mu, b.sigma))


def validate(net: SceneFeatureNet, num: int = 1000, seed: int = 123, object_scale: float = 1.0) -> dict[str, float]:
    """Distances from `num` real test scenes to: themselves, another real set, the same scenes with a
    floating block, and with the top block missing; plus the count accuracy on real scenes."""
    from sri.data.synthetic import generate, render_blocks_variant, split_seed

    S = net.image_size
    real = generate("blocks", num, S, split_seed(seed, "test"), object_scale=object_scale)
    other = render_blocks_variant(num, S, seed + 1, "plain", object_scale=object_scale)
    plain = render_blocks_variant(num, S, seed, "plain", object_scale=object_scale)
    res = {"identical": scene_frechet_distance(net, _as_input(real.images), _as_input(real.images)),
           "independent_real": scene_frechet_distance(net, _as_input(plain.images), _as_input(other.images))}
    for variant in ("float", "missing"):
        alt = render_blocks_variant(num, S, seed, variant, object_scale=object_scale)
        res[variant] = scene_frechet_distance(net, _as_input(other.images), _as_input(alt.images))
    with torch.no_grad():
        logits, _ = net(_as_input(real.images))
    count, _ = scene_targets(real.images, real.masks)
    res["count_accuracy"] = float((logits.argmax(1) == count).float().mean())
    return res


def main(argv: Sequence[str] | None = None) -> int:
    """`train` (and save, then validate) or `validate` the extractor."""
    p = argparse.ArgumentParser(prog="python -m sri.metrics.scene_features", description=__doc__.split("\n")[0])
    p.add_argument("command", choices=("train", "validate"))
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--out", default=None, help="weights file (default: in the package)")
    args = p.parse_args(argv)
    if args.command == "train":
        t0 = time.time()
        net = train_scene_features(args.size, steps=args.steps)
        val = {f"object_scale={sc}": validate(net, object_scale=sc) for sc in SCALES}
        path = save_scene_features(net, args.out or default_weights_path(args.size),
                                   {"steps": args.steps, "train_s": round(time.time() - t0, 1),
                                    "validation": val, "command": "python -m sri.metrics.scene_features "
                                                                  + " ".join(argv or sys.argv[1:])})
        print(f"saved {path}")
    else:
        net = load_scene_features(args.size, args.out)
        val = {f"object_scale={sc}": validate(net, object_scale=sc) for sc in SCALES}
    print(json.dumps(val, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
