"""Checkpoint writes on a full disk and after a killed write (issue 27, reliability round 2)."""
import errno
import os
import subprocess
import uuid

import pytest
import torch

from sri.checkpoint import save_checkpoint
from sri.configs import experiment_config
from sri.train.trainer import Trainer


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 256 KiB tmpfs (root only); skips with the reason where mounting is not allowed."""
    mnt = tmp_path / f"full-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True,
                       text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or 'not root'})")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


def test_full_disk_error_from_torch_becomes_enospc(tiny_tmpfs):
    """torch.save raises RuntimeError ('unexpected pos') on a full disk; the trainer needs OSError."""
    with pytest.raises(OSError) as info:
        save_checkpoint(tiny_tmpfs / "ckpt_00000001.pt", {"w": torch.zeros(400_000)})
    assert info.value.errno == errno.ENOSPC
    assert not list(tiny_tmpfs.glob("*.tmp"))  # no half-written file left behind


def test_stale_checkpoint_temporaries_are_removed_at_start(tmp_path, one_thread):
    cfg = experiment_config(2, "genv2_g", "blocks", "smoke")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    stale = run_dir / "ckpt_00000002.pt.k3j2h1.tmp"
    stale.write_bytes(os.urandom(1024))
    other = run_dir / "notes.tmp"
    other.write_text("not ours")
    cfg.update(run_dir=str(run_dir), steps=2, final_metrics=[], num_order=0)
    Trainer(cfg).fit()
    assert not stale.exists() and other.exists()


def test_a_run_that_diverges_fails_instead_of_completing(tmp_path, one_thread):
    """Issue 27: `with smoke steps=60 lr=1e6` had 50 of 60 steps non-finite and ended COMPLETED."""
    from sri.train.loggers import MemoryLogger
    from sri.train.trainer import TrainingDiverged

    cfg = experiment_config(3, "d", "blocks", "smoke")
    cfg.update(run_dir=str(tmp_path / "run"), steps=60, lr=1e6, final_metrics=[], num_order=0, log_every=5)
    logger = MemoryLogger()
    with pytest.raises(TrainingDiverged, match="non-finite loss"):
        Trainer(cfg, logger).fit()
    assert logger.scalars["nonfinite_steps"][-1][1] > 0  # logged, so reports can flag it


def test_a_report_write_that_fails_keeps_the_previous_file(tmp_path):
    """Issue 27: a full disk left 0-byte table3.csv / figure4_*.png over good ones."""
    from sri.atomicio import atomic_open, atomic_write_text

    path = atomic_write_text(tmp_path / "table3.md", "good\n")
    with pytest.raises(OSError):
        with atomic_open(path, "w") as f:
            f.write("half")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert path.read_text() == "good\n" and sorted(p.name for p in tmp_path.iterdir()) == ["table3.md"]


def test_report_files_on_a_full_disk_stay_whole(tiny_tmpfs):
    from sri.atomicio import atomic_write_text

    path = atomic_write_text(tiny_tmpfs / "table3.md", "good\n")
    with pytest.raises(OSError):
        atomic_write_text(path, "x" * 400_000)  # more than the 256 KiB file system holds
    assert path.read_text() == "good\n" and [p.name for p in tiny_tmpfs.iterdir()] == ["table3.md"]


def test_a_full_run_store_keeps_the_metrics_and_fails_the_run(tiny_tmpfs):
    """Issue 27: Sacred's file observer left metrics.json at 0 bytes on a full disk and the run COMPLETED."""
    import json

    from sacred import Experiment

    from sri.tracking.file_observer import RunStoreWriteError, SafeFileStorageObserver, raise_if_store_failed

    ex = Experiment("full_disk", save_git_info=False)
    obs = SafeFileStorageObserver(str(tiny_tmpfs / "runs"))
    ex.observers.append(obs)

    @ex.main
    def main(_run):
        for step in range(5):
            _run.log_scalar("loss", float(step), step)
        _run._emit_heartbeat()  # written while there is room
        with open(tiny_tmpfs / "filler", "wb", buffering=0) as f:  # now the disk fills up (a real ENOSPC)
            try:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
            except OSError:
                pass
        for step in range(5, 400):
            _run.log_scalar("loss", float(step), step)
        _run._emit_heartbeat()
        raise_if_store_failed(_run.observers)

    run = ex._create_run()
    with pytest.raises(RunStoreWriteError, match="disk full"):
        run()
    metrics = json.loads((tiny_tmpfs / "runs" / "1" / "metrics.json").read_text())
    assert metrics["loss"]["steps"][:5] == [0, 1, 2, 3, 4]  # what was logged before the disk filled survives
    assert obs.write_error is not None and str(tiny_tmpfs / "runs") in str(obs.write_error)
    assert not list((tiny_tmpfs / "runs" / "1").glob(".*.tmp*"))
