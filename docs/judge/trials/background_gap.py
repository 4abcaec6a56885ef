"""Trial: floating when a row of the main mass matches the row's background colour (README.md here)."""
import numpy as np
from _data import main_mass
from _rule import trial

from sri.metrics.stacks import background_gap


def has_bg_gap(img, eps, min_cols):
    """True when a row of the main mass matches its background colour wherever the mass continues
    (the rule now in `sri.metrics.stacks.background_gap`, which this trial calls)."""
    colour, _, comp, k = main_mass(img)
    if k == 0:
        return False
    mass = comp == np.argmax(np.bincount(comp.ravel())[1:]) + 1
    return background_gap(img, colour > 0.08, mass, eps, min_cols)


if __name__ == "__main__":
    trial(has_bg_gap, eps=(0.04, 0.06, 0.08, 0.1, 0.12, 0.15), min_cols=(1, 2, 3))
