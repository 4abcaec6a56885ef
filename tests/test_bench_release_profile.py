"""`python -m sri.bench release` (side by side with the authors' release) and `python -m sri.bench profile`."""
from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from sri.bench import release as release_bench
from sri.bench.profile import profile_step

# A stand-in with the release's layout and interfaces: its own `sri` package (which clashes with
# ours), `from sri.utils import ...` inside it, `attrdict`, train.py's loss names and GECO signature.
_FAKE_MODEL = '''
from attrdict import AttrDict
import torch
import torch.nn as nn
from sri.utils import helper

class SRI(nn.Module):
    def __init__(self, K_steps, pixel_bound, feat_dim, semiconv, kernel, pixel_std, dynamic_K,
                 image_likelihood, debug, img_size, scene_latent_dim, scene_encoder_layers):
        super().__init__()
        assert (K_steps, feat_dim, img_size, scene_latent_dim, scene_encoder_layers) == (3, 64, 16, 128, 3)
        assert image_likelihood == "MoG-Normed" and pixel_std == 0.7
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        e = helper(self.conv(x)).flatten(1).sum(1)
        l = AttrDict(genv2_err=e, sri_err=e, kl_l_k=[e.abs(), e.abs()], sri_kl_scene=e.abs(),
                     sri_kl_z_ordered=e.abs(), sri_kl_slot=e.abs())
        return (x, x), l, None, None, None


class GenesisV2(SRI):
    def __init__(self, K, img_size, feat_dim, semiconv, kernel, dynamic_K, debug, pixel_bound, pixel_std,
                 image_likelihood):
        nn.Module.__init__(self)
        assert (K, img_size, feat_dim, pixel_std, image_likelihood) == (3, 16, 64, 0.7, "MoG-Normed")
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.calls = 0
'''
_FAKE_GECO = '''
class GECO:
    def __init__(self, goal, step_size, alpha, beta_init, beta_min, speedup):
        self.beta = beta_init
    def loss(self, err, kld):
        return err + self.beta * kld
'''


def _fake_release(root: Path) -> Path:
    (root / "sri").mkdir(parents=True)
    (root / "sri" / "__init__.py").write_text("")
    (root / "sri" / "utils.py").write_text("def helper(t):\n    return t * 2\n")
    (root / "sri" / "model.py").write_text(textwrap.dedent(_FAKE_MODEL))
    g = root / "third_party" / "genesis_v2"
    g.mkdir(parents=True)
    (root / "third_party" / "__init__.py").write_text("")
    (g / "__init__.py").write_text("")
    (g / "geco.py").write_text(textwrap.dedent(_FAKE_GECO))
    return root


def test_release_is_imported_beside_ours_and_ours_restored(tmp_path):
    import sri.models

    ours = sys.modules["sri"]
    SRI, GECO = release_bench.load_release_sri(_fake_release(tmp_path / "rel"))
    assert SRI.__module__ == "sri.model" and "sri.model" not in sys.modules
    assert sys.modules["sri"] is ours and sys.modules["sri.models"] is sri.models
    assert "third_party" not in sys.modules and str(tmp_path / "rel") not in sys.path
    net = SRI(3, True, 64, True, "gaussian", 0.7, False, "MoG-Normed", False, 16, 128, 3)
    assert net(torch.rand(2, 3, 16, 16))[1].kl_l_k[0].shape == (2,)  # the release's own `sri.utils`, AttrDict


@pytest.mark.parametrize("model", ["sri", "genv2"])
def test_compare_release_alternates_and_reports_ratios(tmp_path, capsys, model):
    rel = _fake_release(tmp_path / "rel")
    res = release_bench.compare_release(rel, model=model, rounds=2, warmup=1, image_size=16, num_slots=3, batch_size=2,
                                        modes=("fp32", "bf16"), tune_allocator=False)
    assert set(res["median_s"]) == {"release", "fp32", "bf16"}
    assert all(len(v) == 2 for v in res["times_s"].values())
    for mode in ("fp32", "bf16"):
        assert res["speedup_vs_release"][mode] == pytest.approx(res["median_s"]["release"] / res["median_s"][mode])
    log = capsys.readouterr().err.splitlines()
    names = [line.split()[3].rstrip(":") for line in log if line.startswith("[release-bench]")]
    assert names == ["release", "fp32", "bf16"] * 3  # A B A B, warm-up round included


