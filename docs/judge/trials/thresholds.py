"""Trial: a grid of the image judge's thresholds on the dev labels (docs/judge/trials/README.md)."""
import itertools

import numpy as np
from _data import load

from sri.metrics.stacks import JUDGE_LENIENT, judge_image

d = load()
grid = dict(t_low=[0.06, 0.08, 0.10, 0.12], t_high=[0.12, 0.16, 0.20], min_speck=[0.002, 0.004, 0.006], gap=[0, 1])
res = []
for vals in itertools.product(*grid.values()):
    kw = {**JUDGE_LENIENT, **dict(zip(grid, vals))}
    if kw["t_high"] > kw["t_low"]:
        judged = np.array([judge_image(im, **kw) for im in d.imgs[d.dev]])
        res.append(((judged == d.eye[d.dev]).mean(), vals))
for acc, vals in sorted(res, reverse=True)[:8]:
    kw = {**JUDGE_LENIENT, **dict(zip(grid, vals))}
    print(round(acc, 3), dict(zip(grid, vals)), "real %.3f" % np.mean([judge_image(im, **kw) for im in d.real]))
print("current dev %.3f" % (d.base[d.dev] == d.eye[d.dev]).mean())
