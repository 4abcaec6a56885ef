"""The contract every implemented model keeps (parametrised over the registry)."""
from __future__ import annotations

import pytest
import torch

from sri.models import IMPLEMENTED, LOSS_GROUPS, ModelOutput, SampleOutput, build_model, model_spec

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny(name: str, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, **{**dict(image_size=16, num_slots=3, slot_dim=8, scene_dim=8,
                                       relation_layers=1), **kw})


def _group_loss(terms: dict[str, torch.Tensor], group: str) -> torch.Tensor:
    g = LOSS_GROUPS[group]
    return (terms[g.nll] + sum(terms[k] for k in g.kl)).mean()


@pytest.mark.parametrize("name", IMPLEMENTED)
def test_shapes_finite_terms_and_masks_over_exactly_k(name):
    m = _tiny(name, num_slots=4)
    x = torch.rand(2, 3, 16, 16)
    out = m(x)
    assert isinstance(out, ModelOutput)
    for group in model_spec(name).loss_groups:
        assert {LOSS_GROUPS[group].nll, *LOSS_GROUPS[group].kl} <= set(out.terms)
    for v in out.terms.values():
        assert v.shape == (2,) and torch.isfinite(v).all()
    assert out.recon.shape == (2, 3, 16, 16)
    assert out.masks.shape == (2, 4, 1, 16, 16) and out.slot_images.shape == (2, 4, 3, 16, 16)
    torch.testing.assert_close(out.masks.sum(1), torch.ones(2, 1, 16, 16))
    assert out.order.shape == (2, 4) and all(sorted(r) == [0, 1, 2, 3] for r in out.order.tolist())
    if out.seg_masks is not None:
        torch.testing.assert_close(out.seg_masks.sum(1), torch.ones(2, 1, 16, 16))
    assert set(m.elbo_terms(x)) and all(torch.isfinite(v).all() for v in m.elbo_terms(x).values())
    rebuilt = build_model(m.name, **m.options)
    rebuilt.load_state_dict(m.state_dict())


@pytest.mark.parametrize("name", IMPLEMENTED)
@pytest.mark.parametrize("k", [1, 2, 6])
def test_sampling_with_another_k(name, k):
    m = _tiny(name)
    g = torch.Generator().manual_seed(0)
    s = m.sample(3, num_slots=k, generator=g)
    assert isinstance(s, SampleOutput)
    assert s.images.shape == (3, 3, 16, 16) and s.masks.shape == (3, k, 1, 16, 16)
    torch.testing.assert_close(s.masks.sum(1), torch.ones(3, 1, 16, 16))
    assert torch.isfinite(s.images).all() and s.images.min() >= 0 and s.images.max() <= 1
    again = m.sample(3, num_slots=k, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(s.images, again.images)  # a generator makes samples reproducible


@pytest.mark.parametrize("name", IMPLEMENTED)
def test_each_loss_group_trains_only_its_own_parameters(name):
    m = _tiny(name)
    x = torch.rand(2, 3, 16, 16)
    reached: dict[str, set[str]] = {}
    for group in model_spec(name).loss_groups:
        m.zero_grad(set_to_none=True)
        torch.manual_seed(1)
        _group_loss(m(x).terms, group).backward()
        # reached = in the group's graph (IC-SM's colour head gets an exact zero at init: its gate is 0)
        reached[group] = {n for n, p in m.named_parameters() if p.grad is not None}
        assert reached[group], f"{group} reaches no parameter"
    groups = list(reached)
    for i, a in enumerate(groups):
        for b in groups[i + 1:]:
            assert not reached[a] & reached[b], f"{a} and {b} share {sorted(reached[a] & reached[b])[:3]}"
    every = {n for n, _ in m.named_parameters()}
    assert set().union(*reached.values()) == every, sorted(every - set().union(*reached.values()))
    if "sri" in reached:  # L_SRI sees detached slots: nothing of the segregation module
        assert not any(n.startswith("segregation.") for n in reached["sri"])


@pytest.mark.parametrize("name", IMPLEMENTED)
def test_a_short_run_lowers_the_loss_on_a_tiny_batch(name):
    m = _tiny(name, likelihood="gaussian", normalized=False, pixel_std=0.1)  # the demo's likelihood
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0)).round()  # high contrast
    opt = torch.optim.Adam(m.parameters(), lr=2e-3)
    losses = []
    for step in range(120):  # GENESIS's ELU broadcast decoder starts slowly
        torch.manual_seed(step)
        terms = m(x).terms
        loss = sum(_group_loss(terms, g) for g in model_spec(name).loss_groups)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.02 * abs(first), (first, last)


@pytest.mark.parametrize("name", IMPLEMENTED)
def test_every_segregation_module_keeps_the_shared_contract(name):
    """Issue 25: the contract lives in `SegregationModule`, not in prose and getattr probes."""
    from sri.models.segregation import SegregationModule

    model = build_model(name, image_size=16, num_slots=3, slot_dim=16)
    seg = getattr(model, "segregation", model)
    assert isinstance(seg, SegregationModule)
    for attr in ("image_size", "num_slots", "latent_dim"):
        assert hasattr(seg, attr), attr
    overrides = {m for m in ("reconstruct", "generate") if getattr(type(seg), m) is not getattr(SegregationModule, m)}
    assert hasattr(seg, "decoder") or overrides == {"reconstruct", "generate"}