def test_release_cli_json_and_bad_dir(tmp_path, capsys):
    rel = _fake_release(tmp_path / "rel")
    from sri.bench import main

    assert main(["release", "--release-dir", str(rel), "--rounds", "1", "--warmup", "0", "--image-size", "16",
                 "--num-slots", "3", "--batch-size", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["benchmark"] == "release" and "cpu" in json.dumps(out["machine"]).lower()
    assert out["speedup_vs_release"]["fp32"] > 0
    with pytest.raises(SystemExit, match="not a checkout of the authors' release"):
        release_bench.load_release_sri(tmp_path)


def test_profile_splits_phases_ops_and_modules():
    res = profile_step("sri", image_size=16, num_slots=3, batch_size=2, steps=1, depth=2, top=5)
    ph = res["phase_s"]
    assert ph["forward"] > 0 and ph["backward"] > 0 and ph["optimizer"] > 0
    assert ph["forward"] + ph["backward"] + ph["optimizer"] <= ph["step"] * 1.001
    assert len(res["top_ops"]) == 5 and res["top_ops"][0]["self_s"] >= res["top_ops"][-1]["self_s"]
    names = {m["module"] for m in res["modules"]}
    assert {"segregation.encoder", "segregation.decoder", "sri_decoder", "scene_encoder"} <= names, names
    # the backward is attributed to modules, and the forward per module fits in the forward phase
    assert sum(m["backward_s"] for m in res["modules"]) > 0.3 * ph["backward"]
    assert sum(m["forward_s"] for m in res["modules"]) <= ph["forward"] * 1.01
    # FLOPs of the step's convolutions over their time; the largest decoder layer timed alone
    conv = res["kernels"]["convolution"]
    assert conv["flops"] > 0 and conv["s"] > 0
    assert conv["gflops_per_s"] == pytest.approx(conv["flops"] / conv["s"] / 1e9)
    assert res["reference_layer"]["slot_images"] == 6 and res["reference_layer"]["gflops_per_s"] > 0


def test_compare_curves_tolerances_on_known_curves():
    from sri.bench.fast_check import KL_REL_TOL, NLL_TOL, compare_curves

    ref = {"nll_seg": [-1.0] * 100, "kl": [100.0] * 100, "seconds": [0.1] * 100}
    close = {
        "nll_seg": [-1.0 + NLL_TOL / 2] * 100,
        "kl": [100.0 * (1 + KL_REL_TOL / 2)] * 100,
        "seconds": [0.1] * 100,
    }
    assert compare_curves(ref, close, 25)["ok"]
    # one window off by more than the tolerance fails, and the deviation names the window's size
    off = {k: list(v) for k, v in close.items()}
    off["nll_seg"][50:75] = [-1.0 + 3 * NLL_TOL] * 25
    res = compare_curves(ref, off, 25)
    assert not res["ok"] and res["max_dev"]["nll_seg"]["value"] == pytest.approx(3 * NLL_TOL)
    off = {k: list(v) for k, v in close.items()}
    off["kl"][:25] = [100.0 * (1 + 2 * KL_REL_TOL)] * 25
    assert not compare_curves(ref, off, 25)["ok"]


def test_fast_check_runs_three_curves_and_writes_them(tmp_path):
    from sri.bench.fast_check import fast_check

    res = fast_check(
        "genv2",
        steps=30,
        window=10,
        image_size=16,
        num_slots=3,
        slot_dim=8,
        batch_size=4,
        num_scenes=64,
        out=tmp_path,
    )
    assert set(res["s_per_step"]) == {"fp32", "bf16", "fp32_other_order"}
    windows = res["comparison"]["windows"]["nll_seg"]
    assert len(windows["ref"]) == len(windows["test"]) == 3
    assert windows["ref"] != windows["test"]  # bf16 changes the numbers...
    assert abs(windows["ref"][0] - windows["test"][0]) < 0.5  # ...but not the scale
    saved = json.loads((tmp_path / "fast_check.json").read_text())
    assert len(saved["curves"]["fp32"]["kl"]) == 30 and (tmp_path / "fast_check.png").stat().st_size > 1000


def test_train_step_bench_fast_selects_the_fast_mode(capsys):
    from sri.bench import main
    from sri.train.runtime import FAST_MODE

    assert (
        main(
            [
                "train-step",
                "--model",
                "genv2",
                "--image-size",
                "16",
                "--num-slots",
                "3",
                "--batch-size",
                "2",
                "--slot-dim",
                "16",
                "--steps",
                "1",
                "--warmup",
                "0",
                "--fast",
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["options"]["amp"] == FAST_MODE["amp"] and out["options"]["compile"] == FAST_MODE["compile"]
    assert out["median_s"] > 0


def test_fast_mode_changes_no_numerics_unless_validated():
    """Without a numerics-changing setting the fast mode must train exactly as fp32 does."""
    from sri.bench.train_step import make_step
    from sri.train.runtime import FAST_MODE

    if FAST_MODE["amp"] is not None:
        pytest.skip("the fast mode changes numerics; test_fast_mode_matches_fp32_over_2000_steps covers it")
    cfg = dict(model="genv2", likelihood="gaussian", image_size=16, num_slots=3, batch_size=2, slot_dim=16)
    ref, fast = (
        make_step(**cfg),
        make_step(**cfg, amp_dtype=FAST_MODE["amp"], compile=bool(FAST_MODE["compile"])),
    )
    for _ in range(3):
        torch.manual_seed(1)
        a = ref.run()
        torch.manual_seed(1)
        assert fast.run() == a


@pytest.mark.slow
def test_fast_mode_matches_fp32_over_2000_steps(tmp_path):
    """The issue's acceptance check of a numerics-changing fast mode: 2,000 steps of SRI at a small config."""
    from sri.bench.fast_check import fast_check
    from sri.train.runtime import FAST_MODE

    if FAST_MODE["amp"] is None:
        pytest.skip("the fast mode is fp32 (bf16 failed this check, docs/PERFORMANCE.md)")
    res = fast_check("sri", amp=str(FAST_MODE["amp"]), steps=2000, out=tmp_path)
    assert res["comparison"]["ok"], res["comparison"]["max_dev"]
