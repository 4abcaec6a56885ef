"""EfficientMORL: refinement from loss gradients, iteration weights, curriculum, EMORL's GECO."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sri.models import build_model, model_spec
from sri.models.emorl import EmorlSegregation, iteration_weights
from sri.models.independent_vae import IndependentSlotVAE
from sri.objectives import GECO, EmorlGECO
from sri.train.step import make_gecos, train_step

pytestmark = pytest.mark.usefixtures("one_thread")

_TINY = dict(image_size=16, num_slots=3, slot_dim=8, scene_dim=8, relation_layers=1)


def _module(**kw) -> EmorlSegregation:
    torch.manual_seed(0)
    return EmorlSegregation(16, 3, 8, **kw)


def _std(s: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(F.softplus(s) + 1e-5)


def _kl(mq, sq, mp, sp):  # KL of diagonal Gaussians, written out, summed over slots and dims
    return (torch.log(sp / sq) + (sq ** 2 + (mq - mp) ** 2) / (2 * sp ** 2) - 0.5).sum((1, 2))


def test_refinement_input_holds_the_gradient_of_the_loss_wrt_the_posterior_parameters():
    m = _module(refinement_steps=1, curriculum_step=0).eval()
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    seen = []
    m.refinement.mlp.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].detach()))
    torch.manual_seed(5)
    m.encode(x)
    assert len(seen) == 1  # one refinement step
    # the same loss, computed independently: same noise (same RNG stream), the -ELBO by hand
    torch.manual_seed(5)
    with torch.no_grad():
        mus, ss, zs, _ = m.hvae(x)
    eps = torch.randn_like(mus[-1])
    mu, s = mus[-1].clone().requires_grad_(), ss[-1].clone().requires_grad_()
    z = mu + _std(s) * eps
    rgb, logm = m.decoder.decode_slots(z)
    recon = (logm.exp() * rgb).sum(1)
    nll = (0.5 * ((x - recon) / 0.1) ** 2 + math.log(0.1)).sum((1, 2, 3))  # unnormalised Gaussian
    kl_top = _kl(mu, _std(s), torch.zeros_like(mu), torch.ones_like(mu))
    p_mu, p_s = m.prior_nets[1](z).chunk(2, -1)  # p(z^2 | z^3) with the refined layer's sample
    kl_below = _kl(mus[1], _std(ss[1]), p_mu, _std(p_s))
    g_mu, g_s = torch.autograd.grad((nll + kl_top + kl_below).sum(), (mu, s))
    D = 8
    inp = seen[0].view(2, 3, 4 * D)
    torch.testing.assert_close(inp[..., :D], mus[-1])
    torch.testing.assert_close(inp[..., D:2 * D], ss[-1])
    with torch.no_grad():
        torch.testing.assert_close(inp[..., 2 * D:3 * D], m.refinement.norm_grad_mu(g_mu), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(inp[..., 3 * D:], m.refinement.norm_grad_s(g_s), rtol=1e-4, atol=1e-4)
    assert g_mu.abs().sum() > 0 and g_s.abs().sum() > 0


def test_iteration_weights():
    assert iteration_weights(3) == [6 / 4, 5 / 4, 4 / 4, 3 / 4]
    assert iteration_weights(1) == [4 / 2, 3 / 2]
    assert iteration_weights(2) == [5 / 3, 4 / 3, 1.0]


def test_training_terms_are_the_final_iteration_with_the_gradient_of_the_weighted_sum():
    """seg_nll + seg_kl has the value of the last iteration's -ELBO and the gradient of
    sum_i w_i (NLL_i + KL_i) (two layers, so that every KL term is inside one iteration's loss)."""
    seg = _module(layers=2, refinement_steps=2, curriculum_step=0)
    opts = dict(build_model("emorl", **_TINY).options)
    model = IndependentSlotVAE("emorl", opts, seg)
    captured = []
    original = seg._decode_loss

    def record(*a, **kw):
        out = original(*a, **kw)
        captured.append(out)
        return out

    seg._decode_loss = record
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(3)
    out = model(x)
    assert len(captured) == 3
    loss = (out.terms["seg_nll"] + out.terms["seg_kl"]).sum()
    torch.testing.assert_close(out.terms["seg_nll"] + out.terms["seg_kl"], out.extras["iteration_losses"][-1])
    torch.testing.assert_close(out.terms["seg_nll"], captured[-1]["nll"])
    w = [5 / 3, 4 / 3, 1.0]
    ref = sum(wi * (c["nll"] + c["kl"]) for wi, c in zip(w, captured)).sum()
    params = [p for p in model.parameters()]
    g = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    g_ref = torch.autograd.grad(ref, params, allow_unused=True)
    for a, b in zip(g, g_ref):
        if a is None or b is None:
            assert a is None and b is None
        else:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-3)


