"""Record golden outputs of the models at a small size: `python tests/golden/make_golden.py`.

Written once before the models were restructured as compositions (issue 11); the test
tests/test_models_golden.py requires the restructured models to reproduce them exactly from the
same weights (stored with the old parameter names) and the same random numbers.
"""
from __future__ import annotations

from pathlib import Path

import torch

from sri.models import build_model

OUT = Path(__file__).with_name("models_golden.pt")

# name -> (model name, options); small enough to run in a second, varied enough to cover each path
CASES = {
    "sri_mog": ("sri", dict(image_size=16, num_slots=3, slot_dim=8, scene_dim=8, relation_layers=1)),
    "sri_g_shared_hungarian": ("sri", dict(image_size=16, num_slots=3, slot_dim=8, scene_dim=8,
                                           relation_layers=1, likelihood="gaussian", normalized=False,
                                           pixel_std=0.1, shared_decoder=True, matching="hungarian")),
    "sri_no_scene": ("sri", dict(image_size=16, num_slots=3, slot_dim=8, scene_dim=8, relation_layers=1,
                                 scene_variable=False, cross_order_kl=False)),
    "genv2": ("genv2", dict(image_size=16, num_slots=3, slot_dim=8)),
    "genv2_scene": ("genv2", dict(image_size=16, num_slots=3, slot_dim=8, scene_dim=8,
                                  relation_layers=1, scene_variable=True, likelihood="gaussian",
                                  normalized=False, pixel_std=0.1)),
}
GRAD_PARAMS = 4  # gradients of the first, last and two middle parameters (by state-dict order)


def run_case(model: torch.nn.Module, x: torch.Tensor,
             grad_names: list[str] | None = None) -> dict[str, torch.Tensor]:
    """Loss terms, gradients (of `grad_names`, else of four parameters), ELBO terms and samples."""
    out: dict[str, torch.Tensor] = {}
    torch.manual_seed(1)
    res = model(x)
    for k, v in res.terms.items():
        out[f"term.{k}"] = v.detach().clone()
    out["recon"] = res.recon.detach().clone()
    out["masks"] = res.masks.detach().clone()
    out["order"] = res.order.clone()
    sum(v.sum() for v in res.terms.values()).backward()
    params = dict(model.named_parameters())
    if grad_names is None:
        named = [n for n, p in params.items() if p.grad is not None]
        grad_names = [named[i] for i in sorted({0, len(named) // 3, 2 * len(named) // 3, len(named) - 1})]
    for n in grad_names:
        out[f"grad.{n}"] = params[n].grad.detach().clone()
    torch.manual_seed(2)
    for k, v in model.elbo_terms(x).items():
        out[f"elbo.{k}"] = v.clone()
    g = torch.Generator().manual_seed(3)
    s = model.sample(2, num_slots=4, generator=g)
    out["sample.images"] = s.images.clone()
    out["sample.masks"] = s.masks.clone()
    return out


def main() -> None:
    golden: dict[str, dict] = {}
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    for case, (name, opts) in CASES.items():
        torch.manual_seed(0)
        model = build_model(name, **opts)
        state = {k: v.clone() for k, v in model.state_dict().items()}
        golden[case] = {"name": name, "options": opts, "state": state, "outputs": run_case(model, x)}
    torch.save({"x": x, "cases": golden}, OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
