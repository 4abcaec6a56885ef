"""`sri.evaluate`: end to end on a tiny checkpoint with a small FID feature extractor and on-the-fly data."""
import json
import math

import pytest
import torch
from torch import nn

from sri.evaluate import evaluate, main, parse_metrics
from sri.metrics import fid as F

SIZES = ["--num-fid", "24", "--num-ari", "10", "--num-bpd", "10", "--num-sacc", "12", "--batch-size", "8"]


@pytest.fixture(scope="module")
def extractor_module():
    """Module name for `--import`: registers the "tiny" feature extractor (tests/tiny_fid.py)."""
    return "tiny_fid"


@pytest.fixture(scope="module")
def tiny_model():
    from sri.models import build_model

    torch.manual_seed(0)
    return build_model("sri", image_size=32, num_slots=3, slot_dim=16, scene_dim=16, relation_layers=1)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_model):
    from sri.checkpoint import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, {"model_name": tiny_model.name, "model_options": tiny_model.options,
                           "model_state": tiny_model.state_dict(), "step": 7,
                           "config": {"dataset": "blocks"}})
    return path


def test_cli_end_to_end(checkpoint, extractor_module, tmp_path, capsys):
    out = tmp_path / "results.json"
    argv = [str(checkpoint), "--metrics", "fid,ari_fg,nelbo_bpd,sri_loss_bpd,s_acc", "--device", "cpu",
            "--feature-extractor", "tiny", "--import", extractor_module, "--fid-cache",
            str(tmp_path / "fidcache"), "--out", str(out), "--no-progress", *SIZES]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    rec = json.loads(out.read_text())
    m = rec["metrics"]
    assert list(m) == ["fid", "ari_fg", "nelbo_bpd", "sri_loss_bpd", "s_acc"]
    assert all(math.isfinite(v) for v in m.values()), m
    assert m["fid"] >= 0 and -1 <= m["ari_fg"] <= 1 and 0 <= m["s_acc"] <= 1
    assert 0 < m["nelbo_bpd"] <= m["sri_loss_bpd"]  # L_SRI adds the (non-negative) crossOrderKL
    assert rec["dataset"] == "blocks" and rec["step"] == 7 and rec["model"] == "sri"
    assert "fid:" in printed and "s_acc:" in printed
    cached = list((tmp_path / "fidcache").glob("blocks-test-tiny-24-*.npz"))
    assert len(cached) == 1  # the real statistics were cached ...
    assert main(argv) == 0
    assert json.loads(out.read_text())["metrics"] == m  # ... and a rerun is deterministic


@pytest.mark.parametrize("name", ["sri", "genv2"])
def test_bpd_matches_hand_computation(name):
    from sri.data import build_dataset
    from sri.models import build_model

    torch.manual_seed(0)
    model = build_model(name, image_size=32, num_slots=3, slot_dim=16, scene_dim=16, relation_layers=1)
    ds = build_dataset("blocks", None, "val", num=12, image_size=32)
    got = evaluate(model, dataset=ds, metrics="nelbo_bpd,sri_loss_bpd", batch_size=5, num_bpd=12,
                   progress=False, seed=3)
    x = torch.stack([ds[i]["image"] for i in range(12)])
    model.eval()
    with torch.random.fork_rng():
        torch.manual_seed(3)
        terms = [model.elbo_terms(x[i:i + 5], normalized=True) for i in range(0, 12, 5)]
    t = {k: torch.cat([d[k] for d in terms]).double() for k in terms[0]}
    dims = 3 * 32 * 32
    if name == "sri":  # true ELBO without the auxiliary crossOrderKL; L_SRI with it (Table 3)
        nelbo = t["nll"] + t["scene_kl"] + t["slot_kl"]
        loss = nelbo + t["cross_order_kl"]
    else:
        nelbo = loss = t["nll"] + t["kl"]
    assert got["nelbo_bpd"] == pytest.approx(nelbo.mean().item() / (math.log(2) * dims), rel=1e-6)
    assert got["sri_loss_bpd"] == pytest.approx(loss.mean().item() / (math.log(2) * dims), rel=1e-6)


def test_evaluate_leaves_caller_state_alone(tiny_model):
    from sri.data import build_dataset

    ds = build_dataset("blocks", None, "test", num=6, image_size=32)
    tiny_model.train()
    torch.manual_seed(123)
    expect = torch.rand(3)
    torch.manual_seed(123)
    evaluate(tiny_model, dataset=ds, metrics=["ari_fg", "s_acc"], num_ari=6, num_sacc=4, batch_size=4,
             progress=False)
    assert torch.equal(torch.rand(3), expect)
    assert tiny_model.training


class EchoModel(nn.Module):
    """A 'model' whose samples are the first test images with their true masks as slot masks."""

    def __init__(self, ds, K=8):
        super().__init__()
        self.ds, self.K, self.i = ds, K, 0
        self.w = nn.Parameter(torch.zeros(1))
        self.options = {"image_size": 32}

    def sample(self, n, temperature=1.0, num_slots=None, generator=None):
        from sri.models import SampleOutput

        items = [self.ds[(self.i + j) % len(self.ds)] for j in range(n)]
        self.i += n
        images = torch.stack([it["image"] for it in items])
        masks = nn.functional.one_hot(torch.stack([it["mask"] for it in items]), self.K)
        masks = masks.permute(0, 3, 1, 2).unsqueeze(2).float()
        return SampleOutput(images=images, masks=masks, slot_images=images[:, None].expand(-1, self.K, -1, -1, -1))


def test_fid_zero_for_identical_sets_and_sacc_on_true_masks(extractor_module, tmp_path):
    import importlib

    from sri.data import build_dataset

    importlib.import_module(extractor_module)
    ds = build_dataset("blocks", None, "test", num=40, image_size=32)
    res = evaluate(EchoModel(ds), dataset={"test": ds}, metrics="fid,s_acc", num_fid=40, num_sacc=40,
                   batch_size=16, feature_extractor="tiny", progress=False)
    assert abs(res["fid"]) < 1e-6
    assert res["s_acc"] == 1.0  # true blocks masks are plausible stacks


def test_missing_inception_weights_cli(checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(F.WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    rc = main([str(checkpoint), "--metrics", "fid", "--device", "cpu", "--no-progress", *SIZES])
    err = capsys.readouterr().err
    assert rc == 2
    assert F.INCEPTION_WEIGHTS_FILE in err and F.INCEPTION_WEIGHTS_URL in err and "--inception-weights" in err


def test_bad_arguments(checkpoint, capsys):
    with pytest.raises(ValueError, match="unknown metric"):
        parse_metrics("fid,acc")
    assert main([str(checkpoint), "--metrics", "nope"]) == 2
    assert main([str(checkpoint) + ".missing", "--metrics", "ari_fg", "--device", "cpu"]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    with pytest.raises(TypeError, match="unknown option"):
        evaluate(nn.Linear(1, 1), dataset="blocks", bogus=1)


def test_cli_missing_real_dataset(checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SRI_DATA", str(tmp_path / "nodata"))
    rc = main([str(checkpoint), "--metrics", "ari_fg", "--dataset", "clevr6", "--device", "cpu", "--no-progress"])
    assert rc == 2 and "clevr6" in capsys.readouterr().err
