"""Hand-drawn test cases for the S-Acc judge whose right answer is known without the judge.

Scenes are drawn directly as rectangles on a label map (not with `sri.data.synthetic`), with
random sizes and positions; half have one background label, half a wall above a floor. Each
case has a known answer:

- `resting`: 2-4 blocks, each resting on the next (1 row apart) with the centre of mass of
  everything above every contact over that contact -> plausible.
- `lift_1`, `lift_2`, `lift_3`: a resting stack with one block (not the lowest) and everything
  above it raised by 1, 2 or 3 rows. Physically every lift floats; the judge tolerates a gap of
  `tol - 1` rows (`tol` = max(1, H // 32)) because argmax boundaries of generated masks are
  ragged, so the expected answer is plausible for a lift <= tol - 1 and implausible otherwise
  (64x64: lift 1 plausible, lifts 2 and 3 implausible; 32x32: all three implausible).
- `overhang`: the top block touches the block below along 20-35% of its own width at that
  block's edge, so its centre of mass lies beyond the edge: it would tip over -> implausible.
- `offset_balanced`: the same, touching along 60-80% of its width (centre of mass over the
  support) -> plausible. The control for `overhang`.
- `two_towers`: two resting stacks of 2-3 blocks on the same floor, 3 or more columns apart ->
  implausible (not one stack).
- `corner`: a resting stack of 1-2 blocks with a top block whose bottom-left (or bottom-right)
  corner touches the top corner of the block below diagonally, with no shared column ->
  implausible.

`python -m sri.metrics.stack_cases` prints the judge's accuracy per case.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from sri.metrics.stacks import default_tol, stack_is_plausible

CASES = ("resting", "lift_1", "lift_2", "lift_3", "overhang", "offset_balanced", "two_towers", "corner")
_WALL, _FLOOR = 8, 9


def _expected(case: str, image_size: int) -> bool:
    """The right answer for `case` at this image size (see the module docstring)."""
    if case.startswith("lift_"):
        return int(case.split("_")[1]) <= default_tol(image_size) - 1
    return case in ("resting", "offset_balanced")


def _draw(rects: list[tuple[int, int, int, int]], S: int, floor_row: int, split: bool) -> np.ndarray:
    """Rectangles (top, bottom, left, right), inclusive, labelled 1.. on one background label
    (0) or on a wall above `floor_row` and a floor from it down."""
    m = np.zeros((S, S), np.int64)
    if split:
        m[:floor_row] = _WALL
        m[floor_row:] = _FLOOR
    for i, (t, b, l, r) in enumerate(rects, 1):
        m[t:b + 1, l:r + 1] = i
    return m


def _tower(rng: np.random.Generator, S: int, n: int, base_row: int, cx: float) -> list[list[int]]:
    """`n` rectangles resting on each other from `base_row` up, centred near `cx`, each carried
    load's centre of mass over its contact (checked analytically, resampled otherwise)."""
    while True:
        w = rng.integers(max(3, round(0.16 * S)), max(4, round(0.28 * S)) + 1, n)
        h = rng.integers(max(3, round(0.08 * S)), max(4, round(0.14 * S)) + 1, n)
        rects, b, c = [], base_row, cx
        for j in range(n):
            if j:
                c += rng.uniform(-0.2, 0.2) * min(w[j], w[j - 1])
            left = int(round(c - w[j] / 2))
            rects.append([b - h[j] + 1, b, left, left + w[j] - 1])
            b -= h[j]
        if min(r[0] for r in rects) >= 2 and min(r[2] for r in rects) >= 1 and \
                max(r[3] for r in rects) <= S - 2 and _balanced(rects):
            return rects


def _balanced(rects: list[list[int]]) -> bool:
    """Analytic check: for each contact, the area-weighted centre of the rectangles above lies
    within the columns the two rectangles share."""
    for j in range(1, len(rects)):
        above = rects[j:]
        area = np.array([(r[3] - r[2] + 1) * (r[1] - r[0] + 1) for r in above], float)
        com = float((area * np.array([(r[2] + r[3]) / 2 for r in above])).sum() / area.sum())
        lo, hi = max(rects[j][2], rects[j - 1][2]), min(rects[j][3], rects[j - 1][3])
        if hi < lo or not lo - 0.5 <= com <= hi + 0.5:
            return False
    return True


