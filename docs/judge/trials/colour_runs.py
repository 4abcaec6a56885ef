"""Trial: implausible when the coloured mass is made of thin colour bands (short vertical runs of one colour)."""
import os
from pathlib import Path

import numpy as np
from _data import load

from sri.bench.judge_check import load_pool, read_labels, split_of


def mean_run(img: np.ndarray, t_low: float = 0.08, delta: float = 0.12) -> float:
    """Mean length (rows) of vertical runs of nearly one colour inside the coloured mass, over its columns."""
    colour = img.max(0) - img.min(0)
    mass = colour > t_low
    runs = []
    for c in range(img.shape[2]):
        rows = np.nonzero(mass[:, c])[0]
        if len(rows) < 2:
            continue
        n = 1
        for a, b in zip(rows[:-1], rows[1:]):
            if b == a + 1 and np.abs(img[:, b, c] - img[:, a, c]).max() < delta:
                n += 1
            else:
                runs.append(n)
                n = 1
        runs.append(n)
    return float(np.mean(runs)) if runs else 0.0


if __name__ == "__main__":
    os.chdir(Path(__file__).resolve().parents[3])
    d = load()
    ids = load_pool(Path("docs/judge"))["ids"]
    for name in ("labels.csv", "labels_strict.csv"):
        lab = read_labels(Path("docs/judge") / name)
        dev = np.array([lab.get(int(i), -1) >= 0 and split_of(int(i)) == "dev" for i in ids])
        eye = np.array([lab.get(int(i), -1) == 1 for i in ids])
        for delta in (0.08, 0.12, 0.16):
            runs = np.array([mean_run(im, delta=delta) for im in d.imgs])
            real = np.array([mean_run(im, delta=delta) for im in d.real])
            for t in (2.0, 2.5, 3.0, 3.5):
                judged = d.base & (runs >= t)
                print(f"{name} delta {delta} min run {t}: dev {(judged[dev] == eye[dev]).mean():.3f} "
                      f"(current {(d.base[dev] == eye[dev]).mean():.3f}), real kept {(real >= t).mean():.3f}")
