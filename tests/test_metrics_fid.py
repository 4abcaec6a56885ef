"""FID path without torchvision: shim, small registered extractor, Fréchet distance vs scipy, weights errors."""
import subprocess
import sys

import numpy as np
import pytest
import scipy.linalg
import torch
from tiny_fid import NAME as TINY  # noqa: E402
from tiny_fid import TinyExtractor
from torch import nn

from sri.metrics import fid as F


@pytest.fixture(scope="module")
def tiny():
    return TINY


def scipy_fid(mu1, s1, mu2, s2):
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    d = mu1 - mu2
    return d @ d + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)


def test_frechet_distance_matches_scipy():
    rng = np.random.default_rng(0)
    for d in (1, 5, 32):
        a = rng.normal(size=(200, d)) @ rng.normal(size=(d, d))
        b = rng.normal(size=(300, d)) @ rng.normal(size=(d, d)) + rng.normal(size=d)
        sa, sb = F.feature_statistics(a), F.feature_statistics(b)
        assert F.frechet_distance(sa.mu, sa.sigma, sb.mu, sb.sigma) == pytest.approx(
            scipy_fid(sa.mu, sa.sigma, sb.mu, sb.sigma), rel=1e-7, abs=1e-8)
        assert F.fid_from_stats(sa, sa) == pytest.approx(0.0, abs=1e-7)
    # closed form for diagonal covariances: sum (sqrt(a) - sqrt(b))^2 + |dmu|^2
    va, vb = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    mu = rng.normal(size=6)
    expect = ((np.sqrt(va) - np.sqrt(vb)) ** 2).sum() + mu @ mu
    assert F.frechet_distance(mu, np.diag(va), np.zeros(6), np.diag(vb)) == pytest.approx(expect, rel=1e-10)


def test_feature_statistics_are_numpy_cov():
    x = np.random.default_rng(1).normal(size=(50, 4))
    s = F.feature_statistics(torch.as_tensor(x))
    np.testing.assert_allclose(s.mu, x.mean(0))
    np.testing.assert_allclose(s.sigma, np.cov(x, rowvar=False))
    assert s.count == 50


def test_quantize_uint8():
    x = torch.tensor([-0.2, 0.0, 0.5 / 255, 0.4 / 255, 1 / 255, 0.5, 1.0, 1.3])
    assert F.quantize_uint8(x).tolist() == [0, 0, 1, 0, 1, 128, 255, 255]
    u = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    assert torch.equal(F.quantize_uint8(u.float() / 255), u)  # data stored as uint8 round-trips
    assert F.quantize_uint8(u) is u


def test_fid_with_small_registered_extractor(tiny):
    g = torch.Generator().manual_seed(0)
    real = torch.rand(256, 3, 16, 16, generator=g) * 0.6
    other = torch.rand(256, 3, 16, 16, generator=g) * 0.6  # same distribution, other draw
    shifted = (real + 0.3).clamp(0, 1)
    same = F.fid_between(real, real.clone(), feature_extractor=tiny, batch_size=100)
    near = F.fid_between(real, other, feature_extractor=tiny, batch_size=100)
    far = F.fid_between(real, shifted, feature_extractor=tiny, batch_size=100)
    assert abs(same) < 1e-6
    assert near < far and far > 10 * near, (same, near, far)
    # uint8 input gives the same result as the same images as floats
    assert F.fid_between(F.quantize_uint8(real), shifted, feature_extractor=tiny) == pytest.approx(far)


def test_registry_errors(tiny):
    with pytest.raises(KeyError, match="unknown feature extractor 'nope'"):
        F.build_feature_extractor("nope")
    with pytest.raises(ValueError, match="already registered"):
        F.register_feature_extractor(tiny, TinyExtractor)
    with pytest.raises(TypeError, match="FeatureExtractorBase"):
        F.register_feature_extractor("not-an-extractor", nn.Linear)