def _case_scene(case: str, rng: np.random.Generator, S: int) -> np.ndarray:
    floor_row = int(rng.integers(round(0.8 * S), round(0.92 * S) + 1))
    split = bool(rng.random() < 0.5)
    base = floor_row - 1
    if case == "two_towers":
        while True:
            a = _tower(rng, S, int(rng.integers(2, 4)), base, rng.uniform(0.22, 0.3) * S)
            b = _tower(rng, S, int(rng.integers(2, 4)), base, rng.uniform(0.7, 0.78) * S)
            if min(r[2] for r in b) - max(r[3] for r in a) - 1 >= 3:
                return _draw(a + b, S, floor_row, split)
    if case in ("resting",) or case.startswith("lift_"):
        rects = _tower(rng, S, int(rng.integers(2, 5)), base, rng.uniform(0.4, 0.6) * S)
        if case.startswith("lift_"):
            lift = int(case.split("_")[1])
            j = int(rng.integers(1, len(rects)))
            for r in rects[j:]:
                r[0] -= lift
                r[1] -= lift
        return _draw(rects, S, floor_row, split)
    # overhang, offset_balanced, corner: a resting tower plus one top block placed at an edge
    while True:
        rects = _tower(rng, S, int(rng.integers(1, 3)), base, rng.uniform(0.4, 0.6) * S)
        t, _, l, r = rects[-1]
        w = int(rng.integers(max(5, round(0.16 * S)), max(6, round(0.28 * S)) + 1))
        h = int(rng.integers(max(3, round(0.08 * S)), max(4, round(0.14 * S)) + 1))
        if case == "corner":
            share = 0
        else:
            frac = rng.uniform(0.2, 0.35) if case == "overhang" else rng.uniform(0.6, 0.8)
            share = max(1, min(w - 1, int(round(frac * w))))
        if rng.random() < 0.5:  # overhang to the right
            left = r + 1 - share
        else:
            left = l - w + share
        top = [t - h, t - 1, left, left + w - 1]
        # the answer must hold analytically: only the top block tips over in `overhang`
        fits = top[0] >= 1 and top[2] >= 1 and top[3] <= S - 2
        if case == "overhang" and fits and _balanced(rects) and not _balanced(rects[-1:] + [top]):
            break
        if case == "offset_balanced" and fits and _balanced(rects + [top]):
            break
        if case == "corner" and fits:
            break
    return _draw(rects + [top], S, floor_row, split)


def case_scenes(case: str, num: int = 200, image_size: int = 64, seed: int = 0) -> np.ndarray:
    """[num,H,W] label maps of one case (see module docstring), drawn independently of `blocks`."""
    if case not in CASES:
        raise ValueError(f"unknown case {case!r}; expected one of {CASES}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), CASES.index(case), int(image_size)]))
    return np.stack([_case_scene(case, rng, int(image_size)) for _ in range(int(num))])


def judge_cases(num: int = 200, image_size: int = 64, seed: int = 0, balance: bool = False) -> dict[str, dict]:
    """Per case: the expected answer and the share of `num` scenes the judge gets right."""
    out = {}
    for case in CASES:
        expected = _expected(case, image_size)
        got = stack_is_plausible(case_scenes(case, num, image_size, seed), balance=balance).numpy()
        out[case] = {"expected": "plausible" if expected else "implausible",
                     "accuracy": float((got == expected).mean())}
    return out


def main(argv: list[str] | None = None) -> None:
    """Print the judge's accuracy per case, for each image size, with and without `balance`."""
    p = argparse.ArgumentParser(prog="python -m sri.metrics.stack_cases", description=main.__doc__)
    p.add_argument("--num", type=int, default=200, help="scenes per case (default 200)")
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 32], help="image sizes (default 64 32)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    print(f"S-Acc judge on hand-drawn cases, {a.num} scenes per case, seed {a.seed} "
          f"({time.strftime('%Y-%m-%d', time.gmtime())})")
    print(f"  {'size':>4} {'tol':>3} {'case':<16}{'expected':<12}{'default':>8}{'balance':>9}")
    for S in a.sizes:
        plain = judge_cases(a.num, S, a.seed)
        bal = judge_cases(a.num, S, a.seed, balance=True)
        for case in CASES:
            print(f"  {S:>4} {default_tol(S):>3} {case:<16}{plain[case]['expected']:<12}"
                  f"{plain[case]['accuracy']:>8.3f}{bal[case]['accuracy']:>9.3f}")


if __name__ == "__main__":
    main()
