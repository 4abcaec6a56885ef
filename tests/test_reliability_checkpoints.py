"""Issue 13, checkpoints: a fresh start never deletes or reuses another run's checkpoints (1), safe
loading (2), one process per run folder (3), truncated latest checkpoint (4), resume messages (12)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sri.checkpoint import CheckpointUntrusted, RunDirLock, RunDirLocked, load_checkpoint, load_model, save_checkpoint
from sri.train.loggers import MemoryLogger
from sri.train.rundir import ARCHIVE_DIR, list_checkpoints

sys.path.insert(0, str(Path(__file__).parent))
from test_trainer_standins import StandInTrainer, base_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


def _fit(run_dir: Path, **kw):
    log = MemoryLogger()
    trainer = StandInTrainer(base_config(str(run_dir), **kw), logger=log)
    trainer.fit()
    return trainer, log


def _steps(run_dir: Path) -> list[int]:
    return [s for s, _ in list_checkpoints(run_dir)]


# -- item 1 -------------------------------------------------------------------------------------
def test_fresh_start_keeps_its_own_checkpoints_and_archives_the_older_run(tmp_path):
    run_dir = tmp_path / "ck"
    _fit(run_dir, steps=8, checkpoint_every=2, keep_checkpoints=2)
    assert _steps(run_dir) == [6, 8]
    old_bytes = (run_dir / "ckpt_00000008.pt").read_bytes()

    # the fresh run got less far than the old one: its checkpoints used to be pruned at once
    fresh, log = _fit(run_dir, steps=4, checkpoint_every=2, keep_checkpoints=2, resume=False)
    assert _steps(run_dir) == [2, 4]
    recorded = Path(log.info["checkpoint"])
    assert recorded.is_file() and recorded.name == "ckpt_00000004.pt"
    assert all(Path(p).is_file() for p in log.info["checkpoints"])
    assert "resumed_from" not in log.info
    # the older run's checkpoints are kept, untouched, in a timestamped archive folder
    archived = list((run_dir / ARCHIVE_DIR).glob("*/ckpt_*.pt"))
    assert sorted(p.name for p in archived) == ["ckpt_00000006.pt", "ckpt_00000008.pt"]
    assert [p for p in archived if p.name == "ckpt_00000008.pt"][0].read_bytes() == old_bytes
    assert Path(log.info["archived_previous_run"]).is_dir()

    # the next plain rerun resumes from the fresh run, not from the archived one
    again, log2 = _fit(run_dir, steps=4, checkpoint_every=2, keep_checkpoints=2)
    assert log2.info["resumed_from"] == str(run_dir / "ckpt_00000004.pt")
    for k, v in fresh.tiny.state_dict().items():
        assert torch.equal(v, again.tiny.state_dict()[k]), k


def test_pruning_removes_only_this_runs_files(tmp_path):
    run_dir = tmp_path / "ck"
    run_dir.mkdir()
    stranger = run_dir / "ckpt_00000099.pt.corrupt"
    stranger.write_bytes(b"not ours")
    notes = run_dir / "notes.txt"
    notes.write_text("keep me")
    _, log = _fit(run_dir, steps=6, checkpoint_every=1, keep_checkpoints=2)
    assert _steps(run_dir) == [5, 6]
    assert stranger.read_bytes() == b"not ours" and notes.read_text() == "keep me"


# -- item 2 -------------------------------------------------------------------------------------
class _Evil:
    """Unpickling this runs code (creates a folder): what a crafted checkpoint can do."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_checkpoints_load_with_weights_only_and_crafted_files_run_no_code(tmp_path):
    _fit(tmp_path / "ck", steps=2, checkpoint_every=0)
    path = tmp_path / "ck" / "ckpt_00000002.pt"
    ckpt = torch.load(path, weights_only=True)  # the trainer writes nothing that needs pickle
    assert ckpt["step"] == 2 and isinstance(ckpt["rng"]["numpy"]["keys"], torch.Tensor)

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"model_name": "sri", "model_options": {}, "model_state": {}, "x": _Evil(marker)}, evil)
    with pytest.raises(CheckpointUntrusted, match="--trust-checkpoint"):
        load_checkpoint(evil)
    with pytest.raises(CheckpointUntrusted):
        load_model(evil)
    assert not marker.exists()

    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-m", "sri.evaluate", str(evil), "--metrics", "nelbo_bpd",
                          "--device", "cpu"], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 2 and "--trust-checkpoint" in res.stderr
    assert "Traceback" not in res.stderr
    assert not marker.exists()


