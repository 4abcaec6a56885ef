"""Trial: the faint-piece and background-gap rules together, against the strict labels' dev part (README.md here)."""
import os
import sys
from pathlib import Path

import numpy as np
from _data import load, part_of
from background_gap import has_bg_gap
from faint_pieces import faint_piece

os.chdir(Path(__file__).resolve().parents[3])
d = load()
dev, eye = part_of("labels_strict.csv")
faint = np.array([faint_piece(im, 0.06, 1) for im in d.imgs])
for name, judged in (("current judge", d.base), ("+ faint piece (0.06, 1 px)", d.base & ~faint)):
    print(f"{name}: dev {(judged[dev] == eye[dev]).mean():.3f}, false-plausible {(judged[dev] & ~eye[dev]).sum()}, "
          f"false-implausible {(~judged[dev] & eye[dev]).sum()} of {dev.sum()}")
for eps in (0.06, 0.1):
    for min_cols in (1, 2, 3):
        gap = np.array([b and has_bg_gap(im, eps, min_cols) for im, b in zip(d.imgs, d.base & ~faint)])
        judged = d.base & ~faint & ~gap
        real = np.mean([not (faint_piece(im, 0.06, 1) or has_bg_gap(im, eps, min_cols)) for im in d.real])
        print(f"+ background gap ({eps}, {min_cols}): dev {(judged[dev] == eye[dev]).mean():.3f}, real kept {real:.3f}")

if "--held-out" in sys.argv:  # once, for the dev choice (0.1, 2)
    test, _ = part_of("labels_strict.csv", "test")
    test1, eye1 = part_of("labels.csv", "test")
    gap = np.array([b and has_bg_gap(im, 0.1, 2) for im, b in zip(d.imgs, d.base & ~faint)])
    judged = d.base & ~faint & ~gap
    for name, j in (("current judge", d.base), ("faint + gap (0.1, 2)", judged)):
        print(f"held out, {name}: strict {(j[test] == eye[test]).mean():.3f} (n {test.sum()}), "
              f"first pass {(j[test1] == eye1[test1]).mean():.3f} (n {test1.sum()})")