def test_refinement_lowers_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = build_model("emorl", **{**_TINY, "refinement_steps": 3})
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0)).round()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for step in range(80):
        torch.manual_seed(step)
        terms = model(x).terms
        loss = (terms["seg_nll"] + terms["seg_kl"]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    per_iteration = []
    for seed in range(4):
        torch.manual_seed(100 + seed)
        with torch.no_grad():
            per_iteration.append(model(x).extras["iteration_losses"].mean(1))
    mean = torch.stack(per_iteration).mean(0)  # [I + 1]
    assert mean[-1] < mean[0], mean.tolist()


def test_curriculum_changes_i_at_the_configured_step_and_a_resumed_model_keeps_it():
    torch.manual_seed(0)
    model = build_model("emorl", **{**_TINY, "refinement_steps": 3, "refinement_steps_late": 1,
                                    "curriculum_step": 3})
    x = torch.rand(2, 3, 16, 16)
    sizes = []
    for _ in range(5):
        out = model(x)
        (out.terms["seg_nll"] + out.terms["seg_kl"]).mean().backward()
        sizes.append(out.extras["iteration_losses"].shape[0] - 1)
    assert sizes == [3, 3, 3, 1, 1]
    with torch.no_grad():  # evaluation passes do not count as training steps
        model(x)
    model.eval()
    model(x)
    assert int(model.segregation.training_step) == 5
    resumed = build_model(model.name, **model.options)
    assert resumed.segregation.current_refinement_steps() == 3
    resumed.load_state_dict(model.state_dict())
    assert resumed.segregation.current_refinement_steps() == 1
    resumed.set_training_step(0)  # a trainer may set the step itself
    assert resumed.segregation.current_refinement_steps() == 3
    # SRI-EMORL fixes I = 2 (no curriculum)
    sri = build_model("sri_emorl", **_TINY)
    sri.set_training_step(10 ** 7)
    assert sri.segregation.current_refinement_steps() == 2


def test_emorl_geco_against_a_hand_computed_sequence():
    g = EmorlGECO(goal=10.0, step_size=0.1, alpha=0.5, speedup=10.0, warm_start=2)
    sp = lambda b: math.log1p(math.exp(b))  # noqa: E731
    errs = [20, 16, 14, 30, 4, 10, 6, 0]
    # ema: 20, 18, 16, 23, 13.5, 11.75, 8.875, 4.4375; b moves from the third update on
    want_b = [0.55, 0.55, 1.15, 2.45, 2.8, 2.975, 1.85, 0.55]
    kl = torch.tensor(3.0)
    for i, (e, b) in enumerate(zip(errs, want_b)):
        b_before = g.b
        loss = g.loss(torch.tensor(float(e)), kl)
        assert float(loss) == pytest.approx(sp(b_before) * e + 3.0)
        assert g.b == pytest.approx(b), i
        assert g.beta == pytest.approx(1.0 / sp(b))
        if i == 4:
            saved = g.state_dict()
    assert g.err_ema == pytest.approx(4.4375) and g.steps == 8
    assert g.multiplier >= sp(0.55) - 1e-12
    again = EmorlGECO(goal=0.0, step_size=1.0)
    again.load_state_dict(saved)
    assert (again.b, again.steps, again.err_ema) == (pytest.approx(2.8), 5, pytest.approx(13.5))
    again.update(10.0)
    assert again.b == pytest.approx(2.975)
    only_beta = EmorlGECO(goal=0.0, step_size=1.0)
    only_beta.load_state_dict({"beta": 1.0 / sp(2.0), "err_ema": 1.0})  # a trainer's init_checkpoint
    assert only_beta.b == pytest.approx(2.0)


def test_the_registry_picks_emorls_geco_and_train_step_runs_with_it():
    for name in ("emorl", "sri_emorl"):
        assert model_spec(name).geco == "emorl"
        torch.manual_seed(0)
        m = build_model(name, **_TINY)
        gecos = make_gecos(m, goal_per_element=-2.265, geco_lr=1e-6)
        assert tuple(gecos) == model_spec(name).loss_groups
        assert all(isinstance(g, EmorlGECO) for g in gecos.values())
        assert gecos["seg"].step_size == pytest.approx(1e-6 * 64 ** 2 / 16 ** 2)
        stats = train_step(m, torch.rand(2, 3, 16, 16), torch.optim.Adam(m.parameters(), 1e-4), gecos,
                           grad_clip=5.0)
        assert stats["finite"] == 1.0 and stats["beta_seg"] == pytest.approx(1 / math.log1p(math.exp(0.55)))
        assert all(g.steps == 1 for g in gecos.values())
    assert isinstance(make_gecos(build_model("sri", **_TINY), goal_per_element=0.5)["seg"], GECO)


def test_the_cpu_scale_preset_narrows_the_decoder_and_is_refused_for_other_models():
    """`emorl_cpu`: 32-channel decoder, I = 1, 1,000-step warm-up; a fewer-FLOP model that still trains."""
    from sri.configs import ConfigError, experiment_config

    for row in ("emorl", "sri_emorl"):
        cfg = experiment_config(2, row, preset="emorl_cpu")
        o = cfg["model_options"]
        assert (o["decoder_width"], o["refinement_steps"], cfg["lr_warmup_steps"]) == (32, 1, 1000)
        model = build_model(cfg["model"], **o)
        widths = {m.out_channels for m in model.segregation.decoder.modules() if isinstance(m, torch.nn.Conv2d)}
        assert widths == {32, 4}
    full = build_model("emorl", **experiment_config(2, "emorl", preset="quick")["model_options"])
    assert {m.out_channels for m in full.segregation.decoder.modules() if isinstance(m, torch.nn.Conv2d)} == {64, 4}
    with pytest.raises(ConfigError, match="preset 'emorl_cpu' is for the models emorl, sri_emorl, not 'sri'"):
        experiment_config(2, "sri_g", preset="emorl_cpu")
