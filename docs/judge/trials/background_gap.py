"""A dev-part trial of a judge rule (docs/judge/trials/README.md); run from the repository root."""
from pathlib import Path

import numpy as np
from scipy import ndimage

from sri.bench.judge_check import load_pool, read_labels, split_of
from sri.data import build_dataset
from sri.metrics.stacks import JUDGE_DEFAULTS, judge_image


def has_bg_gap(img, eps, t_low=0.08, min_cols=2):
    """True when a row of the main mass matches its background colour wherever the mass continues."""
    H, W = img.shape[1:]
    colour = img.max(0) - img.min(0)
    low = colour > t_low
    low_c = low | ndimage.binary_closing(low, structure=np.ones((3, 1), bool))
    comp, k = ndimage.label(low_c)
    if k == 0: return False
    sizes = np.bincount(comp.ravel())[1:]
    mass = comp == (np.argmax(sizes) + 1)
    rows = np.nonzero(mass.any(1))[0]
    for r in range(rows.min() + 1, rows.max()):
        bg = ~low[r]
        if bg.sum() < 3: continue
        bgcol = np.median(img[:, r, bg], axis=1)
        above = mass[:r].any(0); below = mass[r + 1:].any(0)
        cols = np.nonzero(above & below & mass[r])[0]
        if len(cols) < min_cols: continue
        # strongly coloured above and below in those columns
        d = np.abs(img[:, r, cols] - bgcol[:, None]).max(0)
        if np.all(d < eps):
            return True
    return False

pool = load_pool(Path('docs/judge')); lab = read_labels(Path('docs/judge/labels.csv'))
ids = pool['ids']
keep = np.array([lab.get(int(i), -1) >= 0 for i in ids]); eye = np.array([lab.get(int(i), -1) == 1 for i in ids])
split = np.array([split_of(int(i)) for i in ids])
imgs = pool['images'].astype(np.float32) / 255
base = np.array([judge_image(im, **JUDGE_DEFAULTS) for im in imgs])
real = []
for scale in (1.0, 1.6):
    ds = build_dataset("blocks", None, "test", num=200, image_size=32, object_scale=scale)
    real += [ds[i]["image"].numpy() for i in range(len(ds))]
sel = keep & (split == "dev")
print("base dev %.3f" % (base[sel] == eye[sel]).mean())
for eps in (0.04, 0.06, 0.08, 0.1, 0.12, 0.15):
    for mc in (1, 2, 3):
        gap = np.array([has_bg_gap(im, eps, min_cols=mc) if b else False for im, b in zip(imgs, base)])
        new = base & ~gap
        realok = np.mean([not has_bg_gap(im, eps, min_cols=mc) for im in real])
        print(eps, mc, "dev %.3f" % (new[sel] == eye[sel]).mean(), "real %.3f" % realok)
