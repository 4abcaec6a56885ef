"""Trainer mechanics: exact resume, NaN guard, SIGTERM checkpoint, 2-process gloo DDP, schedules."""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sri.checkpoint import load_checkpoint
from sri.configs import ConfigError
from sri.train.loggers import MemoryLogger
from sri.train.rundir import list_checkpoints
from sri.train.schedule import StepBatchSampler, lr_factor
from sri.train.trainer import train
from sri.viz import write_sample_grid

sys.path.insert(0, str(Path(__file__).parent))
from test_trainer_standins import StandInTrainer, base_config  # noqa: E402

HERE = Path(__file__).parent


def _params(trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.tiny.state_dict().items()}


def test_sampler_is_a_function_of_seed_and_step_and_shards_the_global_batch():
    full = StepBatchSampler(10, 4, seed=5)
    assert full.per_epoch == 2
    # an epoch's batches are disjoint and come from one permutation
    b0, b1 = full.indices(0), full.indices(1)
    assert len(set(b0) | set(b1)) == 8
    # resuming at step 3 yields exactly the batches of a sampler started at 0
    it_full = iter(StepBatchSampler(10, 4, seed=5, stop_step=6))
    seq = [next(it_full) for _ in range(6)]
    assert list(StepBatchSampler(10, 4, seed=5, start_step=3, stop_step=6)) == seq[3:]
    # two ranks together cover the global batch in order
    r0 = StepBatchSampler(10, 4, seed=5, rank=0, world_size=2)
    r1 = StepBatchSampler(10, 4, seed=5, rank=1, world_size=2)
    for s in range(5):
        assert r0.indices(s) + r1.indices(s) == full.indices(s)
    with pytest.raises(ConfigError, match="not divisible"):
        StepBatchSampler(10, 3, seed=0, world_size=2)


def test_lr_factor_matches_emorl_schedule():
    # linear warm-up over 10K steps, then x0.5 every 100K (appendix A.4.1)
    assert lr_factor(0, 10_000, 100_000, 0.5) == pytest.approx(1 / 10_000)
    assert lr_factor(4_999, 10_000, 100_000, 0.5) == pytest.approx(0.5)
    assert lr_factor(50_000, 10_000, 100_000, 0.5) == 1.0
    assert lr_factor(250_000, 10_000, 100_000, 0.5) == 0.25
    assert lr_factor(123, 0, 0, 1.0) == 1.0


def test_resume_is_bitwise_exact(tmp_path):
    """2N steps == N steps + resume + N steps (model, optimiser, GECO, RNG, data position)."""
    full = StandInTrainer(base_config(str(tmp_path / "full"), steps=6, checkpoint_every=0))
    full.fit()
    first = StandInTrainer(base_config(str(tmp_path / "split"), steps=3, checkpoint_every=0))
    first.fit()
    assert [s for s, _ in list_checkpoints(tmp_path / "split")] == [3]
    log = MemoryLogger()
    second = StandInTrainer(base_config(str(tmp_path / "split"), steps=6, checkpoint_every=0), logger=log)
    second.fit()
    assert log.info["resumed_from"].endswith("ckpt_00000003.pt")
    a, b = _params(full), _params(second)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert full.gecos["seg"].state_dict() == second.gecos["seg"].state_dict()
    ca = load_checkpoint(tmp_path / "full" / "ckpt_00000006.pt")
    cb = load_checkpoint(tmp_path / "split" / "ckpt_00000006.pt")
    assert torch.equal(ca["rng"]["torch"], cb["rng"]["torch"])
    for sa, sb in zip(ca["optimizer_state"]["state"].values(), cb["optimizer_state"]["state"].values()):
        assert torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
    # the checkpoint has every key of the contract
    for key in ("model_name", "model_options", "model_state", "optimizer_state", "gecos", "step",
                "rng", "data_position", "config"):
        assert key in cb
    assert set(cb["rng"]) >= {"torch", "numpy", "python"}
    # without resume the run starts over
    fresh = MemoryLogger()
    StandInTrainer(base_config(str(tmp_path / "split"), steps=2, resume=False, checkpoint_every=0),
                   logger=fresh).fit()
    assert "resumed_from" not in fresh.info


