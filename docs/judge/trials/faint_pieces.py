"""A dev-part trial of a judge rule (docs/judge/trials/README.md); run from the repository root."""
from pathlib import Path

import numpy as np
from scipy import ndimage

from sri.bench.judge_check import load_pool, read_labels, split_of
from sri.data import build_dataset
from sri.metrics.stacks import JUDGE_DEFAULTS, judge_image


def faint_piece(img, t_faint, min_px, t_low=0.08):
    """True when a piece apart from the main mass has `min_px` pixels above `t_faint`."""
    colour = img.max(0) - img.min(0)
    low = colour > t_low
    low = low | ndimage.binary_closing(low, structure=np.ones((3, 1), bool))
    comp, k = ndimage.label(low)
    if k < 2: return False
    sizes = np.bincount(comp.ravel())[1:]
    main = np.argmax(sizes)
    for j in range(k):
        if j == main: continue
        px = comp == j + 1
        if (px & (colour > t_faint)).sum() >= min_px:
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
for tf in (0.08, 0.1, 0.12):
    for mp in (2, 3, 4, 6):
        fp = np.array([faint_piece(im, tf, mp) if b else False for im, b in zip(imgs, base)])
        new = base & ~fp
        realok = np.mean([not faint_piece(im, tf, mp) for im in real])
        print(tf, mp, "dev %.3f" % (new[sel] == eye[sel]).mean(), "real %.3f" % realok)
