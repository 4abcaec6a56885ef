"""Greedy / Hungarian matching against brute-force references."""
import itertools

import numpy as np
import pytest
import torch

from sri.matching import greedy_match, hungarian_match, match


def _greedy_reference(r: np.ndarray, s: np.ndarray) -> list[int]:
    K = r.shape[0]
    cost = [[float(np.linalg.norm(r[i] - s[j])) for j in range(K)] for i in range(K)]
    used, order = set(), []
    for i in range(K):
        best, best_j = None, None
        for j in range(K):
            if j in used:
                continue
            if best is None or cost[i][j] < best:
                best, best_j = cost[i][j], j
        used.add(best_j)
        order.append(best_j)
    return order


def _brute_force_min(r: np.ndarray, s: np.ndarray) -> float:
    K = r.shape[0]
    cost = np.linalg.norm(r[:, None] - s[None], axis=-1)
    return min(sum(cost[i, p[i]] for i in range(K)) for p in itertools.permutations(range(K)))


@pytest.mark.parametrize("K", [1, 3, 5, 9])
def test_greedy_matches_python_algorithm_1(K):
    g = torch.Generator().manual_seed(K)
    r = torch.randn(6, K, 4, generator=g)
    s = torch.randn(6, K, 4, generator=g)
    order = greedy_match(r, s)
    assert order.dtype == torch.long and order.shape == (6, K)
    for b in range(6):
        assert order[b].tolist() == _greedy_reference(r[b].numpy(), s[b].numpy())
        assert sorted(order[b].tolist()) == list(range(K))


def test_greedy_first_rollout_position_picks_first():
    # rollout 0 and 1 both closest to seg 0; position 0 must win it.
    r = torch.tensor([[[0.0], [0.1]]])
    s = torch.tensor([[[0.05], [5.0]]])
    assert greedy_match(r, s).tolist() == [[0, 1]]
    # greedy differs from the optimum here: Hungarian picks the cheaper total
    r = torch.tensor([[[0.0], [1.0]]])
    s = torch.tensor([[[0.9], [-5.0]]])
    assert greedy_match(r, s).tolist() == [[0, 1]]
    assert hungarian_match(r, s).tolist() == [[1, 0]]


@pytest.mark.parametrize("K", [2, 3, 4, 5])
def test_hungarian_is_optimal_by_brute_force(K):
    g = torch.Generator().manual_seed(10 + K)
    r = torch.randn(5, K, 3, generator=g)
    s = torch.randn(5, K, 3, generator=g)
    order = hungarian_match(r, s)
    for b in range(5):
        rb, sb = r[b].numpy(), s[b].numpy()
        total = sum(np.linalg.norm(rb[i] - sb[order[b, i]]) for i in range(K))
        assert sorted(order[b].tolist()) == list(range(K))
        assert total == pytest.approx(_brute_force_min(rb, sb), rel=1e-5)


def test_identical_sets_recover_permutation_and_nonfinite_is_valid():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(3, 6, 8, generator=g)
    perm = torch.stack([torch.randperm(6, generator=g) for _ in range(3)])
    r = s[torch.arange(3)[:, None], perm]
    assert torch.equal(greedy_match(r, s), perm)
    assert torch.equal(match("hungarian", r, s), perm)
    r[0, 2] = float("nan")
    for fn in (greedy_match, hungarian_match):
        o = fn(r, s)
        assert sorted(o[0].tolist()) == list(range(6))


def test_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        greedy_match(torch.zeros(2, 3, 4), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="greedy"):
        match("auction", torch.zeros(1, 2, 2), torch.zeros(1, 2, 2))
