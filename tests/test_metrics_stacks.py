"""The automatic S-Acc judge on hand-drawn segment maps (validation on `blocks` scenes is separate)."""
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
    assert r["plausible_true"] >= 0.98 and r["implausible_lifted"] >= 0.98, msg
    assert r["plausible_true_noisy"] >= 0.95 and r["implausible_lifted_noisy"] >= 0.95, msg


def test_validate_stack_judge_500():
    pytest.importorskip("sri.data.synthetic")
    _check_validation(500)


@pytest.mark.slow
def test_validate_stack_judge_1000():
    pytest.importorskip("sri.data.synthetic")
    _check_validation(1000)
