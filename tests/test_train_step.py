"""train_step / make_gecos: loss composition, GECO updates, non-finite guard, learning."""
import math

import pytest
import torch

from sri.models import build_model
from sri.train import make_gecos, train_step

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(name="sri", **kw):
    torch.manual_seed(0)
    return build_model(name, image_size=16, num_slots=3, **kw)


def test_make_gecos_goal_and_step():
    m = tiny()
    g = make_gecos(m, goal_per_element=0.5655, geco_lr=1e-6, speedup=10.0)
    assert set(g) == {"seg", "sri"}
    assert g["seg"].goal == pytest.approx(0.5655 * 3 * 16 * 16)
    assert g["sri"].step_size == pytest.approx(1e-6 * 64 ** 2 / 16 ** 2)
    assert g["seg"].beta == 1.0 and g["sri"].speedup == 10.0
    assert set(make_gecos(tiny("genv2"), goal_per_element=0.5)) == {"seg"}


def test_train_step_loss_is_two_geco_objectives():
    m = tiny()
    opt = torch.optim.SGD(m.parameters(), lr=0.0)
    gecos = make_gecos(m, goal_per_element=0.5655)
    gecos["seg"].beta, gecos["sri"].beta = 0.5, 2.0
    x = torch.rand(2, 3, 16, 16)
    torch.manual_seed(7)
    with torch.no_grad():
        ref = m(x).terms
    torch.manual_seed(7)
    stats = train_step(m, {"image": x}, opt, gecos)
    seg = ref["seg_nll"].mean() + 0.5 * ref["seg_kl"].mean()
    sri = ref["sri_nll"].mean() + 2.0 * (ref["scene_kl"] + ref["slot_kl"] + ref["cross_order_kl"]).mean()
    assert stats["loss"] == pytest.approx(float((seg + sri).detach()), rel=1e-5)
    assert stats["beta_seg"] == 0.5 and stats["beta_sri"] == 2.0 and stats["finite"] == 1.0
    for k in ref:
        assert stats[k] == pytest.approx(float(ref[k].mean()), rel=1e-5)
    # GECO advanced once with the batch-mean NLLs
    assert gecos["seg"].err_ema == pytest.approx(float(ref["seg_nll"].mean()), rel=1e-5)
    assert gecos["sri"].err_ema == pytest.approx(float(ref["sri_nll"].mean()), rel=1e-5)
    c = gecos["seg"].goal - gecos["seg"].err_ema
    assert gecos["seg"].beta == pytest.approx(0.5 * math.exp(gecos["seg"].step_size * c * (10 if c > 0 else 1)))


def test_nonfinite_loss_skips_step_and_geco():
    m = tiny()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    gecos = make_gecos(m, goal_per_element=0.5655)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    x = torch.rand(2, 3, 16, 16)
    x[0, 0, 0, 0] = float("nan")
    stats = train_step(m, x, opt, gecos)
    assert stats["finite"] == 0.0
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert gecos["seg"].err_ema is None and gecos["sri"].err_ema is None
    assert gecos["seg"].beta == 1.0 and not opt.state


def test_bad_batch():
    m = tiny()
    opt = torch.optim.Adam(m.parameters())
    with pytest.raises(TypeError, match="uint8"):
        train_step(m, torch.zeros(2, 3, 16, 16, dtype=torch.uint8), opt, make_gecos(m, goal_per_element=0.5))


@pytest.mark.parametrize("name", ["sri", "genv2"])
def test_fifty_steps_lower_the_loss(name):
    m = tiny(name)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    gecos = make_gecos(m, goal_per_element=0.5655)
    g = torch.Generator().manual_seed(0)
    # two coloured squares on a dark background
    x = torch.full((4, 3, 16, 16), 0.1)
    x[:, 0, 2:7, 2:7] = 0.9
    x[:, 2, 9:14, 8:13] = 0.8
    x = (x + 0.02 * torch.rand(x.shape, generator=g)).clamp(0, 1)
    losses = [train_step(m, {"image": x}, opt, gecos)["loss"] for _ in range(50)]
    assert all(math.isfinite(v) for v in losses)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.05 * abs(first), (first, last)


def test_bf16_autocast_step_is_finite():
    m = tiny()
    opt = torch.optim.Adam(m.parameters(), lr=1e-4)
    stats = train_step(m, torch.rand(2, 3, 16, 16), opt, make_gecos(m, goal_per_element=0.5655),
                       amp_dtype=torch.bfloat16, grad_clip=5.0)
    assert stats["finite"] == 1.0 and all(math.isfinite(v) for v in stats.values())


def test_train_step_benchmark_cli_smoke(capsys):
    from sri.bench.train_step import main

    assert main(["--model", "genv2", "--image-size", "16", "--num-slots", "2", "--batch-size", "2",
                 "--steps", "1", "--warmup", "0", "--device", "cpu", "--threads", "1",
                 "--no-tune-allocator"]) == 0
    out = capsys.readouterr().out
    assert "s/step" in out and "steps/s" in out and "peak RSS" in out
