"""The learning check (`python -m sri.bench learn`): curves are written, and GENv2 learns."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sri.bench.learn import CurveTrainer, learn, learning_config, main, row_for_model
from sri.metrics.learning import reconstruction_metrics
from sri.models import build_model


def test_row_for_model_prefers_table2_mog_and_fails_clearly():
    assert row_for_model("sri") == (2, "sri_mog")
    assert row_for_model("genv2") == (2, "genv2_mog")
    with pytest.raises(ValueError, match="no table row uses model 'nope'"):
        row_for_model("nope")


def test_overrides_reach_the_config_and_typos_fail():
    cfg = learning_config("genv2", preset="smoke", steps=5, minutes=0,
                          overrides={"lr": 3e-4, "model_options.pixel_std": 0.2})
    assert cfg["lr"] == 3e-4 and cfg["model_options"]["pixel_std"] == 0.2 and cfg["steps"] == 5
    with pytest.raises(ValueError, match="unknown option 'lrr'"):
        learning_config("genv2", preset="smoke", steps=5, overrides={"lrr": 1})


def test_learn_writes_curve_json_and_png(tmp_path):
    assert main(["--model", "sri", "--preset", "smoke", "--steps", "4", "--minutes", "0",
                 "--eval-every", "2", "--eval-num", "8", "--num-samples", "4", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "curve.json").read_text())
    assert [p["step"] for p in res["points"]] == [2, 4]
    for key in ("ari_fg", "ari_fg_ordered", "mse_ratio", "kl", "wall_s"):
        assert key in res["points"][-1], key
    assert {"sample_s_acc", "sample_visible_objects"} <= set(res["final"])
    assert res["command"].startswith("python -m sri.bench learn --model sri")
    assert res["machine"]["torch"] == torch.__version__
    assert (tmp_path / "curve.png").stat().st_size > 5000


def _untrained(model: str, row: str, tmp_path, preset: str = "demo", overrides: dict | None = None) -> dict:
    """The learning metrics of `model` (Table 2 `row` under `preset`) untrained, on the 320 held-out scenes."""
    cfg = learning_config(model, preset=preset, steps=1, minutes=0, table=2, row=row, run_dir=tmp_path / "untrained",
                          overrides=overrides)
    torch.manual_seed(0)
    untrained = build_model(cfg["model"], **cfg["model_options"])
    probe = CurveTrainer(cfg, None, eval_num=320)
    images, masks = probe.held_out()
    return reconstruction_metrics(untrained, images, masks, probe.baseline())


@pytest.mark.slow
def test_genv2_learns_past_what_an_untrained_model_reaches(tmp_path):
    """Slow (2,000 training steps: minutes of wall-clock time on 2 cores): the demo recipe's GENv2
    after 2,000 steps beats thresholds that the same model untrained cannot reach (ARI-FG of its
    masks, reconstruction vs the mean image)."""
    base = _untrained("genv2", "genv2_g", tmp_path)
    assert base["ari_fg"] < 0.05 and base["mse_ratio"] > 1.0
    res = learn("genv2", steps=2000, minutes=0, preset="demo", eval_every=1000, num_samples=32,
                out=tmp_path / "curve", table=2, row="genv2_g")
    final = res["points"][-1]
    assert final["step"] == 2000
    assert final["ari_fg"] > 0.1 and final["mse_ratio"] < 0.75


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_sri_learns_past_what_an_untrained_model_reaches(tmp_path):
    """Slow (2,000 SRI-G steps from scratch: 13m55s here beside two trainings): the recorded recipe
    (the demo preset's first stage, which `quick` and `scenes` share up to the first goal) beats
    what the untrained model reaches, so a regression that stops SRI (three-stage inference, the
    scene variable, L_SRI's second decoder) from learning fails here.

    When segmentation emerges is chaotic: on this machine ARI-FG at step 1,000 was 0.26-0.33 over
    seeds 0-2 but 0.03 at step 250 for seed 1, and CI's machine (other CPU, other thread count, so
    other rounding) measured 0.038 at step 1,000 for seed 0, failing the earlier one-point check.
    Hence the best ARI-FG over evaluations every 250 steps to 2,000, against a threshold the
    untrained model (< 0.05) cannot reach; reconstruction, which learns at the same pace everywhere
    (MSE ratio 0.75-0.79 at step 1,000 here and 0.77 on CI), is checked at the end. Curves of seeds
    1-3: docs/perf/sri_early_spread_2026-12-07.json."""
    base = _untrained("sri", "sri_g", tmp_path)
    assert base["ari_fg"] < 0.05 and base["mse_ratio"] > 1.0
    res = learn("sri", steps=2000, minutes=0, preset="demo", eval_every=250, num_samples=32,
                out=tmp_path / "curve", table=2, row="sri_g")
    points = res["points"]
    curve = [(p["step"], round(p["ari_fg"], 3), round(p["mse_ratio"], 3)) for p in points]
    assert points[-1]["step"] == 2000
    assert max(p["ari_fg"] for p in points) > 0.12, f"no segmentation in 2,000 steps: {curve}"
    assert points[-1]["mse_ratio"] < 0.8, f"reconstruction did not learn: {curve}"


def test_compare_trains_measures_and_summarises(tmp_path, monkeypatch):
    from sri.bench.compare import compare
    from sri.metrics import scene_features as sf

    net = sf.train_scene_features(16, steps=5, num_train=200, progress=False)
    weights = sf.save_scene_features(net, tmp_path / "sf16.pt")
    monkeypatch.setattr(sf, "default_weights_path", lambda size: weights)
    res = compare(["sri_g", "genv2_g"], [0, 1], steps=2, preset="smoke", out=tmp_path / "cmp", num=8)
    assert [(r["row"], r["seed"]) for r in res["runs"]] == [("sri_g", 0), ("sri_g", 1), ("genv2_g", 0), ("genv2_g", 1)]
    for r in res["runs"]:
        for key in ("sample_s_acc", "scene_fd", "sample_visible_objects", "ari_fg", "order_consistency"):
            assert isinstance(r[key], float), key
    assert all(r["steps_to_bar"] is None for r in res["runs"])  # 2 smoke steps reach no bar
    for r in res["runs"]:  # Table 3's SRI loss adds crossOrderKL (>= 0) to the -ELBO; GENv2 has none
        assert (r["sri_loss_bpd"] >= r["nelbo_bpd"] - 1e-9) if r["row"] == "sri_g" else \
            r["sri_loss_bpd"] == r["nelbo_bpd"]
    mean, std = res["summary"]["sri_g"]["scene_fd"]
    fds = [r["scene_fd"] for r in res["runs"] if r["row"] == "sri_g"]
    assert abs(mean - sum(fds) / 2) < 1e-9 and abs(std - abs(fds[0] - fds[1]) / 2 ** 0.5) < 1e-9
    assert "| sri_g |" in (tmp_path / "cmp" / "results.md").read_text()
    # a second call reuses the finished runs instead of training them again
    mtime = (tmp_path / "cmp" / "sri_g" / "seed0" / "curve.json").stat().st_mtime
    compare(["sri_g"], [0], steps=2, preset="smoke", out=tmp_path / "cmp", num=8)
    assert (tmp_path / "cmp" / "sri_g" / "seed0" / "curve.json").stat().st_mtime == mtime
    # runs measured earlier join this call's summary (--add-results); seeds run here are not doubled
    kept = tmp_path / "first_results.json"
    kept.write_text((tmp_path / "cmp" / "results.json").read_text())
    both = compare(["sri_g"], [1], steps=2, preset="smoke", out=tmp_path / "cmp", num=8, add_results=[str(kept)])
    assert [(r["seed"], "recorded_in" in r) for r in both["runs"]] == [(0, True), (1, False)]
    assert both["seeds"] == [0, 1] and both["summary"]["sri_g"]["scene_fd"] == [mean, std]


def test_compare_continues_cut_runs_and_reports_s_acc_by_eye(tmp_path, monkeypatch):
    """A compare run cut by --minutes is reported unfinished and continues on the next call (not
    from scratch); finished runs are exported, and eye labels of their pooled samples give S-Acc
    by eye per run."""
    import csv

    import numpy as np

    from sri.bench.compare import compare
    from sri.bench.judge_check import make_pool
    from sri.metrics import scene_features as sf

    net = sf.train_scene_features(16, steps=5, num_train=200, progress=False)
    weights = sf.save_scene_features(net, tmp_path / "sf16.pt")
    monkeypatch.setattr(sf, "default_weights_path", lambda size: weights)
    cmp = tmp_path / "cmp"
    res = compare(["genv2_g"], [0], steps=10 ** 6, preset="smoke", out=cmp, num=8, minutes=0.02)
    assert res["runs"] == [] and res["unfinished"][0]["steps"] < 10 ** 6
    assert "unfinished" in (cmp / "results.md").read_text()
    cut = res["unfinished"][0]["steps"]
    res = compare(["genv2_g"], [0], steps=cut + 2, preset="smoke", out=cmp, num=8)
    run = res["runs"][0]
    assert run["steps"] == cut + 2 and run["chunks"] == 2  # continued, not started again
    model_file = cmp / "models" / "genv2_g_seed0.pt"
    assert model_file.is_file() and "s_acc_eye" not in run
    meta = make_pool([str(model_file)], 6, tmp_path / "judge", first_id=0)
    assert meta["checkpoints"] == [f"{model_file}@{cut + 2}"]
    pool = np.load(tmp_path / "judge" / "pool_0000.npz")
    verdicts = [1, 0, 1, -1, 1, 1]
    blocks = [3, 2, "", 4, 1, 2]
    with open(tmp_path / "judge" / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "label", "blocks"])
        w.writerows(zip(pool["ids"].tolist(), verdicts, blocks))
    res = compare(["genv2_g"], [0], steps=cut + 2, preset="smoke", out=cmp, num=8, labels=tmp_path / "judge")
    assert res["runs"][0]["s_acc_eye"] == 4 / 5 and res["runs"][0]["n_eye"] == 5
    assert res["runs"][0]["blocks_eye"] == 12 / 5 and res["runs"][0]["n_blocks_eye"] == 5
    assert "s_acc_eye" in res["summary"]["genv2_g"]


def test_compare_cli_takes_table_3_rows_and_names_a_bad_row(tmp_path, monkeypatch):
    import sri.bench.compare as cmp

    seen = {}
    monkeypatch.setattr(cmp, "compare", lambda rows, seeds, **kw: seen.update(rows=rows, **kw))
    assert cmp.main(["--table", "3", "--seeds", "0", "--out", str(tmp_path)]) == 0
    assert seen["rows"] == ["a", "b", "c", "d"] and seen["table"] == 3
    with pytest.raises(SystemExit, match="unknown row 'sri_g' for table 3"):
        cmp.main(["--table", "3", "--rows", "sri_g"])


def test_compare_interrupted_says_how_to_continue(tmp_path, monkeypatch, capsys):
    """Ctrl-C / SIGTERM during a compare run: exit 130 with a one-line hint, not a traceback."""
    import sri.bench.compare as cmp
    from sri.train.trainer import TrainingInterrupted

    def stop(*a, **k):
        raise TrainingInterrupted("interrupted at step 7")

    monkeypatch.setattr(cmp, "compare", stop)
    assert cmp.main(["--seeds", "0", "--out", str(tmp_path)]) == 130
    assert "give the same command again" in capsys.readouterr().err


def test_each_evaluation_is_written_at_once(tmp_path):
    """Nothing lost on a crash: a learning check killed mid-run keeps its curve so far in
    curve.partial.json (regression: the curve was written only at the end)."""
    cfg = learning_config("genv2", preset="smoke", steps=5, minutes=0, eval_every=2,
                          run_dir=tmp_path / "run")
    trainer = CurveTrainer(cfg, None, eval_num=8, partial=tmp_path / "curve.partial.json")
    trainer.fit()
    import json

    pts = json.loads((tmp_path / "curve.partial.json").read_text())["points"]
    assert [p["step"] for p in pts] == [2, 4] and all("ari_fg" in p and "mse_ratio" in p for p in pts)
    # a finished learn() leaves only curve.json
    learn("genv2", steps=2, minutes=0, preset="smoke", eval_every=1, num_samples=4, eval_num=8,
          out=tmp_path / "done", plot=False)
    assert (tmp_path / "done" / "curve.json").is_file()
    assert not (tmp_path / "done" / "curve.partial.json").exists()


def test_an_interrupted_learning_check_keeps_its_curve(tmp_path):
    """SIGTERM mid-run: the trainer checkpoints, and the curve so far goes to curve.json (marked
    interrupted) instead of being lost; exit status 130."""
    import json
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "curve"
    proc = subprocess.Popen([sys.executable, "-m", "sri.bench", "learn", "--model", "genv2", "--preset", "smoke",
                             "--steps", "100000", "--minutes", "0", "--eval-every", "2", "--eval-num", "8",
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out / "curve.partial.json").exists():
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output[-2000:]
    res = json.loads((out / "curve.json").read_text())
    assert res["interrupted"] is True and len(res["points"]) >= 1 and res["checkpoint"]
    assert "sample_s_acc" not in res["final"] and "commit" in res


def test_eval_samples_put_s_acc_and_scene_fd_in_every_point(tmp_path, monkeypatch):
    """--eval-samples N: each evaluation also judges N samples (S-Acc by `judge_samples`) and gives
    their scene FD against N test scenes, equal to computing both by hand on the same samples."""
    from sri.metrics import judge_samples
    from sri.metrics import scene_features as sf

    net = sf.train_scene_features(16, steps=5, num_train=200, progress=False)
    weights = sf.save_scene_features(net, tmp_path / "sf16.pt")
    monkeypatch.setattr(sf, "default_weights_path", lambda size: weights)
    cfg = learning_config("genv2", preset="smoke", steps=2, minutes=0, eval_every=2, run_dir=tmp_path / "run")
    trainer = CurveTrainer(cfg, None, eval_num=8, eval_samples=12)
    trainer.fit()
    model = trainer.model
    got = trainer.sample_quality(model)
    g = torch.Generator().manual_seed(cfg["seed"] + 1)
    model.eval()
    with torch.no_grad():
        outs = [model.sample(12, generator=g)]
    images, masks = outs[0].images.clamp(0, 1), outs[0].masks
    assert got["s_acc"] == float(judge_samples(images, masks).float().mean())
    assert np.isclose(got["scene_fd"], sf.scene_frechet_distance(sf.load_scene_features(16), images,
                                                                 trainer._fd[1]))
    res = learn("genv2", steps=2, minutes=0, preset="smoke", eval_every=1, num_samples=4, eval_num=8,
                out=tmp_path / "curve", plot=False, eval_samples=12)
    assert all("s_acc" in p and "scene_fd" in p for p in res["points"])


def test_a_run_cut_into_chunks_continues_and_joins_its_curve(tmp_path):
    """`--resume`: a run stopped by its time limit (as at the end of a working session) continues
    from its checkpoint to --steps; curve.json holds every evaluation once, wall-clock offset by
    the earlier chunk, and each chunk's command and commit; the earlier curve is kept."""
    out = tmp_path / "run"
    common = ["--model", "genv2", "--preset", "smoke", "--eval-every", "2", "--eval-num", "8",
              "--num-samples", "4", "--out", str(out)]
    assert main([*common, "--steps", "4", "--minutes", "0"]) == 0
    first = json.loads((out / "curve.json").read_text())
    assert main([*common, "--steps", "8", "--minutes", "0", "--resume"]) == 0
    res = json.loads((out / "curve.json").read_text())
    assert [p["step"] for p in res["points"]] == [2, 4, 6, 8]
    assert res["steps"] == 8 and len(res["chunks"]) == 2
    assert res["chunks"][1]["command"].endswith("--resume") and res["chunks"][0]["steps"] == 4
    assert res["points"][2]["wall_s"] >= first["train_wall_s"]  # offset by the first chunk
    assert res["total_train_wall_s"] >= first["train_wall_s"] + res["train_wall_s"] - 0.2
    assert json.loads((out / "curve.chunk1.json").read_text())["steps"] == 4
    # the trainer continued from step 4 instead of starting again (which archives the old checkpoints)
    assert not (out / "run" / "archive").exists()
    logged = next(v for k, v in res["train"].items() if len(v) >= 8)
    assert [s for s, _ in logged] == sorted({s for s, _ in logged})  # each step once, in order


def test_resume_after_a_kill_uses_the_evaluations_saved_so_far(tmp_path):
    """A run killed before it wrote curve.json (kill -9) continues from its checkpoint and keeps
    the evaluations of curve.partial.json."""
    out = tmp_path / "run"
    common = ["--model", "genv2", "--preset", "smoke", "--eval-every", "2", "--eval-num", "8",
              "--num-samples", "4", "--out", str(out)]
    assert main([*common, "--steps", "4", "--minutes", "0"]) == 0
    kept = json.loads((out / "curve.json").read_text())
    (out / "curve.json").unlink()  # as if killed after its last evaluation
    (out / "curve.partial.json").write_text(json.dumps({"points": kept["points"]}))
    assert main([*common, "--steps", "6", "--minutes", "0", "--resume"]) == 0
    res = json.loads((out / "curve.json").read_text())
    assert [p["step"] for p in res["points"]] == [2, 4, 6] and len(res["chunks"]) == 2


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_gen_learns_to_reconstruct_past_what_an_untrained_model_reaches(tmp_path):
    """Slow (500 GEN steps from scratch: 10m12s here beside three other processes). The recipe (the
    demo preset with the Gaussian likelihood, docs/LEARNING.md "GEN") brings GENESIS's reconstruction
    below the mean image's error (MSE ratio 0.806 at step 500 and 0.678 at 1,000 here; untrained
    1.65), so a regression that stops the GEN family (its mask VAE, component VAE or GECO) from
    learning fails here. It checks reconstruction only: GEN's ARI-FG is still erratic this early
    (0.00 / 0.00 / 0.09 / 0.00 at steps 250-1,000; measured 2026-12-07, docs/LEARNING.md "GEN")."""
    assert _untrained("gen", "gen", tmp_path, overrides={"model_options.likelihood": "gaussian"})["mse_ratio"] > 1.2
    res = learn("gen", steps=500, minutes=0, preset="demo", eval_every=500, num_samples=16,
                out=tmp_path / "curve", table=2, row="gen", overrides={"model_options.likelihood": "gaussian"})
    final = res["points"][-1]
    assert final["step"] == 500 and final["mse_ratio"] < 1.0, res["points"]


@pytest.mark.slow
def test_the_mog_stage_keeps_what_the_g_recipe_learned(tmp_path):
    """Slow (300 steps from the shipped GENv2-G file under the MoG row, as checkpoints/blocks/ was
    made): the MoG stage keeps a segmentation an untrained MoG model cannot reach, so a regression in
    the MoG likelihood or in starting from a G file fails here."""
    from pathlib import Path

    ck = Path(__file__).resolve().parents[1] / "demo_checkpoints" / "genv2_g.pt"
    cfg = learning_config("genv2", preset="demo", steps=1, minutes=0, table=2, row="genv2_mog",
                          run_dir=tmp_path / "untrained")
    torch.manual_seed(0)
    untrained = build_model(cfg["model"], **cfg["model_options"])
    assert untrained.options["likelihood"] == "mog"
    probe = CurveTrainer(cfg, None, eval_num=320)
    images, masks = probe.held_out()
    base = reconstruction_metrics(untrained, images, masks, probe.baseline())
    assert base["ari_fg"] < 0.05 and base["mse_ratio"] > 1.0
    start = torch.load(ck, map_location="cpu", weights_only=False)["step"]
    res = learn("genv2", steps=start + 300, minutes=0, preset="demo", eval_every=300, num_samples=32,
                out=tmp_path / "curve", table=2, row="genv2_mog",
                overrides={"init_checkpoint": str(ck), "geco_goal": -2.2})
    final = res["points"][-1]
    assert final["step"] == start + 300 and res["config"]["model_options"]["likelihood"] == "mog"
    assert final["ari_fg"] > 0.6 and final["mse_ratio"] < 0.4


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_emorl_learns_to_reconstruct_past_what_an_untrained_model_reaches(tmp_path):
    """Slow (300 EMORL steps from scratch at the `emorl_cpu` preset: 7m08s here beside two one-thread
    trainings). The recorded recipe brings the
    EMORL family's reconstruction (refinement, hierarchical prior, EMORL's GECO) from the untrained
    model's MSE ratio (1.58-1.60 over seeds 0-2) to 1.09 at step 200 and 1.08 at step 300
    (docs/img/learn/emorl_cpu_400.json), so a regression that stops it learning fails here. Its
    ARI-FG is still near zero this early (0.05-0.07 at steps 200-300), so only reconstruction is
    checked."""
    assert _untrained("emorl", "emorl", tmp_path, preset="emorl_cpu")["mse_ratio"] > 1.5
    res = learn("emorl", steps=300, minutes=0, preset="emorl_cpu", eval_every=300, num_samples=16,
                out=tmp_path / "curve", table=2, row="emorl")
    final = res["points"][-1]
    assert final["step"] == 300 and final["mse_ratio"] < 1.3, res["points"]
