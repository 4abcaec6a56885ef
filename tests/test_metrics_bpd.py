"""bits-per-dim conversion and the -ELBO / L_SRI term sums."""
import math

import pytest
import torch

from sri.metrics import bits_per_dim, nelbo_nats, sri_loss_nats


def test_bits_per_dim_by_hand():
    H = W = 64
    d = 3 * H * W
    assert bits_per_dim(d * math.log(2), d) == pytest.approx(1.0)
    assert bits_per_dim(1000.0, d) == pytest.approx(1000.0 / (0.6931471805599453 * 12288))
    # per-dimension Gaussian NLL in bits equals the bpd of the summed image NLL
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    lp = torch.distributions.Normal(0.5, 0.7).log_prob(x)
    nats = -lp.flatten(1).sum(1)
    per_dim_bits = (-lp / math.log(2)).flatten(1).mean(1)
    torch.testing.assert_close(bits_per_dim(nats, 3 * 8 * 8), per_dim_bits)
    with pytest.raises(ValueError):
        bits_per_dim(1.0, 0)


def test_term_sums():
    t = {k: torch.tensor([float(v)]) for k, v in
         dict(nll=100, scene_kl=3, slot_kl=5, cross_order_kl=7).items()}
    assert nelbo_nats(t).item() == 108  # the true ELBO omits the auxiliary crossOrderKL
    assert sri_loss_nats(t).item() == 115  # L_SRI (Table 3): all three KLs
    g = {"nll": torch.tensor([10.0, 20.0]), "kl": torch.tensor([1.0, 2.0])}
    assert nelbo_nats(g).tolist() == [11.0, 22.0] == sri_loss_nats(g).tolist()
    with pytest.raises(KeyError, match="nll"):
        nelbo_nats({"kl": torch.zeros(1)})