def test_old_format_checkpoint_needs_explicit_trust(tmp_path):
    run_dir = tmp_path / "ck"
    _fit(run_dir, steps=2, checkpoint_every=0)
    path = run_dir / "ckpt_00000002.pt"
    # an old-format checkpoint: numpy's RNG state pickled as a tuple with an ndarray
    old = torch.load(path, weights_only=True)
    old["rng"]["numpy"] = np.random.get_state()
    save_checkpoint(path, old)
    with pytest.raises(CheckpointUntrusted):
        load_checkpoint(path)
    assert load_checkpoint(path, trust=True)["step"] == 2
    with pytest.raises(CheckpointUntrusted, match="trust"):
        _fit(run_dir, steps=3, checkpoint_every=0)
    trainer = StandInTrainer(base_config(str(run_dir), steps=3, checkpoint_every=0),
                             logger=MemoryLogger(), trust_checkpoint=True)
    trainer.fit()
    # what the trusted resume wrote is in the safe format again
    assert torch.load(run_dir / "ckpt_00000003.pt", weights_only=True)["step"] == 3


# -- item 3 -------------------------------------------------------------------------------------
def _hold_lock(run_dir: Path) -> subprocess.Popen:
    """Another process that holds the run folder's lock (returns once it has it)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from sri.checkpoint import RunDirLock; "
         "RunDirLock(sys.argv[1]).acquire(); print('LOCKED', flush=True); time.sleep(120)", str(run_dir)],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert holder.stdout.readline().strip() == "LOCKED"
    return holder


def test_second_process_in_the_same_run_folder_is_refused(tmp_path):
    run_dir = tmp_path / "ck"
    holder = _hold_lock(run_dir)
    try:
        with pytest.raises(RunDirLocked, match=f"pid {holder.pid}"):
            _fit(run_dir, steps=2)
        assert not list_checkpoints(run_dir)  # nothing written by the refused run
    finally:
        holder.kill()
        holder.wait()
    # the operating system dropped the dead holder's lock: no stale lock
    _fit(run_dir, steps=2)
    assert _steps(run_dir) == [2]


def test_lock_is_exclusive_and_released(tmp_path):
    with RunDirLock(tmp_path / "d"):
        with pytest.raises(RunDirLocked, match="in use by another training process"):
            RunDirLock(tmp_path / "d").acquire()
    with RunDirLock(tmp_path / "d"):
        pass


# -- item 4 -------------------------------------------------------------------------------------
def test_truncated_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, capfd):
    run_dir = tmp_path / "ck"
    _fit(run_dir, steps=4, checkpoint_every=2, keep_checkpoints=0)
    latest = run_dir / "ckpt_00000004.pt"
    data = latest.read_bytes()
    latest.write_bytes(data[: len(data) // 2])  # e.g. the disk filled up during a copy
    capfd.readouterr()
    _, log = _fit(run_dir, steps=6, checkpoint_every=2, keep_checkpoints=0)
    err = capfd.readouterr().err
    assert log.info["resumed_from"] == str(run_dir / "ckpt_00000002.pt")
    aside = run_dir / "ckpt_00000004.pt.corrupt"
    assert aside.read_bytes() == data[: len(data) // 2]  # kept aside, not deleted
    assert log.info["corrupt_checkpoints"] == [str(aside)]
    assert "ckpt_00000004.pt" in err and "corrupt" in err and "resuming from" in err
    assert _steps(run_dir)[-1] == 6 and Path(log.info["checkpoint"]).is_file()


def test_no_readable_checkpoint_starts_over(tmp_path, capfd):
    run_dir = tmp_path / "ck"
    run_dir.mkdir()
    (run_dir / "ckpt_00000002.pt").write_bytes(b"garbage")
    _, log = _fit(run_dir, steps=2, checkpoint_every=0)
    assert "resumed_from" not in log.info
    assert (run_dir / "ckpt_00000002.pt.corrupt").read_bytes() == b"garbage"
    assert "starting from step 0" in capfd.readouterr().err


# -- item 12 ------------------------------------------------------------------------------------
def test_resume_is_announced_and_a_lower_steps_says_nothing_is_trained(tmp_path, capfd):
    run_dir = tmp_path / "ck"
    _fit(run_dir, steps=3, checkpoint_every=0)
    capfd.readouterr()
    _fit(run_dir, steps=4, checkpoint_every=0)
    err = capfd.readouterr().err
    assert f"resuming from {run_dir / 'ckpt_00000003.pt'} at step 3" in err
    assert "nothing will be trained" not in err
    _, log = _fit(run_dir, steps=2, checkpoint_every=0)
    err = capfd.readouterr().err
    assert "at step 4" in err and "steps=2" in err and "nothing will be trained" in err
    assert Path(log.info["checkpoint"]).name == "ckpt_00000004.pt"


def test_table_script_refuses_a_busy_run_folder_in_one_line(tmp_path):
    from test_experiments_support import run_script

    run_dir = tmp_path / "ck"
    holder = _hold_lock(run_dir)
    try:
        store = tmp_path / "runs"
        res = run_script("table3_ablation.py", ["with", "smoke", f"run_dir={run_dir}", "-F", str(store)],
                         cwd=tmp_path, timeout=120)
    finally:
        holder.kill()
        holder.wait()
    assert res.returncode == 2
    assert f"is in use by another training process (pid {holder.pid}" in res.stderr
    assert "Traceback" not in res.stderr
    assert not list(store.glob("[0-9]*"))  # refused before a run was recorded
