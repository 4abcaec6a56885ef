"""Trial: floating when a second, faint piece has a few pixels above a colour level (README.md here)."""
import numpy as np
from _data import main_mass
from _rule import trial


def faint_piece(img, t_faint, min_px):
    """True when a piece apart from the main mass has `min_px` pixels above `t_faint`."""
    colour, _, comp, k = main_mass(img)
    if k < 2:
        return False
    main = np.argmax(np.bincount(comp.ravel())[1:])
    return any(((comp == j + 1) & (colour > t_faint)).sum() >= min_px for j in range(k) if j != main)


if __name__ == "__main__":
    trial(faint_piece, t_faint=(0.08, 0.1, 0.12), min_px=(2, 3, 4, 6))
