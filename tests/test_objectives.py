"""NLLs, KLs and GECO against torch.distributions and hand computations."""
import math

import pytest
import torch
from torch.distributions import Categorical, MixtureSameFamily, Normal, kl_divergence

from sri.objectives import (
    GECO,
    LOG_2PI,
    gaussian_nll,
    image_nll,
    kl_normal,
    kl_std_normal,
    mc_kl_normal,
    mog_nll,
    softplus_std,
)


def _inputs(B=2, K=3, H=4, W=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, 3, H, W, generator=g, dtype=torch.float64)
    means = torch.rand(B, K, 3, H, W, generator=g, dtype=torch.float64)
    log_masks = torch.log_softmax(torch.randn(B, K, 1, H, W, generator=g, dtype=torch.float64), 1)
    return x, means, log_masks


@pytest.mark.parametrize("std", [0.7, 0.1])
def test_gaussian_nll_eq3(std):
    x, means, log_masks = _inputs()
    recon = (log_masks.exp() * means).sum(1)
    ref = -Normal(recon, std).log_prob(x).sum((1, 2, 3))
    got = gaussian_nll(x, log_masks, means, std, normalized=True)
    torch.testing.assert_close(got, ref)
    n = 3 * 4 * 5
    torch.testing.assert_close(gaussian_nll(x, log_masks, means, std, normalized=False),
                               ref - 0.5 * LOG_2PI * n)
    torch.testing.assert_close(image_nll(x, log_masks, means, std, "gaussian"), ref)


@pytest.mark.parametrize("std", [0.7, 0.1])
def test_mog_nll_eq4(std):
    x, means, log_masks = _inputs(seed=1)
    # mixture per pixel and channel: move K last
    mix = Categorical(logits=log_masks.expand_as(means).movedim(1, -1))
    comp = Normal(means.movedim(1, -1), std)
    ref = -MixtureSameFamily(mix, comp).log_prob(x).sum((1, 2, 3))
    torch.testing.assert_close(mog_nll(x, log_masks, means, std, normalized=True), ref)
    # logsumexp of Normal log_probs, unnormalised = without the -0.5 log 2pi term
    lp = Normal(means, std).log_prob(x.unsqueeze(1)) + 0.5 * LOG_2PI + log_masks
    ref_u = -torch.logsumexp(lp, 1).sum((1, 2, 3))
    torch.testing.assert_close(mog_nll(x, log_masks, means, std, normalized=False), ref_u)
    torch.testing.assert_close(image_nll(x, log_masks, means, std, "mog", False), ref_u)
    with pytest.raises(ValueError, match="likelihood"):
        image_nll(x, log_masks, means, std, "laplace")


def test_kls_against_torch_distributions():
    g = torch.Generator().manual_seed(2)
    mq, mp = torch.randn(4, 7, generator=g), torch.randn(4, 7, generator=g)
    sq, sp = torch.rand(4, 7, generator=g) + 0.1, torch.rand(4, 7, generator=g) + 0.1
    torch.testing.assert_close(kl_normal(mq, sq, mp, sp),
                               kl_divergence(Normal(mq, sq), Normal(mp, sp)).sum(-1))
    torch.testing.assert_close(kl_std_normal(mq, sq),
                               kl_divergence(Normal(mq, sq), Normal(0.0, 1.0)).sum(-1))
    z = torch.randn(4, 7, generator=g)
    torch.testing.assert_close(mc_kl_normal(z, mq, sq, mp, sp),
                               (Normal(mq, sq).log_prob(z) - Normal(mp, sp).log_prob(z)).sum(-1))
    torch.testing.assert_close(mc_kl_normal(z, mq, sq),
                               (Normal(mq, sq).log_prob(z) - Normal(0.0, 1.0).log_prob(z)).sum(-1))


def test_softplus_std():
    x = torch.tensor([-3.0, 0.0, 2.0, 100.0])
    ref = torch.sqrt(torch.log1p(torch.exp(torch.clamp(x, max=80.0))) + 1e-5)
    torch.testing.assert_close(softplus_std(x), ref)


def test_geco_hand_computed_sequence():
    goal, step, alpha, speedup = 10.0, 0.01, 0.5, 4.0
    geco = GECO(goal, step, alpha=alpha, speedup=speedup)
    assert geco.goal == 10.0 and geco.beta == 1.0
    errs = [12.0, 8.0, 4.0, 30.0]
    kl = torch.tensor(2.0)
    # hand computation
    ema, beta, exp_losses, exp_betas = None, 1.0, [], []
    for e in errs:
        exp_losses.append(e + beta * 2.0)
        ema = e if ema is None else alpha * ema + (1 - alpha) * e
        c = goal - ema
        beta = beta * math.exp(step * c * (speedup if c > 0 else 1.0))
        exp_betas.append(beta)
    # ema: 12, 10, 7, 18.5 -> constraints -2, 0, 3, -8.5
    assert exp_betas[0] == pytest.approx(math.exp(-0.02))
    assert exp_betas[2] == pytest.approx(math.exp(-0.02 + 0.0 + 0.12))
    for e, l_ref, b_ref in zip(errs, exp_losses, exp_betas):
        loss = geco.loss(torch.tensor(e), kl)
        assert float(loss) == pytest.approx(l_ref)
        assert geco.beta == pytest.approx(b_ref)
    assert geco.err_ema == pytest.approx(18.5)
    state = geco.state_dict()
    other = GECO(0.0, 1.0)
    other.load_state_dict(state)
    assert other.state_dict() == state
    # update=False leaves the state alone
    geco.loss(torch.tensor(1.0), kl, update=False)
    assert geco.state_dict() == state


def test_geco_beta_is_clamped():
    geco = GECO(goal=1e6, step_size=1.0, speedup=10.0)
    for _ in range(5):
        geco.update(0.0)
    assert geco.beta == 1e10
    geco = GECO(goal=-1e6, step_size=1.0)
    geco.update(0.0)
    assert geco.beta == 1e-10