def test_missing_weights_message(tmp_path, monkeypatch):
    monkeypatch.delenv(F.WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(F.InceptionWeightsMissing) as e:
        F.build_feature_extractor(F.INCEPTION_NAME)
    msg = str(e.value)
    assert F.INCEPTION_WEIGHTS_FILE in msg and F.INCEPTION_WEIGHTS_URL in msg
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in msg and F.WEIGHTS_ENV in msg
    with pytest.raises(F.InceptionWeightsMissing, match="given path"):
        F.resolve_inception_weights(tmp_path / "missing.pth")
    monkeypatch.setenv(F.WEIGHTS_ENV, str(tmp_path / "env.pth"))
    with pytest.raises(F.InceptionWeightsMissing, match="SRI_INCEPTION_WEIGHTS"):
        F.resolve_inception_weights()


@pytest.fixture(scope="module")
def fake_inception_weights(tmp_path_factory):
    """A state dict with Inception's shapes (random values): the real weights cannot be downloaded."""
    from tiny_fid import write_fake_inception_weights

    path = tmp_path_factory.mktemp("w") / F.INCEPTION_WEIGHTS_FILE
    write_fake_inception_weights(path, tmp_path_factory.mktemp("scratch"))
    return path


def test_inception_extractor_runs_without_torchvision(fake_inception_weights, monkeypatch):
    monkeypatch.setenv(F.WEIGHTS_ENV, str(fake_inception_weights))
    ext = F.build_feature_extractor(F.INCEPTION_NAME)
    assert F.torch_fidelity_api().full or "torchvision" in F.torch_fidelity_api().reason
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    feats = F.extract_features(ext, [x])
    assert feats.shape == (2, 2048) and feats.dtype == torch.float64 and torch.isfinite(feats).all()


def test_shim_in_fresh_interpreter_without_torchvision():
    # sys.modules[name] = None makes any import of torchvision fail, as on a machine without it.
    code = (
        "import sys\n"
        "sys.modules['torchvision'] = None\n"
        "from sri.metrics.fid import torch_fidelity_api, build_feature_extractor\n"
        "api = torch_fidelity_api()\n"
        "assert not api.full and 'torchvision' in api.reason, api\n"
        "assert 'inception-v3-compat' in api.registry\n"
        "import torch_fidelity\n"
        "assert torch_fidelity.register_feature_extractor is api.register_feature_extractor\n"
        "try:\n"
        "    torch_fidelity.calculate_metrics\n"
        "except AttributeError as e:\n"
        "    assert 'torchvision' in str(e), e\n"
        "else:\n"
        "    raise SystemExit('shim exposed calculate_metrics')\n"
        "try:\n"
        "    build_feature_extractor('clip-vit-b-32')\n"
        "except KeyError as e:\n"
        "    assert 'torchvision' in str(e), e\n"
        "else:\n"
        "    raise SystemExit('shim built clip-vit-b-32 without torchvision')\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_stats_cache(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return F.feature_statistics(np.random.default_rng(0).normal(size=(10, 3)))

    key = {"dataset": "blocks", "split": "test", "feature_extractor": "tiny", "count": 10}
    a, hit_a = F.cached_stats(key, compute, tmp_path)
    b, hit_b = F.cached_stats(key, compute, tmp_path)
    c, hit_c = F.cached_stats({**key, "count": 11}, compute, tmp_path)
    assert (hit_a, hit_b, hit_c) == (False, True, False) and len(calls) == 2
    np.testing.assert_array_equal(a.sigma, b.sigma)
    assert b.count == 10


def test_extractor_fingerprint_tells_extractors_apart(tiny):
    """Cached real statistics are keyed by the extractor's features, not only by its name."""
    images = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    a = F.build_feature_extractor(tiny)
    b = F.build_feature_extractor(tiny)
    assert F.extractor_fingerprint(a, images) == F.extractor_fingerprint(b, images)
    with torch.no_grad():
        b.conv.weight.mul_(2.0)
    assert F.extractor_fingerprint(a, images) != F.extractor_fingerprint(b, images)
