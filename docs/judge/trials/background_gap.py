"""Trial: floating when a row of the main mass matches the row's background colour (README.md here)."""
import numpy as np
from _data import main_mass
from _rule import trial


def has_bg_gap(img, eps, min_cols):
    """True when a row of the main mass matches its background colour wherever the mass continues."""
    colour, _, comp, k = main_mass(img)
    if k == 0:
        return False
    low = colour > 0.08
    mass = comp == np.argmax(np.bincount(comp.ravel())[1:]) + 1
    rows = np.nonzero(mass.any(1))[0]
    for r in range(rows.min() + 1, rows.max()):
        bg = ~low[r]
        cols = np.nonzero(mass[:r].any(0) & mass[r + 1:].any(0) & mass[r])[0]
        if bg.sum() < 3 or len(cols) < min_cols:
            continue
        bgcol = np.median(img[:, r, bg], axis=1)
        if np.all(np.abs(img[:, r, cols] - bgcol[:, None]).max(0) < eps):
            return True
    return False


if __name__ == "__main__":
    trial(has_bg_gap, eps=(0.04, 0.06, 0.08, 0.1, 0.12, 0.15), min_cols=(1, 2, 3))
