"""The demo's closing summary reports what the models learned beside the data's values."""
from __future__ import annotations

import json

import pytest
import torch

from sri.demo import cli as demo
from sri.models import build_model


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    opts = dict(image_size=16, num_slots=3, slot_dim=8, relation_layers=1, scene_dim=8)
    return {"sri_g": build_model("sri", **opts).eval(),
            "genv2_g": build_model("genv2", **{k: v for k, v in opts.items()}).eval()}


def test_summary_has_every_metric_for_both_models_and_the_data(models, capsys):
    summary = demo.evaluate_models(models, eval_num=12, num_samples=6, seed=0)
    for row in ("sri_g", "genv2_g"):
        r = summary["models"][row]
        for key in ("ari_fg", "mse", "mse_baseline", "mse_ratio", "kl", "sample_s_acc",
                    "sample_visible_objects", "sample_coloured_objects", "sample_image_objects"):
            assert isinstance(r[key], float), key
        r["step"] = 7
    assert "ari_fg_ordered" in summary["models"]["sri_g"]       # SRI: ordered masks too
    assert "ari_fg_ordered" not in summary["models"]["genv2_g"]
    assert set(summary["data"]) == {"s_acc", "visible_objects", "coloured_objects", "image_objects"}
    assert summary["data"]["visible_objects"] > 1
    json.dumps(summary)  # what the demo writes to demo_summary.json
    demo.print_summary(summary)
    out = capsys.readouterr().out
    for text in ("ARI-FG", "ordered", "MSE/mean", "S-Acc", "objects", "SRI-G", "GENv2-G", "data",
                 "ARI-FG >= 0.75", "MSE <= 0.25"):
        assert text in out, text
    data_line = [ln for ln in out.splitlines() if ln.strip().startswith("data")][0]
    assert f"{summary['data']['visible_objects']:.2f}" in data_line
    assert f"{summary['data']['image_objects']:.2f}" in data_line and "img obj" in out


def test_demo_figure_is_written(models, tmp_path):
    path = demo.demo_figure(models, {"sri_g": 12, "genv2_g": 34}, tmp_path / "f.png", n=3,
                            recipe="preset demo: test recipe")
    assert path.stat().st_size > 1000


def test_shipped_checkpoint_lookup(tmp_path):
    assert demo.shipped_checkpoint("sri_g", tmp_path) is None
    (tmp_path / "sri_g.pt").write_bytes(b"x")
    assert demo.shipped_checkpoint("sri_g", tmp_path) == tmp_path / "sri_g.pt"
