"""SRI-SA*'s Slot Attention segregation module: attention normalisation, per-slot initialisation."""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from sri import configs as C
from sri.models import build_model
from sri.models.slot_attention import SlotAttention, SlotAttentionSegregation

pytestmark = pytest.mark.usefixtures("one_thread")


def _reference_step(sa: SlotAttention, inputs: torch.Tensor,
                    slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One Slot Attention iteration pixel by pixel (softmax over slots, then a weighted mean)."""
    B, N, _ = inputs.shape
    K, D = slots.shape[1:]
    x = sa.norm_inputs(inputs)
    k, v = x @ sa.to_k.weight.t(), x @ sa.to_v.weight.t()
    q = sa.norm_slots(slots) @ sa.to_q.weight.t()
    attn = torch.empty(B, N, K)
    for b in range(B):
        for n in range(N):
            logits = torch.stack([torch.dot(k[b, n], q[b, j]) / math.sqrt(D) for j in range(K)])
            e = torch.exp(logits - logits.max())
            attn[b, n] = e / e.sum()  # each pixel's attention sums to 1 over the slots
    updates = torch.empty(B, K, D)
    for b in range(B):
        for j in range(K):
            w = attn[b, :, j] + 1e-8
            updates[b, j] = (w[:, None] * v[b]).sum(0) / w.sum()  # weighted mean over the pixels
    h = sa.gru(updates.reshape(B * K, D), slots.reshape(B * K, D)).view(B, K, D)
    return h + sa.mlp(sa.norm_mlp(h)), attn


def test_attention_softmax_over_slots_then_weighted_mean_over_pixels():
    torch.manual_seed(0)
    sa = SlotAttention(input_dim=6, slot_dim=8, iterations=3)
    inputs, slots = torch.randn(2, 10, 6), torch.randn(2, 3, 8)
    with torch.no_grad():
        x = sa.norm_inputs(inputs)
        new, log_attn = sa.step(sa.to_k(x), sa.to_v(x), slots)
        ref_new, ref_attn = _reference_step(sa, inputs, slots)
        torch.testing.assert_close(log_attn.exp(), ref_attn)
        torch.testing.assert_close(new, ref_new)
        _, weights = sa.attention(sa.to_k(x), slots)
        torch.testing.assert_close(weights.sum(1), torch.ones(2, 3))  # renormalised over pixels
        # T = 3 iterations are three such steps; the returned attention is the last one's
        s = slots
        for _ in range(3):
            s, a = _reference_step(sa, inputs, s)
        out, last = sa(inputs, slots)
        torch.testing.assert_close(out, s)
        torch.testing.assert_close(last.exp(), a)


def test_the_order_of_normalisation_matters():
    """The weights are not a softmax over pixels (a pixel no slot wins counts less for every slot)."""
    torch.manual_seed(1)
    sa = SlotAttention(input_dim=4, slot_dim=8, iterations=1)
    inputs, slots = torch.randn(1, 12, 4), torch.randn(1, 3, 8)
    with torch.no_grad():
        k = sa.to_k(sa.norm_inputs(inputs))
        _, weights = sa.attention(k, slots)
        q = sa.to_q(sa.norm_slots(slots))
        over_pixels = F.softmax(k @ q.transpose(1, 2) / math.sqrt(8), dim=1)
    assert not torch.allclose(weights, over_pixels, atol=1e-3)


def _far_apart(seg: SlotAttentionSegregation, sigmas: list[float]) -> None:
    with torch.no_grad():
        for k in range(seg.num_slots):
            seg.init_mu[k].fill_(10.0 * (k + 1) * (-1) ** k)
            seg.init_log_sigma[k].fill_(math.log(sigmas[k]))


def test_each_slot_starts_from_its_own_learned_distribution():
    torch.manual_seed(0)
    seg = SlotAttentionSegregation(16, num_slots=4, slot_dim=8)
    sigmas = [0.05, 0.1, 0.2, 0.4]
    _far_apart(seg, sigmas)
    captured = []
    seg.slot_attention.register_forward_pre_hook(lambda mod, args: captured.append(args[1].detach()))
    seg.encode(torch.rand(3, 3, 16, 16))  # the initial slots that encode feeds to slot attention
    start = captured[0]
    assert start.shape == (3, 4, 8)
    means = seg.init_mu.detach()
    for k in range(4):
        dist = (start[:, k, None, :] - means[None]).norm(dim=-1)  # [B, K]: to every slot's mean
        assert (dist.argmin(-1) == k).all()
        assert (dist[:, k] < 5 * sigmas[k] * math.sqrt(8)).all()
    with torch.no_grad():  # each slot has its own variance too
        many = seg.initial_slots(4000)
    torch.testing.assert_close(many.mean(0), means, atol=0.05, rtol=0)
    torch.testing.assert_close(many.std(0).mean(-1), torch.tensor(sigmas), atol=0, rtol=0.05)


def test_permuting_the_learned_initialisations_permutes_the_slots():
    torch.manual_seed(0)
    seg = SlotAttentionSegregation(16, num_slots=4, slot_dim=8)
    with torch.no_grad():
        seg.init_mu.normal_()
        seg.init_log_sigma.uniform_(-1.0, 0.0)
    perm = torch.tensor([2, 0, 3, 1])
    permuted = copy.deepcopy(seg)
    with torch.no_grad():
        permuted.init_mu.copy_(seg.init_mu[perm])
        permuted.init_log_sigma.copy_(seg.init_log_sigma[perm])
    x, noise = torch.rand(2, 3, 16, 16), torch.randn(2, 4, 8)
    with torch.no_grad():
        a = seg.encode(x, init_noise=noise)
        b = permuted.encode(x, init_noise=noise[:, perm])  # the same noise draw stays with its slot
    torch.testing.assert_close(b.mu, a.mu[:, perm])
    torch.testing.assert_close(b.std, a.std[:, perm])
    torch.testing.assert_close(b.att_log_masks, a.att_log_masks[:, perm])
    assert not torch.allclose(b.mu, a.mu, atol=1e-3)  # the slots do differ


def test_attention_masks_and_reproducibility():
    seg = SlotAttentionSegregation(16, num_slots=3, slot_dim=8)
    x = torch.rand(2, 3, 16, 16)
    torch.manual_seed(5)
    a = seg.encode(x)
    torch.manual_seed(5)
    b = seg.encode(x)
    torch.testing.assert_close(a.z, b.z)  # the slot init uses the global RNG
    torch.testing.assert_close(a.att_log_masks.exp().sum(1), torch.ones(2, 1, 16, 16))
    assert (a.std > 0).all() and a.mu.shape == a.z.shape == (2, 3, 8)


def test_registry_builds_sri_sa_and_table1_trains_it_without_cross_order_kl():
    m = build_model("sri_sa", image_size=16, num_slots=3, slot_dim=8, scene_dim=8, sa_iterations=2)
    assert isinstance(m.segregation, SlotAttentionSegregation)
    assert m.segregation.slot_attention.iterations == 2
    for bad in (0, 1.5, "3"):
        with pytest.raises(ValueError, match="sa_iterations"):
            build_model("sri_sa", sa_iterations=bad)
    cfg = C.experiment_config(1, "sri_sa", preset="smoke")
    assert cfg["model"] == "sri_sa" and cfg["model_options"]["cross_order_kl"] is False
    m = build_model("sri_sa", **{**cfg["model_options"], "scene_dim": 8, "slot_dim": 8})
    out = m(torch.rand(2, 3, 16, 16))
    assert (out.terms["cross_order_kl"] == 0).all() and (out.terms["slot_kl"] > 0).all()
