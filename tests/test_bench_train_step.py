"""`python -m sri.bench train-step --json`: one JSON object comparable across machines."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sri.bench.train_step import step_flops
from sri.models import build_model
from sri.train.step import make_gecos

ROOT = Path(__file__).resolve().parents[1]


def test_json_output_has_timings_flops_machine_and_options():
    res = subprocess.run([sys.executable, "-m", "sri.bench", "train-step", "--model", "gen", "--image-size",
                          "16", "--num-slots", "3", "--batch-size", "2", "--steps", "2", "--warmup", "0",
                          "--threads", "1", "--json"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout)
    for key in ("median_s", "best_s", "steps_per_s", "peak_mib", "flops_per_step", "gflops_per_s"):
        assert isinstance(out[key], float) and out[key] > 0, key
    assert out["best_s"] <= out["median_s"]
    assert out["gflops_per_s"] == pytest.approx(out["flops_per_step"] / out["median_s"] / 1e9)
    assert {"cpu", "threads", "torch"} <= set(out["machine"])
    assert out["options"]["model"] == "gen" and out["options"]["batch_size"] == 2


def test_step_flops_scales_with_the_batch():
    torch.manual_seed(0)
    m = build_model("genv2", image_size=16, num_slots=3, slot_dim=8)
    opt = torch.optim.Adam(m.parameters())
    g = make_gecos(m, goal_per_element=0.5)
    f2 = step_flops(m, torch.rand(2, 3, 16, 16), opt, g)
    f4 = step_flops(m, torch.rand(4, 3, 16, 16), opt, g)
    assert f2 > 0 and f4 == pytest.approx(2 * f2, rel=0.05)


@pytest.mark.slow
def test_gpu_check_runs_its_steps_on_the_cpu(tmp_path):
    """Slow (~1-2 min): scripts/gpu_check.sh --cpu-dry-run goes through every step and writes its table."""
    res = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--cpu-dry-run", "--json-out",
                          str(tmp_path / "gc.json")], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    rows = json.loads((tmp_path / "gc.json").read_text())["rows"]
    names = [r["step"] for r in rows]
    assert names[0] == "install" and "train-step sri bf16" in names and "data pipeline" in names
    assert all(r["ok"] for r in rows)
    assert "step" in res.stdout and "status" in res.stdout  # the table


def test_model_options_change_the_measured_model_and_bad_ones_are_named():
    """`train-step --option decoder_width=32`: the narrower EMORL decoder does fewer FLOPs per step."""
    from sri.bench.train_step import _model_options, make_step

    opts = _model_options("emorl", ["decoder_width=16", "refinement_steps=1"])
    assert opts == {"decoder_width": 16, "refinement_steps": 1}
    flops = {}
    for width in (64, 16):
        st = make_step("emorl", "gaussian", 16, 3, 2, options={"decoder_width": width, "refinement_steps": 1},
                       slot_dim=8)
        flops[width] = step_flops(st.net, st.x, st.opt, st.gecos)
    assert flops[16] < 0.5 * flops[64]
    with pytest.raises(SystemExit, match="not an option of model 'genv2'"):
        _model_options("genv2", ["decoder_width=32"])
    with pytest.raises(SystemExit, match="expects KEY=VALUE"):
        _model_options("emorl", ["decoder_width"])
