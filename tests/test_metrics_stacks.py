"""The automatic S-Acc judge on hand-drawn segment maps whose answer is known without the judge
(validation on `blocks` scenes is separate)."""
import numpy as np
import pytest
import torch

from sri.metrics import float_one_block, s_acc, stack_is_plausible


def scene(blocks, size=64, split_background=False):
    """Rectangles (r0, r1, c0, c1) labelled 1.. on background 0, or floor/wall labels 7/8."""
    m = np.zeros((size, size), int)
    if split_background:
        m[: size // 2] = 8  # wall
        m[size // 2:] = 7  # floor
    for i, (r0, r1, c0, c1) in enumerate(blocks, 1):
        m[r0:r1, c0:c1] = i
    return m


STACK = [(50, 60, 20, 40), (40, 50, 24, 36), (30, 40, 26, 34)]


def judge(*maps):
    return stack_is_plausible(np.stack(maps)).tolist()


def test_plausible_stack_and_single_block():
    assert judge(scene(STACK), scene(STACK[:1])) == [True, True]


def test_gap_side_by_side_two_stacks_and_empty():
    gap = [(50, 60, 20, 40), (36, 46, 24, 36)]  # 4 rows of background between the blocks
    side = [(50, 60, 10, 25), (54, 60, 25, 40)]  # touching side by side on the floor: not one stack
    two = [(50, 60, 5, 20), (40, 50, 8, 16), (50, 60, 40, 55), (40, 50, 43, 52)]
    assert judge(scene(gap), scene(side), scene(two), scene([])) == [False, False, False, False]
    # a one-row gap is within the contact tolerance (argmax boundaries are ragged)
    assert judge(scene([(50, 60, 20, 40), (39, 49, 24, 36)])) == [True]


def test_block_split_over_two_slots_is_one_block():
    faces = [(50, 60, 20, 34), (50, 60, 34, 40), (40, 50, 24, 36)]  # front + side face of the base
    top_split = [(50, 60, 20, 40), (40, 50, 24, 30), (40, 50, 30, 36)]
    apart = [(50, 60, 20, 34), (50, 60, 38, 44), (40, 50, 24, 36)]  # 4 columns apart: two blocks
    assert judge(scene(faces), scene(top_split), scene(apart)) == [True, True, False]


def test_labels_do_not_matter():
    m = scene(STACK)
    perm = np.array([5, 3, 9, 1])  # background becomes 5, blocks 3, 9, 1
    assert judge(perm[m], m + 100) == [True, True]


def test_split_background_floor_contact():
    on_floor = scene(STACK, split_background=True)
    floating = scene([(12, 22, 20, 40), (2, 12, 24, 36)], split_background=True)  # base on the wall
    assert judge(on_floor, floating) == [True, False]
    assert judge(scene([(12, 22, 20, 40), (2, 12, 24, 36)])) == [True]  # one background: not testable


def test_speckle_noise_is_ignored():
    rng = np.random.default_rng(0)
    m = scene(STACK, split_background=True)
    noise = rng.random(m.shape) < 0.01
    m[noise] = rng.integers(1, 9, noise.sum())
    assert judge(m) == [True]


def test_float_one_block_breaks_contact():
    m = scene(STACK)
    lifted = float_one_block(torch.as_tensor(m)[None], generator=np.random.default_rng(0))[0].numpy()
    moved = [lab for lab in (2, 3) if not np.array_equal(lifted == lab, m == lab)]
    assert len(moved) == 1 and (lifted == 1).sum() == (m == 1).sum()
    assert judge(lifted) == [False]
    assert s_acc(np.stack([m, lifted])) == 0.5


def lifted(lift, size=64):
    """Three resting blocks (1 row apart), the top one raised by `lift` rows."""
    u = size // 64
    base, mid = (50 * u, 60 * u, 20 * u, 40 * u), (40 * u, 50 * u, 24 * u, 36 * u)
    top = (30 * u - lift, 40 * u - lift, 26 * u, 34 * u)
    return scene([base, mid, top], size)


def test_lifts_against_the_contact_tolerance():
    # resting blocks are 1 row apart; tol rows of slack tolerate a gap of tol - 1 rows
    # 64x64: tol = 2, so a 1 px lift still touches and 2 or 3 px float
    assert judge(lifted(0), lifted(1), lifted(2), lifted(3)) == [True, True, False, False]
    # 128x128: tol = 4, gaps up to 3 rows are tolerated
    assert judge(*(lifted(k, 128) for k in (3, 4))) == [True, False]
    # an explicit tol = 1 tolerates no gap
    assert stack_is_plausible(np.stack([lifted(0), lifted(1)]), tol=1).tolist() == [True, False]


def test_overhang_needs_balance():
    # the top block (20 columns) rests on 5 columns at the right edge of the one below: its
    # centre of mass is 5 columns beyond that edge, so it would tip over
    over = scene([(50, 60, 20, 40), (40, 50, 35, 55)])
    held = scene([(50, 60, 20, 40), (40, 50, 25, 45)])  # 15 columns of support, centre inside
    # the default follows the paper's definition (blocks touching), which does not see balance
    assert judge(over, held) == [True, True]
    assert stack_is_plausible(np.stack([over, held]), balance=True).tolist() == [False, True]
    # the load is everything above a contact: each block is held by the one below, but the
    # centre of the top two (column 40.5) lies beyond the base's edge (39.5): they tip over
    both = scene([(50, 60, 20, 40), (40, 50, 30, 46), (30, 40, 36, 52)])
    pair = scene([(40, 50, 30, 46), (30, 40, 36, 52)])
    assert stack_is_plausible(np.stack([both, pair]), balance=True).tolist() == [False, True]


def test_corner_contact_is_not_support():
    corner = scene([(50, 60, 20, 40), (40, 50, 40, 52)])  # 8-connected only at one corner pixel
    assert judge(corner) == [False]
    assert stack_is_plausible(corner[None], balance=True).tolist() == [False]


@pytest.mark.parametrize("size", [64, 32])
@pytest.mark.parametrize("balance", [False, True])
def test_hand_drawn_cases_accuracy(size, balance):
    from sri.metrics.stack_cases import CASES, judge_cases

    r = judge_cases(num=200, image_size=size, seed=0, balance=balance)
    print("\n" + ", ".join(f"{c}: {v['accuracy']:.3f}" for c, v in r.items()))
    # README: 100% on every case, except `overhang` without balance (0% at 64x64, 0.5% at 32x32)
    for case in CASES:
        if case == "overhang" and not balance:
            assert r[case]["accuracy"] <= 0.01, r
        else:
            assert r[case]["accuracy"] == 1.0, (case, r)


def test_hand_drawn_cases_have_the_stated_geometry():
    from sri.metrics.stack_cases import case_scenes

    S = 64
    for m in case_scenes("lift_2", 20, S, seed=1):
        labels = sorted(set(np.unique(m)) - {0, 8, 9})
        bottoms = {lab: np.nonzero((m == lab).any(1))[0].max() for lab in labels}
        tops = {lab: np.nonzero((m == lab).any(1))[0].min() for lab in labels}
        gaps = [tops[a] - bottoms[b] - 1 for a, b in zip(labels[:-1], labels[1:])]
        assert sorted(gaps) == [0] * (len(gaps) - 1) + [2]
    for m in case_scenes("corner", 20, S, seed=1):
        labels = sorted(set(np.unique(m)) - {0, 8, 9})
        cols = [set(np.nonzero((m == lab).any(0))[0]) for lab in labels[-2:]]
        assert not cols[0] & cols[1]  # no shared column ...
        rows = [np.nonzero((m == lab).any(1))[0] for lab in labels[-2:]]
        assert rows[1].max() + 1 == rows[0].min()  # ... and the top one just above
    with pytest.raises(ValueError, match="unknown case"):
        case_scenes("tilted")


def test_bad_input():
    with pytest.raises(TypeError, match="integers"):
        stack_is_plausible(torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match="argmax"):
        stack_is_plausible(torch.zeros(2, 3, 8, 8, dtype=torch.long))


def _check_validation(num):
    from sri.metrics import validate_stack_judge

    r = validate_stack_judge(num=num, seed=0)
    msg = (f"S-Acc judge on {num} synthetic blocks scenes: plausible(true masks)={r['plausible_true']:.3f}, "
           f"implausible(one block lifted)={r['implausible_lifted']:.3f}; with split floor/wall and noisy "
           f"boundaries: {r['plausible_true_noisy']:.3f} / {r['implausible_lifted_noisy']:.3f}")
    print("\n" + msg)
    # the README claims 100% on both (measured on 1000 scenes, and 500 give the same)
    assert r["plausible_true"] == 1.0 and r["implausible_lifted"] == 1.0, msg
    assert r["plausible_true_noisy"] == 1.0 and r["implausible_lifted_noisy"] == 1.0, msg


def test_validate_stack_judge_500():
    pytest.importorskip("sri.data.synthetic")
    _check_validation(500)


@pytest.mark.slow
def test_validate_stack_judge_1000():
    pytest.importorskip("sri.data.synthetic")
    _check_validation(1000)
