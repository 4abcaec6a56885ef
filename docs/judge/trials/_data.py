"""What every trial reads: the labelled pool, the current judge's verdicts and 400 real test scenes."""
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from scipy import ndimage

from sri.bench.judge_check import load_pool, read_labels, split_of
from sri.data import build_dataset
from sri.metrics.stacks import JUDGE_LENIENT, judge_image


def load(folder: str = "docs/judge") -> SimpleNamespace:
    """imgs [N,3,H,W] float, eye (labelled plausible), dev (scored and in the dev part), base (the
    current judge's verdicts) and real (200 real 32x32 scenes at object scale 1.0 and 1.6 each)."""
    pool = load_pool(Path(folder))
    lab = read_labels(Path(folder) / "labels.csv")
    ids = pool["ids"]
    imgs = pool["images"].astype(np.float32) / 255
    dev = np.array([lab.get(int(i), -1) >= 0 and split_of(int(i)) == "dev" for i in ids])
    real = []
    for scale in (1.0, 1.6):
        ds = build_dataset("blocks", None, "test", num=200, image_size=32, object_scale=scale)
        real += [ds[i]["image"].numpy() for i in range(len(ds))]
    return SimpleNamespace(imgs=imgs, eye=np.array([lab.get(int(i), -1) == 1 for i in ids]), dev=dev,
                           base=np.array([judge_image(im, **JUDGE_LENIENT) for im in imgs]), real=real)


def main_mass(img: np.ndarray, t_low: float = 0.08, gap: int = 1):
    """(colour, the low-colour mask with 1-row vertical gaps closed, its components, how many)."""
    colour = img.max(0) - img.min(0)
    low = colour > t_low
    if gap:
        low = low | ndimage.binary_closing(low, structure=np.ones((3, 1), bool))
    comp, k = ndimage.label(low)
    return colour, low, comp, k


def part_of(labels_file: str, part: str = "dev", folder: str = "docs/judge") -> tuple[np.ndarray, np.ndarray]:
    """(in `part`: scored there by `labels_file`, eye: labelled plausible there) over the pooled samples."""
    ids = load_pool(Path(folder))["ids"]
    lab = read_labels(Path(folder) / labels_file)
    return (np.array([lab.get(int(i), -1) >= 0 and split_of(int(i)) == part for i in ids]),
            np.array([lab.get(int(i), -1) == 1 for i in ids]))
