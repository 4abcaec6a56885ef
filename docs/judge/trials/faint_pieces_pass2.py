"""Trial: the faint-piece rule scored against both labelling passes (dev parts only; README.md here)."""
import itertools
import os
from pathlib import Path

import numpy as np
from _data import load, part_of
from faint_pieces import faint_piece

os.chdir(Path(__file__).resolve().parents[3])
d = load()
dev2, eye2 = part_of("labels_strict.csv")
print('base dev1 %.3f dev2 %.3f' % ((d.base[d.dev] == d.eye[d.dev]).mean(), (d.base[dev2] == eye2[dev2]).mean()))
for t, m in itertools.product((0.06, 0.08, 0.1, 0.12), (1, 2, 3, 4, 6)):
    new = d.base & ~np.array([b and faint_piece(im, t, m) for im, b in zip(d.imgs, d.base)])
    kept = np.mean([not faint_piece(im, t, m) for im in d.real])
    print(t, m, 'dev1 %.3f dev2 %.3f real %.3f' % ((new[d.dev] == d.eye[d.dev]).mean(),
                                                   (new[dev2] == eye2[dev2]).mean(), kept))
