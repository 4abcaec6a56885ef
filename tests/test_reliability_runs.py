"""Issue 13, runs that end badly after the work is done: a missing optional piece or a failing
metric is skipped with a recorded warning and the run completes (5)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import sri.metrics.fid as fid_module
from sri.train.trainer import MemoryLogger

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
