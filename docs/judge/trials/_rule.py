"""Run a rejection rule over a grid: the judge's verdict, then `rule(img, *params)` rejects more."""
import itertools

import numpy as np
from _data import load


def trial(rule, **grid) -> None:
    """Print dev agreement and the real scenes still judged plausible, per grid point."""
    d = load()
    print("current dev %.3f" % (d.base[d.dev] == d.eye[d.dev]).mean())
    for vals in itertools.product(*grid.values()):
        new = d.base & ~np.array([b and rule(im, *vals) for im, b in zip(d.imgs, d.base)])
        kept = np.mean([not rule(im, *vals) for im in d.real])
        print(*vals, "dev %.3f" % (new[d.dev] == d.eye[d.dev]).mean(), "real %.3f" % kept)
