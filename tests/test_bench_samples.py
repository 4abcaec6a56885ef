"""`python -m sri.bench samples CHECKPOINT`: end to end on a tiny untrained 32x32 model."""
from __future__ import annotations

import json
import math

import pytest
from test_report_util import tiny_model

from sri.bench.samples import main as samples_main
from sri.checkpoint import save_checkpoint


def _ckpt(path, dataset="blocks"):
    model = tiny_model("genv2")
    save_checkpoint(path, {"model_name": model.name, "model_options": model.options, "step": 7,
                           "model_state": model.state_dict(),
                           "config": {"dataset": dataset, "data_options": {"num": 50, "object_scale": 1.6}}})
    return path


def test_samples_command_writes_figures_and_a_sheet(tmp_path, capsys):
    ck = _ckpt(tmp_path / "m.pt")
    assert samples_main([str(ck), "--num", "24", "--out", str(tmp_path / "out")]) == 0
    res = json.loads((tmp_path / "out" / "samples.json").read_text())
    assert res["step"] == 7 and res["num"] == 24 and "commit" in res
    assert res["judge"]["method"] in ("learned", "rules")  # which judge gave sample_s_acc
    for key in ("sample_s_acc", "sample_visible_objects", "sample_coloured_objects", "order_consistency"):
        assert 0 <= res[key] <= 64, key
    assert math.isfinite(res["scene_fd"]) and res["scene_fd"] > 0
    ref = res["data_reference"]
    assert ref["s_acc"] > 0.9 and ref["coloured_objects"] == ref["visible_objects"] > 1  # real scenes
    assert (tmp_path / "out" / "samples.png").stat().st_size > 1000
    assert "coloured objects" in capsys.readouterr().out


def test_samples_command_refuses_other_datasets_and_bad_options(tmp_path):
    ck = _ckpt(tmp_path / "m.pt", dataset="clevr6")
    with pytest.raises(SystemExit, match="trained on 'clevr6'"):
        samples_main([str(ck), "--num", "4", "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit, match="--num must be"):
        samples_main([str(ck), "--num", "0"])
