"""Trial: floating when the main mass's strongly coloured rows are not contiguous (README.md here)."""
import numpy as np
from _data import main_mass
from _rule import trial


def strong_rows_gap(img, t_gap, min_run):
    """True when rows of the main mass holding pixels above `t_gap` skip more than `min_run` rows."""
    colour, _, comp, k = main_mass(img)
    if k == 0:
        return False
    mass = comp == np.argmax(np.bincount(comp.ravel())[1:]) + 1
    rows = np.nonzero((mass & (colour > t_gap)).any(1))[0]
    return len(rows) >= 2 and bool(np.any(np.diff(rows) > min_run))


if __name__ == "__main__":
    trial(strong_rows_gap, t_gap=(0.12, 0.16, 0.2, 0.25, 0.3), min_run=(1, 2))
