"""`python -m sri.bench time-to-bar` and the GECO goal schedule it relies on (issue 23)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sri.bench.learn import merged_points
from sri.bench.time_to_bar import RECIPES, _next_command, first_at_bar, plan_jobs
from sri.configs import ConfigError, experiment_config, validate_config
from sri.objectives import GECO
from sri.train.schedule import GoalSchedule


def _geco(goal, err):
    g = GECO(goal, 1e-3)
    g.update(err)
    return g


def test_goal_schedule_after_reached_and_at_step():
    s = GoalSchedule(-1.6, [{"goal": -2.2, "after_reached": 3}, {"goal": -2.5, "at_step": 100}])
    far = {"seg": _geco(-1.6, -1.0)}  # error above the goal: not met
    assert not any(s.advance(t, far) for t in range(1, 50)) and s.goal == -1.6
    met = {"seg": _geco(-1.6, -1.7), "sri": _geco(-1.6, -1.65)}
    assert not s.advance(50, met) and s.reached_at == 50
    assert not s.advance(52, met)
    assert s.advance(53, met) and s.goal == -2.2  # 3 steps after first met
    assert not s.advance(99, met)  # the -2.5 entry is step-based, whatever the GECOs say
    assert s.advance(100, far) and s.goal == -2.5
    assert not s.advance(200, met)  # nothing after the last goal
    state = s.state_dict()
    again = GoalSchedule(-1.6, [{"goal": -2.2, "after_reached": 3}, {"goal": -2.5, "at_step": 100}])
    again.load_state_dict(state)
    assert again.goal == -2.5
    other = GoalSchedule(-1.0, [])
    other.load_state_dict(state)  # another schedule's state is ignored
    assert other.goal == -1.0


def test_goal_schedule_needs_every_group_to_meet_the_goal():
    s = GoalSchedule(-1.6, [{"goal": -2.2, "after_reached": 0}])
    assert not s.advance(1, {"seg": _geco(-1.6, -1.7), "sri": _geco(-1.6, -1.5)})
    assert s.advance(2, {"seg": _geco(-1.6, -1.7), "sri": _geco(-1.6, -1.7)})


@pytest.mark.parametrize("bad", [{"goal": -2.2}, {"goal": -2.2, "at_step": 1, "after_reached": 1},
                                 {"goal": "x", "at_step": 1}, {"goal": -2.2, "at_step": -1},
                                 {"goal": -2.2, "at_step": 1, "typo": 2}, "not a dict"])
def test_bad_goal_schedule_is_refused_with_the_fix(bad):
    cfg = experiment_config(2, "genv2_g", "blocks", "smoke")
    cfg["geco_goal_schedule"] = [bad]
    with pytest.raises(ConfigError, match="geco_goal_schedule"):
        validate_config(cfg)


def test_trainer_switches_the_goal_and_resumes_the_schedule(tmp_path, one_thread):
    from sri.checkpoint import load_checkpoint
    from sri.train.loggers import MemoryLogger
    from sri.train.trainer import Trainer

    cfg = experiment_config(2, "genv2_g", "blocks", "smoke")
    cfg.update(run_dir=str(tmp_path / "run"), steps=6, final_metrics=[], num_order=0, geco_goal=1e6,
               geco_goal_schedule=[{"goal": -3.0, "after_reached": 2}, {"goal": 5.0, "at_step": 8}])
    log = MemoryLogger()
    t = Trainer(cfg, log)
    t.fit()  # goal 1e6 per element is met at once: -3.0 from step 3
    assert [v for _, v in log.scalars["geco_goal"]] == [-3.0]
    size = cfg["model_options"]["image_size"]
    assert all(g.goal == -3.0 * 3 * size * size for g in t.gecos.values())
    ckpt = load_checkpoint(Path(cfg["run_dir"]) / "ckpt_00000006.pt")
    assert ckpt["goal_schedule"]["index"] == 1
    cfg2 = dict(cfg, steps=9)
    log2 = MemoryLogger()
    t2 = Trainer(cfg2, log2)
    t2.fit()  # resumes at the second goal, then switches to the third at step 8
    assert [v for _, v in log2.scalars["geco_goal"]] == [5.0]


def test_first_at_bar_and_merged_chunks():
    pts = [{"step": 500, "ari_fg": 0.8, "mse_ratio": 0.3}, {"step": 1000, "ari_fg": 0.76, "mse_ratio": 0.2}]
    assert first_at_bar(pts)["step"] == 1000 and first_at_bar(pts[:1]) is None
    a = {"points": [{"step": 500, "wall_s": 60.0, "eval_s": 5.0}, {"step": 730, "wall_s": 90.0, "eval_s": 8.0}],
         "train_wall_s": 90.0, "eval_wall_s": 8.0}
    b = {"points": [{"step": 730, "wall_s": 3.0, "eval_s": 3.0}, {"step": 1000, "wall_s": 40.0, "eval_s": 6.0}],
         "train_wall_s": 45.0, "eval_wall_s": 6.0}
    m = merged_points([a, b])
    assert [p["step"] for p in m] == [500, 730, 1000]
    assert m[-1]["wall_s"] == 130.0 and m[-1]["eval_s"] == 14.0


def test_plan_alternates_recipes_and_names_them(tmp_path):
    jobs = plan_jobs(["sri_g", "genv2_g"], ["current", "new"], [0, 1], minutes=20, eval_every=500, out=tmp_path)
    assert [(j["row"], j["recipe"], j["seed"]) for j in jobs[:4]] == [
        ("sri_g", "current", 0), ("sri_g", "new", 0), ("genv2_g", "current", 0), ("genv2_g", "new", 0)]
    cur = jobs[0]["cmd"]
    assert cur[cur.index("--preset") + 1] == "demo" and "--stop-at-bar" in cur
    assert any(a.startswith("geco_goal_schedule=") for a in cur)
    assert jobs[1]["cmd"][jobs[1]["cmd"].index("--preset") + 1] == RECIPES["new"][0]
    with pytest.raises(ConfigError, match="unknown recipe"):
        plan_jobs(["sri_g"], ["fastest"], [0], minutes=1, eval_every=1, out=tmp_path)


def test_a_cut_run_continues_for_the_minutes_left(tmp_path):
    job = plan_jobs(["genv2_g"], ["new"], [0], minutes=20, eval_every=500, out=tmp_path)[0]
    assert _next_command(job, 20) == job["cmd"]  # nothing yet: the whole run
    d = Path(job["out"])
    d.mkdir(parents=True)
    curve = {"points": [{"step": 500, "wall_s": 300.0, "ari_fg": 0.3, "mse_ratio": 0.6}], "train_wall_s": 300.0}
    (d / "curve.json").write_text(json.dumps(curve))
    cmd = _next_command(job, 20)
    assert cmd[cmd.index("--minutes") + 1] == "15.00" and cmd[-1] == "--resume"
    # the learning check joins the chunks in curve.json: its total counts
    (d / "curve.json").write_text(json.dumps(dict(curve, train_wall_s=900.0, total_train_wall_s=1200.0)))
    assert _next_command(job, 20) is None  # 5 + 15 minutes used up


def test_time_to_bar_end_to_end(tmp_path):
    out = tmp_path / "ttb"
    r = subprocess.run([sys.executable, "-m", "sri.bench", "time-to-bar", "--rows", "genv2_g", "--recipes", "new",
                        "--minutes", "0.15", "--eval-every", "20", "--parallel", "1", "--out", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads((out / "time_to_bar.json").read_text())
    for key in ("date", "commit", "dirty", "command", "machine", "torch"):
        assert key in rep
    run = rep["runs"][0]
    assert run["recipe"] == "new" and run["batch_size"] == 16 and run["points"] and not run["reached"]
    assert (out / "time_to_bar.png").stat().st_size > 10_000
    assert "| genv2_g | new |" in (out / "time_to_bar.md").read_text()


def test_the_new_recipe_is_the_quick_preset_and_equals_its_measured_form():
    """`new` (the quick preset) and `schedule-b16` (how it was first measured) train the same config."""
    a = experiment_config(2, "sri_g", "blocks", "quick")
    b = experiment_config(2, "sri_g", "blocks", "demo")
    b.update(RECIPES["schedule-b16"][1])
    a.pop("preset"), b.pop("preset")
    assert a == b and RECIPES["new"][0] == "quick"


def test_the_sample_bar_waits_for_the_samples_too(tmp_path):
    """--sample-bar: the first point meeting the demo bar is not enough; the run is finished only
    once its samples have S-Acc >= 0.5 and scene FD <= 10 as well (and the commands judge samples)."""
    pts = [{"step": 1000, "ari_fg": 0.76, "mse_ratio": 0.2, "s_acc": 0.9, "scene_fd": 30.0},
           {"step": 2000, "ari_fg": 0.74, "mse_ratio": 0.2, "s_acc": 0.9, "scene_fd": 5.0},
           {"step": 3000, "ari_fg": 0.77, "mse_ratio": 0.2, "s_acc": 0.6, "scene_fd": 8.0}]
    assert first_at_bar(pts)["step"] == 1000
    assert first_at_bar(pts, sample_bar=(0.5, 10.0))["step"] == 3000
    job = plan_jobs(["genv2_g"], ["scenes"], [0], minutes=20, eval_every=500, out=tmp_path,
                    sample_bar=(0.5, 10.0))[0]
    assert job["cmd"][job["cmd"].index("--sample-bar") + 1] == "0.5,10"
    assert job["cmd"][job["cmd"].index("--preset") + 1] == "scenes"
    d = Path(job["out"])
    d.mkdir(parents=True)
    (d / "curve.json").write_text(json.dumps({"points": pts[:2], "train_wall_s": 300.0}))
    assert _next_command(job, 20) is not None  # demo bar met, samples not yet: it goes on
    (d / "curve.json").write_text(json.dumps({"points": pts, "train_wall_s": 400.0}))
    assert _next_command(job, 20) is None


def test_learn_stops_at_the_sample_bar_only_when_the_samples_meet_it(tmp_path, monkeypatch):
    from sri.bench import learn as learn_mod
    from sri.bench.learn import CurveTrainer, learning_config

    cfg = learning_config("genv2", preset="smoke", steps=50, minutes=0, eval_every=2, run_dir=tmp_path / "run")
    t = CurveTrainer(cfg, None, eval_num=8, stop_at_bar=True, bar=(-1.0, 1e9), sample_bar=(0.5, 10.0))
    assert t.eval_samples == 1000  # the protocol's default when a sample bar is set
    verdicts = iter([{"s_acc": 0.2, "scene_fd": 5.0}, {"s_acc": 0.7, "scene_fd": 9.0}])
    monkeypatch.setattr(CurveTrainer, "sample_quality", lambda self, model: next(verdicts))
    t.fit()
    assert t.config["steps"] == 4  # the ARI/MSE bar (trivial here) held at step 2; the samples at step 4
    assert learn_mod.meets_sample_bar({"s_acc": 0.5, "scene_fd": 10.0})
