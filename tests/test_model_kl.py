"""Model-level KL terms (paper Eq. 8-12) and the -ELBO terms against torch.distributions.

Each term is recomputed from the distribution parameters the model exposes in `extras`, with
torch.distributions (analytic KLs for SRI's Gaussian posterior and prior, log-densities for the
single-sample estimates), and the NLL from the decoded slots and masks as a mixture density.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from sri.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = dict(image_size=16, num_slots=3, slot_dim=8, scene_dim=8, relation_layers=1)


def _sri(**kw):
    torch.manual_seed(0)
    return build_model("sri", **{**SMALL, **kw})


def _mixture_nll(x, masks, rgb, sigma, normalized):
    """-log sum_k m_k N(x; x_k, sigma^2) per pixel and channel, as the authors' release."""
    comp = Normal(rgb, sigma).log_prob(x.unsqueeze(1))  # [B, K, 3, H, W]
    if not normalized:  # the unnormalised likelihood drops 0.5 log(2 pi) per element
        comp = comp + 0.5 * math.log(2 * math.pi)
    return -torch.logsumexp(torch.log(masks) + comp, dim=1).sum((1, 2, 3))


def test_sri_scene_slot_and_cross_order_kl():
    m = _sri()
    out = m(torch.rand(2, 3, 16, 16))
    e = out.extras
    q = Normal(e["mu"], e["q_std"])
    scene = kl_divergence(Normal(e["scene_mu"], e["scene_std"]), Normal(0.0, 1.0)).sum(-1)
    slot = kl_divergence(q, Normal(e["prior_mu"], e["prior_std"])).sum((1, 2))
    cross = kl_divergence(q, Normal(e["rollout_mu"], e["rollout_std"])).sum((1, 2))
    torch.testing.assert_close(out.terms["scene_kl"], scene, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.terms["slot_kl"], slot, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.terms["cross_order_kl"], cross, rtol=1e-5, atol=1e-5)
    assert (out.terms["cross_order_kl"] > 0).all() and (out.terms["slot_kl"] > 0).all()


def test_sri_seg_kl_is_a_single_sample_estimate_against_n01():
    m = _sri()
    x = torch.rand(2, 3, 16, 16)
    torch.manual_seed(3)
    out = m(x)
    torch.manual_seed(3)
    seg = m.segregation.encode(x)
    want = (Normal(seg.mu, seg.std).log_prob(seg.z) - Normal(0.0, 1.0).log_prob(seg.z)).sum((1, 2))
    torch.testing.assert_close(out.terms["seg_kl"], want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("normalized", [True, False])
def test_sri_elbo_terms_against_a_mixture_density(normalized):
    m = _sri(likelihood="mog", normalized=normalized, pixel_std=0.3)
    x = torch.rand(2, 3, 16, 16)
    torch.manual_seed(4)
    out = m(x)
    torch.manual_seed(4)
    terms = m.elbo_terms(x, normalized=normalized)
    assert set(terms) == {"nll", "scene_kl", "slot_kl", "cross_order_kl"}
    want = _mixture_nll(x, out.masks, out.slot_images, 0.3, normalized)
    torch.testing.assert_close(terms["nll"], want, rtol=1e-4, atol=1e-2)
    e = out.extras
    q = Normal(e["mu"], e["q_std"])
    torch.testing.assert_close(terms["slot_kl"], kl_divergence(q, Normal(e["prior_mu"], e["prior_std"])).sum((1, 2)),
                               rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(terms["scene_kl"], kl_divergence(
        Normal(e["scene_mu"], e["scene_std"]), Normal(0.0, 1.0)).sum(-1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scene", [False, True])
def test_genv2_kl_and_elbo_terms(scene):
    torch.manual_seed(0)
    m = build_model("genv2", **SMALL, scene_variable=scene)
    x = torch.rand(2, 3, 16, 16)
    torch.manual_seed(5)
    out = m(x)
    e = out.extras
    slot = (Normal(e["mu"], e["std"]).log_prob(e["z"]) - Normal(e["prior_mu"], e["prior_std"]).log_prob(e["z"])).sum(
        (1, 2)
    )
    torch.testing.assert_close(out.terms["seg_kl"] - e["scene_kl"], slot, rtol=1e-5, atol=1e-4)
    torch.manual_seed(5)
    terms = m.elbo_terms(x, normalized=True)
    torch.testing.assert_close(
        terms["nll"], _mixture_nll(x, out.masks, out.slot_images, 0.7, True), rtol=1e-4, atol=1e-2
    )
    torch.testing.assert_close(terms["kl"], out.terms["seg_kl"])
