"""Issue 13, runs that end badly after the work is done: a missing optional piece or a failing
metric is skipped with a recorded warning and the run completes (5)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import sri.metrics.fid as fid_module
from sri.train.loggers import MemoryLogger

sys.path.insert(0, str(Path(__file__).parent))
from test_experiments_support import ROOT, read_file_run  # noqa: E402
from test_trainer_standins import StandInTrainer, base_config  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def no_torch_fidelity(monkeypatch):
    """As after a plain `pip install -e .`: torch-fidelity is not importable."""
    monkeypatch.setattr(fid_module, "_API", None)
    for name in [m for m in sys.modules if m == "torch_fidelity" or m.startswith("torch_fidelity.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)


class FragileMetrics(StandInTrainer):
    """FID through the real feature-extractor path; ARI-FG raises inside the metric."""

    def evaluate(self, model, metrics, *, final):
        if "fid" in metrics:
            fid_module.build_feature_extractor("inception-v3-compat")
        if "ari_fg" in metrics:
            raise ValueError("ARI-FG needs ground-truth masks")
        return super().evaluate(model, metrics, final=final)


def test_fid_path_imports_cleanly_without_torch_fidelity(no_torch_fidelity):
    import importlib

    import sri.evaluate
    import sri.metrics

    importlib.reload(sri.metrics)
    assert callable(sri.evaluate.evaluate)
    with pytest.raises(ImportError, match="pip install --no-deps torch-fidelity"):
        fid_module.build_feature_extractor("inception-v3-compat")


def test_missing_torch_fidelity_and_a_raising_metric_are_skipped_and_the_rest_logged(
        tmp_path, no_torch_fidelity, capfd):
    log = MemoryLogger()
    cfg = base_config(str(tmp_path / "ck"), steps=2, checkpoint_every=0,
                      final_metrics=["fid", "ari_fg", "nelbo_bpd", "sri_loss_bpd"])
    result = FragileMetrics(cfg, logger=log).fit()
    assert set(result["metrics"]) >= {"nelbo_bpd", "sri_loss_bpd", "order_consistency"}
    assert "nelbo_bpd" in log.scalars and "sri_loss_bpd" in log.scalars
    assert "fid" not in log.scalars and "ari_fg" not in log.scalars
    skipped = log.info["metrics_skipped"]
    assert set(skipped) == {"fid", "ari_fg"}
    assert "torch-fidelity" in skipped["fid"] and "ground-truth masks" in skipped["ari_fg"]
    assert "fid_skipped" in log.info
    err = capfd.readouterr().err
    assert "fid skipped" in err and "ari_fg skipped" in err


def test_smoke_run_without_torch_fidelity_completes_with_its_other_metrics(tmp_path):
    """The table script end to end with torch-fidelity unimportable: COMPLETED, bpd logged."""
    store = tmp_path / "runs"
    script = ROOT / "experiments" / "table3_ablation.py"
    code = ("import runpy, sys; sys.modules['torch_fidelity'] = None; sys.argv = sys.argv[1:]; "
            "runpy.run_path(sys.argv[0], run_name='__main__')")
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT / "experiments"), str(ROOT)]))
    env.pop("SRI_MONGO_URL", None)
    res = subprocess.run([sys.executable, "-c", code, str(script), "with", "smoke", "steps=1",
                          "num_order=0", f"run_dir={tmp_path / 'ck'}", "-F", str(store)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    run = read_file_run(store)
    assert run["run"]["status"] == "COMPLETED"
    assert "sri_loss_bpd" in run["metrics"] and "nelbo_bpd" in run["metrics"]
    assert "fid" not in run["metrics"]
    assert "torch-fidelity" in run["info"]["metrics_skipped"]["fid"]


# -- item 11 ------------------------------------------------------------------------------------
def _usage(free: int):
    import shutil

    return lambda path: shutil._ntuple_diskusage(10 ** 12, 10 ** 12 - free, free)


def test_full_disk_is_one_clear_line_at_the_start(tmp_path, monkeypatch):
    import shutil

    import sri.checkpoint as ck

    monkeypatch.setattr(shutil, "disk_usage", _usage(1000))
    log = MemoryLogger()
    run_dir = tmp_path / "ck"
    with pytest.raises(ck.RunDirNotWritable, match=f"cannot write checkpoints to {run_dir}: disk full"):
        StandInTrainer(base_config(str(run_dir), steps=50), logger=log).fit()
    assert not log.scalars  # refused before the first step, not at the first checkpoint


def test_read_only_run_folder_is_refused_at_the_start(tmp_path, monkeypatch):
    import errno

    import sri.checkpoint as ck

    def read_only(*args, **kw):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(ck.tempfile, "mkstemp", read_only)
    log = MemoryLogger()
    with pytest.raises(ck.RunDirNotWritable, match="read-only file system"):
        StandInTrainer(base_config(str(tmp_path / "ck"), steps=50), logger=log).fit()
    assert not log.scalars


def test_disk_filling_up_during_training_is_one_clear_line(tmp_path, monkeypatch):
    import errno

    import sri.checkpoint as ck
    import sri.train.trainer as tr

    def full(path, state):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tr, "save_checkpoint", full)
    with pytest.raises(ck.RunDirNotWritable, match=r"cannot write checkpoints to .*: disk full$"):
        StandInTrainer(base_config(str(tmp_path / "ck"), steps=4, checkpoint_every=2)).fit()


def test_table_script_checks_the_runs_folder_before_starting(tmp_path, monkeypatch, capsys):
    import shutil

    sys.path.insert(0, str(ROOT / "experiments"))
    import _common

    monkeypatch.setattr(shutil, "disk_usage", _usage(1000))
    monkeypatch.delenv("SRI_MONGO_URL", raising=False)
    monkeypatch.setenv("SRI_RUNS_DIR", str(tmp_path / "runs"))
    ex = _common.make_experiment(3)
    with pytest.raises(SystemExit) as exit_info:
        _common.run(ex, ["table3_ablation.py", "with", "smoke"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"cannot write runs to {tmp_path / 'runs'}: disk full" in err
    assert not list((tmp_path / "runs").glob("[0-9]*"))
