"""Trial: a small CNN judge learned from the dev labels (5-fold cross-validation on dev only).

    python docs/judge/trials/learned_cnn.py            # dev cross-validation, per setting
    python docs/judge/trials/learned_cnn.py --held-out # once, at the end: train on all dev, score the test part
    LABELS=labels_strict.csv python docs/judge/trials/learned_cnn.py   # against the strict labelling pass
"""
import os
import sys
from pathlib import Path

import numpy as np
import torch
from _data import load
from torch import nn

from sri.bench.judge_check import load_pool, read_labels, split_of


def net() -> nn.Module:
    """Three conv blocks on 32x32 RGB (+ the colour-saturation channel), global pooling, one logit."""
    def block(i, o):
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.GroupNorm(4, o), nn.ReLU(), nn.MaxPool2d(2))
    return nn.Sequential(block(4, 16), block(16, 32), block(32, 32), nn.Flatten(),
                         nn.Dropout(0.3), nn.Linear(32 * 16, 1))


def inputs(imgs: np.ndarray) -> torch.Tensor:
    """Images [N,3,H,W] -> [N,4,H,W] with the colour saturation (max - min over RGB) appended."""
    x = torch.from_numpy(imgs).float()
    sat = x.amax(1, keepdim=True) - x.amin(1, keepdim=True)
    return torch.cat([x, sat], 1)


def fit(x, y, epochs, seed, wd=1e-3):
    """One network trained on (x, y) for `epochs` with AdamW, batch 32, random left-right flips."""
    torch.manual_seed(seed)
    m = net()
    opt = torch.optim.AdamW(m.parameters(), lr=2e-3, weight_decay=wd)
    yt = torch.tensor(y, dtype=torch.float32)
    for _ in range(epochs):
        m.train()
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 32):
            b = perm[i:i + 32]
            xb = x[b]
            flip = torch.rand(len(b)) < 0.5  # physics is symmetric left-right
            xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
            loss = nn.functional.binary_cross_entropy_with_logits(m(xb).squeeze(1), yt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return m


def predict(models, x):
    """Plausible where the models' mean probability (over the image and its mirror) exceeds 0.5."""
    with torch.no_grad():
        p = torch.stack([torch.sigmoid(m.eval()(x).squeeze(1)) + torch.sigmoid(m(x.flip(-1)).squeeze(1))
                         for m in models]).mean(0) / 2
    return (p > 0.5).numpy()


def main() -> None:
    """Dev cross-validation per epoch count, or (--held-out [EPOCHS]) the one held-out score."""
    d = load()
    torch.set_num_threads(1)
    ids = load_pool(Path("docs/judge"))["ids"]
    lab = read_labels(Path("docs/judge") / os.environ.get("LABELS", "labels.csv"))
    scored = np.array([lab.get(int(i), -1) >= 0 for i in ids])
    d.eye = np.array([lab.get(int(i), -1) == 1 for i in ids])
    d.dev = scored & np.array([split_of(int(i)) == "dev" for i in ids])
    test = scored & np.array([split_of(int(i)) == "test" for i in ids])
    x = inputs(d.imgs)
    dev_idx = np.nonzero(d.dev)[0]
    y = d.eye.astype(np.float32)
    if "--held-out" in sys.argv:
        epochs = int(sys.argv[sys.argv.index("--held-out") + 1]) if len(sys.argv) > 2 else 60
        models = [fit(x[dev_idx], y[dev_idx], epochs, s) for s in range(5)]
        pred = predict(models, x[test])
        print("held-out n %d accuracy %.3f (current judge %.3f)" % (
            test.sum(), (pred == d.eye[test]).mean(), (d.base[test] == d.eye[test]).mean()))
        print("real scenes judged plausible %.3f" % predict(models, inputs(np.stack(d.real))).mean())
        return
    rng = np.random.default_rng(0)
    folds = np.array_split(rng.permutation(dev_idx), 5)
    print("dev n %d, current judge %.3f" % (len(dev_idx), (d.base[d.dev] == d.eye[d.dev]).mean()))
    for epochs in [int(e) for e in os.environ.get("EPOCHS", "20,40,80").split(",")]:
        acc = []
        for k in range(5):
            tr = np.concatenate([f for j, f in enumerate(folds) if j != k])
            models = [fit(x[tr], y[tr], epochs, s) for s in range(3)]
            acc.append((predict(models, x[folds[k]]) == d.eye[folds[k]]).mean())
        print("epochs %d dev-CV accuracy %.3f (folds %s)" % (epochs, np.mean(acc), np.round(acc, 3)))


if __name__ == "__main__":
    main()
