"""GENESIS (gen): autoregressive mask posterior, stick-breaking masks, component VAE, prior heads."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal

from sri.models import build_model
from sri.models.genesis import stick_breaking

pytestmark = pytest.mark.usefixtures("one_thread")


def _gen(**kw):
    torch.manual_seed(0)
    return build_model("gen", **{**dict(image_size=16, num_slots=4, slot_dim=8), **kw})


def test_mask_posterior_is_autoregressive():
    seg = _gen().segregation
    h = seg.features(torch.rand(2, 3, 16, 16))
    zeros = h.new_zeros(2, 8)
    mu1, std1, state = seg.mask_posterior_step(h, zeros, None)
    a = mu1 + std1 * torch.randn_like(std1)
    b = a + 1.0
    mu2a, std2a, _ = seg.mask_posterior_step(h, a, state)
    mu2b, std2b, _ = seg.mask_posterior_step(h, b, state)
    # another z^m_1 gives another distribution of z^m_2
    assert (mu2a - mu2b).abs().max() > 1e-4 and (std2a - std2b).abs().max() > 1e-6


def test_encode_reproduces_its_posterior_step_by_step():
    seg = _gen().segregation
    x = torch.rand(2, 3, 16, 16)
    torch.manual_seed(5)
    out = seg.encode(x)
    h = seg.features(x)
    z_prev, state = h.new_zeros(2, 8), None
    for k in range(4):
        mu, std, state = seg.mask_posterior_step(h, z_prev, state)
        torch.testing.assert_close(mu, out.mu[:, k])
        torch.testing.assert_close(std, out.std[:, k])
        z_prev = out.z[:, k]  # teacher-forced on encode's own samples


def test_stick_breaking_against_a_direct_product():
    a = torch.randn(2, 5, 1, 3, 3)
    log_m = stick_breaking(a)
    p = torch.sigmoid(a)
    want = []
    scope = torch.ones_like(p[:, 0])
    for k in range(4):
        want.append(scope * p[:, k])
        scope = scope * (1 - p[:, k])
    want.append(scope)
    torch.testing.assert_close(log_m.exp(), torch.stack(want, 1))
    torch.testing.assert_close(log_m.exp().sum(1), torch.ones(2, 1, 3, 3))


def test_component_encoder_sees_the_log_mask():
    seg = _gen().segregation
    x = torch.rand(2, 3, 16, 16)
    log_m = torch.log_softmax(torch.randn(2, 4, 1, 16, 16), 1)
    mu_a, _ = seg.component_posterior(x, log_m)
    mu_b, _ = seg.component_posterior(x, log_m.roll(1, dims=1))  # same image, other masks per slot
    assert (mu_a - mu_b).abs().max() > 1e-5
    torch.testing.assert_close(mu_a[:, 0], mu_b[:, 1])  # slot order follows the masks
    assert seg.comp_encoder[0].in_channels == 4  # [x, log m_k]


def test_prior_heads_match_the_stated_parameterisation():
    m = _gen(scene_variable=True, scene_dim=8, relation_layers=1)
    prior = m.prior
    h = torch.randn(3, 4 * 8)
    mu, std = prior.params(h)
    raw = F.linear(h, prior.linear.weight, prior.linear.bias)
    torch.testing.assert_close(mu, torch.tanh(raw[:, :8]))
    torch.testing.assert_close(std, torch.sigmoid(raw[:, 8:] + 4) + 1e-4)
    # component prior: MLP z^m (64 in the paper; 8 here) -> 256 -> 256 -> 2 * 16
    seg = m.segregation
    sizes = [(l.in_features, l.out_features) for l in seg.comp_prior if isinstance(l, torch.nn.Linear)]
    assert sizes == [(8, 256), (256, 256), (256, 32)]
    zm = torch.randn(3, 4, 8)
    c_mu, c_std = seg.component_prior(zm)
    out = seg.comp_prior(zm)
    torch.testing.assert_close(c_mu, out[..., :16])
    torch.testing.assert_close(c_std, torch.sigmoid(out[..., 16:] + 4) + 1e-4)
    # paper sizes: LSTM(64 -> 256) and Linear(256 -> 128) on z^m
    paper = build_model("gen").prior
    assert (paper.lstm.input_size, paper.lstm.hidden_size) == (64, 256)
    assert (paper.linear.in_features, paper.linear.out_features) == (256, 128)


def test_kl_terms_against_torch_distributions():
    """seg_kl = log q(z^m) - log p(z^m) + log q(z^c) - log p(z^c | z^m), single-sample estimates."""
    m = _gen()
    x = torch.rand(2, 3, 16, 16)
    torch.manual_seed(7)
    out = m(x)
    torch.manual_seed(7)
    seg = m.segregation.encode(x)
    p_mu, p_std = m.prior.teacher_forced(None, seg.z)
    mask_kl = (Normal(seg.mu, seg.std).log_prob(seg.z) - Normal(p_mu, p_std).log_prob(seg.z)).sum((1, 2))
    zc = seg.context["zc"]
    mu_c, std_c = m.segregation.component_posterior(x, seg.context["log_masks"])
    c_mu, c_std = m.segregation.component_prior(seg.z)
    comp_kl = (Normal(mu_c, std_c).log_prob(zc) - Normal(c_mu, c_std).log_prob(zc)).sum((1, 2))
    torch.testing.assert_close(out.terms["seg_kl"], mask_kl + comp_kl, rtol=1e-5, atol=1e-4)
    # the first slot's prior is N(0, I) without a scene variable
    assert torch.equal(p_mu[:, 0], torch.zeros_like(p_mu[:, 0])) and torch.equal(
        p_std[:, 0], torch.ones_like(p_std[:, 0])
    )


def test_likelihood_uses_the_encoder_masks():
    m = _gen(likelihood="mog", normalized=True, pixel_std=0.7)
    x = torch.rand(2, 3, 16, 16)
    torch.manual_seed(2)
    out = m(x)
    torch.manual_seed(2)
    seg = m.segregation.encode(x)
    torch.testing.assert_close(out.masks, seg.context["log_masks"].exp())
    # the mixture per pixel and channel, as in the authors' releases
    comp = Normal(out.slot_images, 0.7).log_prob(x.unsqueeze(1))  # [B, K, 3, H, W]
    want = -torch.logsumexp(seg.context["log_masks"] + comp, dim=1).sum((1, 2, 3))
    torch.testing.assert_close(out.terms["seg_nll"], want, rtol=1e-5, atol=1e-2)


def test_scene_variable_conditions_the_first_prior_step():
    m = _gen(scene_variable=True, scene_dim=8, relation_layers=1)
    z = torch.randn(2, 4, 8)
    s1, s2 = torch.randn(2, 8), torch.randn(2, 8)
    a, _ = m.prior.teacher_forced(s1, z)
    b, _ = m.prior.teacher_forced(s2, z)
    assert (a[:, 0] - b[:, 0]).abs().max() > 1e-6
    out = m(torch.rand(2, 3, 16, 16))
    assert out.extras["scene_kl"].gt(0).all()
    assert m.imagine(torch.rand(2, 3, 16, 16)).images.shape == (2, 3, 16, 16)
