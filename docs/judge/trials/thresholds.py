"""A dev-part trial of a judge rule (docs/judge/trials/README.md); run from the repository root."""
import itertools
from pathlib import Path

import numpy as np

from sri.bench.judge_check import load_pool, read_labels, split_of
from sri.data import build_dataset
from sri.metrics.stacks import JUDGE_DEFAULTS, judge_image

pool = load_pool(Path('docs/judge')); lab = read_labels(Path('docs/judge/labels.csv'))
ids = pool['ids']
keep = np.array([lab.get(int(i), -1) >= 0 for i in ids]); eye = np.array([lab.get(int(i), -1) == 1 for i in ids])
dev = keep & np.array([split_of(int(i)) == 'dev' for i in ids])
imgs = pool['images'].astype(np.float32) / 255
real = []
for scale in (1.0, 1.6):
    ds = build_dataset("blocks", None, "test", num=200, image_size=32, object_scale=scale)
    real += [ds[i]["image"].numpy() for i in range(len(ds))]
grid = dict(t_low=[0.06, 0.08, 0.10, 0.12], t_high=[0.12, 0.16, 0.20], min_speck=[0.002, 0.004, 0.006],
            gap=[0, 1], min_strength=[0.15])
res = []
for vals in itertools.product(*grid.values()):
    kw = {**JUDGE_DEFAULTS, **dict(zip(grid, vals))}
    if kw['t_high'] <= kw['t_low']: continue
    j = np.array([judge_image(im, **kw) for im in imgs[dev]])
    acc = (j == eye[dev]).mean()
    res.append((acc, vals))
res.sort(reverse=True)
for acc, vals in res[:8]:
    kw = {**JUDGE_DEFAULTS, **dict(zip(grid, vals))}
    realok = np.mean([judge_image(im, **kw) for im in real])
    print(round(acc, 3), dict(zip(grid, vals)), "real plausible", round(realok, 3))
kw = JUDGE_DEFAULTS
print("current", round((np.array([judge_image(im, **kw) for im in imgs[dev]]) == eye[dev]).mean(), 3))