def test_periodic_eval_and_samples_do_not_change_the_training_stream(tmp_path):
    plain = StandInTrainer(base_config(str(tmp_path / "a"), steps=4))
    plain.fit()
    log = MemoryLogger()
    busy = StandInTrainer(base_config(str(tmp_path / "b"), steps=4, eval_every=1,
                                      eval_metrics=["ari_fg"], sample_every=2), logger=log)
    busy.fit()
    for k, v in _params(plain).items():
        assert torch.equal(v, _params(busy)[k])
    assert [s for s, _ in log.scalars["eval_ari_fg"]] == [1, 2, 3]
    assert any(p.endswith("samples_00000002.png") for p in log.artifacts)
    # training curves and final metrics are logged, checkpoints are info not artifacts
    assert [s for s, _ in log.scalars["loss"]] == [1, 2, 3, 4]
    assert {"seg_nll", "seg_kl", "beta_seg", "lr"} <= set(log.scalars)
    assert log.scalars["nelbo_bpd"][-1][0] == 4
    assert 0.0 < log.scalars["order_consistency"][-1][1] <= 1.0
    assert log.info["checkpoint"].endswith("ckpt_00000004.pt")
    assert all(p.endswith(".pt") for p in log.info["checkpoints"])
    assert not any(p.endswith(".pt") for p in log.artifacts)


def test_nan_guard_skips_steps_and_reloads_last_good_checkpoint(tmp_path):
    class Poisoned(StandInTrainer):
        def build_model(self):
            m = super().build_model()
            m.poison = {4, 5}  # two bad steps: skipped
            return m

    log = MemoryLogger()
    # max_nonfinite_share=1: the reload mechanics alone (the divergence check has its own test)
    t = Poisoned(base_config(str(tmp_path / "a"), steps=8, max_nonfinite=5, max_nonfinite_share=1.0), logger=log)
    t.fit()
    assert log.info["nonfinite_steps"] == 2
    assert "nonfinite_reloads" not in log.info
    assert all(torch.isfinite(v).all() for v in _params(t).values())
    assert all(v == v for _, v in log.scalars["loss"])  # no NaN in the curves

    class Storm(StandInTrainer):
        def build_model(self):
            m = super().build_model()
            m.poison = set(range(5, 10))  # five in a row after the step-3 checkpoint
            return m

        def _load_states(self, ckpt, *, restore_rng):
            self.reloaded = {k: v.clone() for k, v in ckpt["model_state"].items()}
            super()._load_states(ckpt, restore_rng=restore_rng)

    log = MemoryLogger()
    with pytest.warns(UserWarning, match="reloaded .*ckpt_00000003.pt"):
        t = Storm(base_config(str(tmp_path / "b"), steps=12, checkpoint_every=3, max_nonfinite=5,
                              keep_checkpoints=0, max_nonfinite_share=1.0),
                  logger=log).fit()
    assert log.info["nonfinite_reloads"] == 1
    saved = load_checkpoint(tmp_path / "b" / "ckpt_00000003.pt")["model_state"]
    assert all(torch.isfinite(v).all() for v in saved.values())


def test_sigterm_writes_a_checkpoint_then_resume_continues(tmp_path):
    run_dir = tmp_path / "run"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, str(HERE / "test_trainer_standins.py"), "sigterm",
                             str(run_dir), str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in proc.stdout:
            if line.startswith("STEP 3"):
                break
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert "checkpoint written" in err
    ckpts = list_checkpoints(run_dir)
    assert len(ckpts) == 1 and ckpts[0][0] >= 3
    step = ckpts[0][0]
    log = MemoryLogger()
    StandInTrainer(base_config(str(run_dir), steps=step + 2, checkpoint_every=0), logger=log).fit()
    assert log.info["resumed_from"] == str(ckpts[0][1])
    assert [s for s, _ in log.scalars["loss"]] == [step + 1, step + 2]


def test_two_process_gloo_equals_one_process(tmp_path):
    """torchrun with 2 CPU processes (gloo) == 1 process with the same global batch."""
    outs = []
    for nproc in (1, 2):
        out = tmp_path / f"n{nproc}"
        out.mkdir()
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={nproc}", str(HERE / "test_trainer_standins.py"), "ddp",
               str(out / "run"), str(out), "4", "4"]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
        assert res.returncode == 0, res.stderr[-3000:]
        outs.append(out)
    single = torch.load(outs[0] / "rank0.pt")
    r0, r1 = torch.load(outs[1] / "rank0.pt"), torch.load(outs[1] / "rank1.pt")
    for k, v in single["params"].items():
        assert torch.equal(r0["params"][k], r1["params"][k]), k  # DDP keeps ranks in sync
        torch.testing.assert_close(r0["params"][k], v, rtol=1e-5, atol=1e-6)
    # GECO err averaged across ranks: identical state on both ranks, equal to one process's
    assert r0["gecos"] == r1["gecos"]
    assert r0["gecos"]["seg"]["beta"] == pytest.approx(single["gecos"]["seg"]["beta"], rel=1e-6)
    assert r0["gecos"]["seg"]["err_ema"] == pytest.approx(single["gecos"]["seg"]["err_ema"], rel=1e-6)


