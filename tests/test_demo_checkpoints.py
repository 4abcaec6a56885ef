"""Starting a run from a compact exported checkpoint (`init_checkpoint`, the demo's path)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sri.checkpoint import export_checkpoint, load_checkpoint, load_model
from sri.configs import ConfigError, experiment_config
from sri.train.loggers import MemoryLogger
from sri.train.rundir import list_checkpoints
from sri.train.trainer import train


def _cfg(run_dir, steps, **kw):
    cfg = experiment_config(2, "genv2_mog", "blocks", "smoke")
    cfg.update(run_dir=str(run_dir), steps=steps, final_metrics=[], num_order=0, progress=False, **kw)
    return cfg


def test_export_is_compact_and_loads(tmp_path):
    train(_cfg(tmp_path / "a", 2))
    src = list_checkpoints(tmp_path / "a")[-1][1]
    dst = export_checkpoint(src, tmp_path / "genv2_mog.pt")
    ck = load_checkpoint(dst)  # weights_only
    # tensors in fp16; 0-d scalars (IC-SM gate and kernel width) stay fp32
    assert all(v.dtype == torch.float16 for v in ck["model_state"].values() if v.is_floating_point() and v.dim())
    moments = [t for s in ck["optimizer_state"]["state"].values() for t in s.values()
               if torch.is_tensor(t) and t.dim() > 0]
    assert moments and all(t.dtype == torch.bfloat16 for t in moments)
    model, _ = load_model(dst)
    ref, _ = load_model(src)
    for (k, a), b in zip(model.state_dict().items(), ref.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), rtol=1e-3, atol=1e-4), k


def test_run_starts_from_init_checkpoint_and_continues_its_step(tmp_path):
    train(_cfg(tmp_path / "a", 3))
    dst = export_checkpoint(list_checkpoints(tmp_path / "a")[-1][1], tmp_path / "start.pt")
    log = MemoryLogger()
    res = train(_cfg(tmp_path / "b", 5, init_checkpoint=str(dst)), logger=log)
    assert log.info["initialised_from"] == {"path": str(dst), "step": 3}
    assert res["step"] == 5 and list_checkpoints(tmp_path / "b")[-1][0] == 5
    # a rerun resumes from the run's own checkpoint, not from the starting file again
    log2 = MemoryLogger()
    train(_cfg(tmp_path / "b", 6, init_checkpoint=str(dst)), logger=log2)
    assert "initialised_from" not in log2.info and log2.info["resumed_from"].endswith("ckpt_00000005.pt")


def test_init_checkpoint_keeps_this_runs_geco_settings(tmp_path):
    """Regression: the GECO goal and step size of the starting file replaced the run's own, so a
    run continuing a checkpoint with another `geco_goal` silently kept the old goal."""
    train(_cfg(tmp_path / "a", 3))
    src = load_checkpoint(list_checkpoints(tmp_path / "a")[-1][1])
    dst = export_checkpoint(list_checkpoints(tmp_path / "a")[-1][1], tmp_path / "start.pt")
    cfg = _cfg(tmp_path / "b", 3, init_checkpoint=str(dst), geco_goal=-1.0, geco_lr=2e-5)
    log = MemoryLogger()
    res = train(cfg, logger=log)
    ck = load_checkpoint(list_checkpoints(tmp_path / "b")[-1][1])
    size = cfg["model_options"]["image_size"]
    assert ck["gecos"]["seg"]["goal"] == pytest.approx(-1.0 * 3 * size * size)
    assert ck["gecos"]["seg"]["step_size"] == pytest.approx(2e-5 * 64 ** 2 / size ** 2)
    # no step was taken (step 3 of 3), so beta is the starting file's
    assert res["step"] == 3
    assert ck["gecos"]["seg"]["beta"] == pytest.approx(src["gecos"]["seg"]["beta"])


def test_init_checkpoint_written_before_the_models_became_compositions(tmp_path):
    """Regression: a GENv2 export with the old parameter names (prior_lstm.*, ...) failed with a
    KeyError when a run started from it; the shipped demo checkpoints are such files."""
    train(_cfg(tmp_path / "a", 2))
    dst = export_checkpoint(list_checkpoints(tmp_path / "a")[-1][1], tmp_path / "start.pt")
    ck = load_checkpoint(dst)
    old = {"prior.lstm.": "prior_lstm.", "prior.linear.": "prior_linear."}
    renamed = {}
    for k, v in ck["model_state"].items():
        for new, legacy in old.items():
            if k.startswith(new):
                k = legacy + k[len(new):]
        renamed[k] = v
    assert any(k.startswith("prior_lstm.") for k in renamed)
    ck["model_state"] = renamed
    torch.save(ck, dst)
    log = MemoryLogger()
    res = train(_cfg(tmp_path / "b", 3, init_checkpoint=str(dst)), logger=log)
    assert res["step"] == 3 and log.info["initialised_from"]["step"] == 2
    model, _ = load_model(dst)  # and the plain loader maps them too
    assert model.prior.lstm.weight_ih_l0.dtype == torch.float32


def test_shipped_demo_checkpoints_load_into_the_current_models():
    from pathlib import Path

    for f in sorted((Path(__file__).resolve().parents[1] / "demo_checkpoints").glob("*.pt")):
        model, ck = load_model(f)
        assert model.name == ck["model_name"]


def test_init_checkpoint_of_another_model_is_refused(tmp_path):
    train(_cfg(tmp_path / "a", 2))
    dst = export_checkpoint(list_checkpoints(tmp_path / "a")[-1][1], tmp_path / "start.pt")
    cfg = _cfg(tmp_path / "b", 4, init_checkpoint=str(dst))
    cfg["model_options"]["slot_dim"] = 8
    with pytest.raises(ConfigError, match="init_checkpoint"):
        train(cfg)
    with pytest.raises(ConfigError, match="init_checkpoint must be"):
        train(_cfg(tmp_path / "c", 4, init_checkpoint=3))


def test_init_checkpoint_may_switch_the_likelihood_only(tmp_path):
    """A G-trained checkpoint continues under MoG (same parameters); a changed width is refused."""
    train(_cfg(tmp_path / "a", 2))
    dst = export_checkpoint(list_checkpoints(tmp_path / "a")[-1][1], tmp_path / "start.pt")
    cfg = _cfg(tmp_path / "b", 3, init_checkpoint=str(dst))
    cfg["model_options"].update(likelihood="gaussian", pixel_std=0.1, normalized=False)
    log = MemoryLogger()
    train(cfg, logger=log)
    model, _ = load_model(list_checkpoints(tmp_path / "b")[-1][1])
    assert model.options["likelihood"] == "gaussian" and model.options["pixel_std"] == 0.1
    cfg = _cfg(tmp_path / "c", 3, init_checkpoint=str(dst))
    cfg["model_options"].update(likelihood="gaussian", slot_dim=8)
    with pytest.raises(ConfigError, match="only likelihood, normalized, pixel_std, num_slots may differ"):
        train(cfg)


def test_init_checkpoint_may_change_the_number_of_slots_where_weights_allow(tmp_path):
    """GENv2 has no per-slot parameter: a K=3 checkpoint continues with K=4. SRI-SA* learns one
    initialisation per slot: refused with a message naming the option."""
    train(_cfg(tmp_path / "a", 2))
    dst = export_checkpoint(list_checkpoints(tmp_path / "a")[-1][1], tmp_path / "start.pt")
    cfg = _cfg(tmp_path / "b", 3, init_checkpoint=str(dst), num_slots=4)
    cfg["model_options"]["num_slots"] = 4
    train(cfg)
    model, _ = load_model(list_checkpoints(tmp_path / "b")[-1][1])
    assert model.options["num_slots"] == 4
    sa = experiment_config(1, "sri_sa", "blocks", "smoke")
    sa.update(run_dir=str(tmp_path / "sa"), steps=2, final_metrics=[], num_order=0, progress=False)
    train(sa)
    dst = export_checkpoint(list_checkpoints(tmp_path / "sa")[-1][1], tmp_path / "sa.pt")
    sa.update(run_dir=str(tmp_path / "sa2"), init_checkpoint=str(dst), num_slots=4)
    sa["model_options"] = dict(sa["model_options"], num_slots=4)
    with pytest.raises(ConfigError, match="do not fit this run's model with num_slots=4"):
        train(sa)


def test_every_trainer_option_is_a_sacred_config_entry():
    """Regression: init_checkpoint was missing from the table scripts' config scope, so
    `with init_checkpoint=...` (what the demo passes) failed with ConfigAddedError."""
    import subprocess
    import sys
    from pathlib import Path

    from sri.configs import TRAIN_DEFAULTS

    root = Path(__file__).resolve().parents[1]
    res = subprocess.run([sys.executable, str(root / "experiments" / "table2_main.py"), "print_config",
                          "with", "smoke", "init_checkpoint=x.pt"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    for key in TRAIN_DEFAULTS:
        assert f"{key} =" in res.stdout or f"{key}:" in res.stdout, key


def test_make_checkpoints_runs_the_stages_and_records_them(tmp_path, monkeypatch):
    """`make demo-checkpoints`: stage 2 starts from stage 1's export with its own GECO goal; the
    provenance lists both commands and both wall times (also when only stage 2 is rerun)."""
    import json

    import sri.bench.learn as L
    import sri.demo.recipe as dc

    real = L.learn
    calls = []

    def small_learn(model, dataset, **kw):
        calls.append(kw)
        kw.update(preset="smoke", eval_num=8, num_samples=4, plot=False)
        return real(model, dataset, **kw)

    monkeypatch.setattr(L, "learn", small_learn)
    monkeypatch.setattr(dc, "STAGES", ((2, None), (4, -1.0)))
    out, work = tmp_path / "ck", tmp_path / "work"
    prov = dc.make_checkpoints(out, rows=["genv2_g"], work=work)
    entry = prov["models"]["genv2_g"]
    assert len(entry["stages"]) == 2 and "init_checkpoint" not in entry["stages"][0]
    assert f"--set init_checkpoint={work / 'genv2_g' / 'stage1.pt'}" in entry["stages"][1]
    assert "--set geco_goal=-1" in entry["stages"][1]
    assert calls[1]["overrides"] == {"init_checkpoint": str(work / "genv2_g" / "stage1.pt"), "geco_goal": -1.0}
    ck = load_checkpoint(out / "genv2_g.pt")
    assert ck["step"] == 4 and ck["config"]["geco_goal"] == -1.0
    assert len(entry["stage_wall_s"]) == 2 and entry["wall_s"] == pytest.approx(sum(entry["stage_wall_s"]))
    first = entry["stage_wall_s"][0]
    # rerun only stage 2: stage 1's recorded time is kept
    prov = dc.make_checkpoints(out, rows=["genv2_g"], work=work, start_stage=2)
    again = json.loads((out / "provenance.json").read_text())["models"]["genv2_g"]
    assert again["stage_wall_s"][0] == first and len(again["stage_wall_s"]) == 2
    assert again["stage_commits"][0] == entry["stage_commits"][0] and len(again["stage_commits"]) == 2
    with pytest.raises(SystemExit, match="start-stage"):
        dc.make_checkpoints(out, rows=["genv2_g"], work=work, start_stage=3)


@pytest.mark.parametrize("folder", ["demo_checkpoints", "checkpoints/blocks"])
def test_shipped_checkpoints_have_their_stated_metrics(folder):
    """Each shipped checkpoint (the demo's, and the paper models trained on `blocks`), evaluated as
    the learning check does (320 held-out `blocks` scenes, the mean of 2,000 training images as the
    MSE baseline), gives the ARI-FG and MSE ratio its provenance states (up to the fp16 export)."""
    import json
    from pathlib import Path

    from sri.data import build_dataset
    from sri.metrics.learning import mean_image, reconstruction_metrics

    root = Path(__file__).resolve().parents[1] / folder
    prov = json.loads((root / "provenance.json").read_text())["models"]
    assert prov, "no provenance entries"
    for row, entry in prov.items():
        model, ck = load_model(root / entry["file"])
        cfg = ck["config"]
        kw = dict(cfg["data_options"], image_size=model.options["image_size"])
        test = build_dataset(cfg["dataset"], None, "test", **{**kw, "num": 320})
        train_ds = build_dataset(cfg["dataset"], None, "train", **kw)
        images = torch.stack([test[i]["image"] for i in range(320)])
        masks = torch.stack([test[i]["mask"] for i in range(320)])
        base = mean_image(torch.stack([train_ds[i]["image"] for i in range(2000)]))
        got = reconstruction_metrics(model, images, masks, base, batch_size=64)
        stated = entry["metrics"]
        assert ck["step"] == entry["steps"], row
        assert got["ari_fg"] == pytest.approx(stated["ari_fg"], abs=0.02), row
        assert got["mse_ratio"] == pytest.approx(stated["mse_ratio"], rel=0.03), row


def test_make_checkpoints_keeps_the_shipped_files_unless_told_and_states_its_duration(tmp_path, monkeypatch, capsys):
    """Issue 26: `make demo-checkpoints` overwrote tracked files and ran 1.5-2 h without saying so."""
    from sri.demo import cli as demo

    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / "sri_g.pt").write_bytes(b"x")
    (shipped / demo.PROVENANCE).write_text(json.dumps({"models": {
        "sri_g": {"stage_wall_s": [2441.0, 2352.0, 1158.0]}, "genv2_g": {"wall_s": 4244.6}}}))
    assert demo.checkpoint_target(shipped, overwrite=False, now="X") == Path("runs/demo-checkpoints/new-X")
    assert demo.checkpoint_target(shipped, overwrite=True) == shipped
    assert demo.checkpoint_target(tmp_path / "empty", overwrite=False) == tmp_path / "empty"
    minutes = demo.expected_checkpoint_minutes(shipped)
    assert round(minutes["sri_g"]) == 99 and round(minutes["genv2_g"]) == 71
    seen = {}
    monkeypatch.setattr(demo, "make_checkpoints", lambda out, **kw: seen.setdefault("out", out))
    demo.main(["--make-checkpoints", "--checkpoint-dir", str(shipped)])
    out = capsys.readouterr().out
    assert seen["out"] != shipped and "is kept" in out and "sri_g 99 min" in out
    seen.clear()
    demo.main(["--make-checkpoints", "--checkpoint-dir", str(shipped), "--overwrite"])
    assert seen["out"] == shipped
