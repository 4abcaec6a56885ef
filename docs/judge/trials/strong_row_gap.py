"""A dev-part trial of a judge rule (docs/judge/trials/README.md); run from the repository root."""
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

from sri.bench.judge_check import load_pool, read_labels, split_of
from sri.data import build_dataset
from sri.metrics.stacks import JUDGE_DEFAULTS, judge_image


def strong_rows_gap(img, t_gap, min_run=1, t_low=0.08, gap=1):
    """True when the main mass's strongly coloured rows are not contiguous."""
    colour = img.max(0) - img.min(0)
    low = colour > t_low
    if gap:
        low = low | ndimage.binary_closing(low, structure=np.ones((3, 1), bool))
    comp, k = ndimage.label(low)
    if k == 0: return False
    sizes = np.bincount(comp.ravel())[1:]
    mass = comp == (np.argmax(sizes) + 1)
    rows = np.nonzero((mass & (colour > t_gap)).any(1))[0]
    if len(rows) < 2: return False
    return bool(np.any(np.diff(rows) > min_run))

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
parts = sys.argv[1:] or ["dev"]
for t_gap in (0.12, 0.16, 0.2, 0.25, 0.3):
    for min_run in (1, 2):
        new = base & ~np.array([strong_rows_gap(im, t_gap, min_run) for im in imgs])
        out = []
        for part in parts:
            sel = keep & (split == part)
            out.append("%s %.3f" % (part, (new[sel] == eye[sel]).mean()))
        realok = np.mean([judge_image(im, **JUDGE_DEFAULTS) and not strong_rows_gap(im, t_gap, min_run) for im in real])
        print(t_gap, min_run, *out, "real %.3f" % realok)
sel = keep & (split == "dev"); print("base dev %.3f" % (base[sel] == eye[sel]).mean())