def test_bad_config_fails_before_training(tmp_path):
    with pytest.raises(ConfigError, match="multiple of 16"):
        train(base_config(str(tmp_path), model_options={"image_size": 20, "num_slots": 3}),
              trainer_cls=StandInTrainer)
    with pytest.raises(ConfigError, match="K must be"):
        train(base_config(str(tmp_path), model_options={"image_size": 16, "num_slots": 0}),
              trainer_cls=StandInTrainer)
    with pytest.raises(ConfigError, match="unknown config option"):
        train(base_config(str(tmp_path), stpes=3), trainer_cls=StandInTrainer)
    with pytest.raises(ConfigError, match="unknown dataset"):
        train(base_config(str(tmp_path), dataset="mnist"), trainer_cls=StandInTrainer)
    assert not list_checkpoints(tmp_path)


def test_resume_refuses_a_different_model(tmp_path):
    StandInTrainer(base_config(str(tmp_path), steps=2)).fit()
    with pytest.raises(ConfigError, match="different model"):
        StandInTrainer(base_config(str(tmp_path), steps=4,
                                   model_options={"image_size": 32, "num_slots": 3})).fit()


def test_sample_grid_png(tmp_path):
    from PIL import Image

    imgs = torch.rand(5, 3, 8, 8)
    masks = torch.softmax(torch.randn(5, 3, 1, 8, 8), 1)
    p = write_sample_grid(imgs, masks, tmp_path / "g.png", cols=4)
    arr = torch.tensor(list(Image.open(p).getdata())).view(2 * 2 * 10, 4 * 10, 3)
    assert torch.equal(arr[:8, :8], (imgs[0].permute(1, 2, 0) * 255).round().to(torch.long))


def test_time_limit_finishes_early_with_checkpoint_and_eval(tmp_path):
    log = MemoryLogger()
    out = StandInTrainer(base_config(str(tmp_path), steps=1000, time_limit=1e-9, checkpoint_every=0),
                         logger=log).fit()
    assert out["step"] == 1 and "time_limit" in log.info["stopped_early"]
    assert list_checkpoints(tmp_path)[-1][0] == 1 and "nelbo_bpd" in out["metrics"]


def _real_smoke(run_dir, **kw):
    from sri.configs import experiment_config

    cfg = experiment_config(3, "d", preset="smoke")
    cfg.update(run_dir=str(run_dir), final_metrics=[], checkpoint_every=0, progress=False, **kw)
    return cfg


def test_real_model_resume_is_bitwise_exact(tmp_path):
    """The same property with the real SRI model and train_step (2 steps == 1 + resume + 1)."""
    train(_real_smoke(tmp_path / "full", steps=2))
    train(_real_smoke(tmp_path / "split", steps=1))
    train(_real_smoke(tmp_path / "split", steps=2))
    a = load_checkpoint(tmp_path / "full" / "ckpt_00000002.pt")
    b = load_checkpoint(tmp_path / "split" / "ckpt_00000002.pt")
    for k, v in a["model_state"].items():
        assert torch.equal(v, b["model_state"][k]), k
    assert a["gecos"] == b["gecos"]


def test_real_model_bf16_autocast_runs(tmp_path):
    log = MemoryLogger()
    train(_real_smoke(tmp_path, steps=1, amp="bf16"), logger=log)
    assert all(math.isfinite(v) for _, v in log.scalars["loss"])


@pytest.mark.slow
def test_real_model_torch_compile(tmp_path):
    """torch.compile on CPU (needs a C compiler; about 2 minutes)."""
    log = MemoryLogger()
    train(_real_smoke(tmp_path, steps=2, compile=True), logger=log)
    assert [s for s, _ in log.scalars["loss"]] == [1, 2]
    ckpt = load_checkpoint(tmp_path / "ckpt_00000002.pt")
    assert not any(k.startswith("_orig_mod") for k in ckpt["model_state"])
