"""Issue 13, bad input: a clear error naming the key and the fix, no traceback, nothing half-written
(table scripts: item 9; `sri data`: item 10)."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

import sri.configs as C
from sri.data.cli import main as data_main

sys.path.insert(0, str(Path(__file__).parent))
from test_experiments_support import ROOT, run_script  # noqa: E402

sys.path.insert(0, str(ROOT / "experiments"))


# -- item 9 -------------------------------------------------------------------------------------
@pytest.mark.parametrize("args,message", [
    (["num_slots=abc"], "num_slots must be a whole number, got 'abc'"),
    (["lr=abc"], "lr must be a number > 0, got 'abc'"),
    (["model_options.num_slots=6"], "model_options.num_slots=6 contradicts num_slots=3; set only num_slots=6"),
    (["num_slots=3", "model_options.num_slots=6"], "model_options.num_slots=6 contradicts num_slots=3"),
    (["stpes=3"], "did you mean 'steps' instead of 'stpes'?"),
])
def test_bad_values_are_one_clear_line_and_no_run(tmp_path, args, message):
    store = tmp_path / "runs"
    res = run_script("table3_ablation.py", ["with", "smoke", *args, "-F", str(store)], cwd=tmp_path,
                     timeout=120)
    assert res.returncode == 2, res.stderr[-2000:]
    assert message in res.stderr
    assert "Traceback" not in res.stderr
    assert not list(store.glob("[0-9]*"))  # no FAILED (or any) run left in the store


def test_validate_config_rejects_non_numbers_and_contradictions():
    base = {"model_options": {"image_size": 16, "num_slots": 3}}
    for key, bad in [("lr", "abc"), ("lr", 0.0), ("geco_lr", -1.0), ("geco_alpha", 1.5),
                     ("geco_goal", float("nan")), ("grad_clip", "x")]:
        with pytest.raises(C.ConfigError, match=key):
            C.validate_config({**base, key: bad})
    with pytest.raises(C.ConfigError, match="contradicts image_size=16"):
        C.validate_config({"image_size": 16, "model_options": {"image_size": 32, "num_slots": 3}})
    with pytest.raises(C.ConfigError, match="num_slots must be a whole number"):
        C.experiment_config(3, "d", preset="smoke", num_slots="abc")
    # model_options alone (no top-level num_slots given) stays valid
    assert C.validate_config(base)["model_options"]["num_slots"] == 3


def test_table_script_help_shows_its_rows_and_an_example(tmp_path):
    res = run_script("table3_ablation.py", ["--help"], cwd=tmp_path, timeout=120)
    assert res.returncode == 0
    out = res.stdout
    assert "Table 3: SRI-G ablations" in out
    assert "Shared Sacred plumbing" not in out  # not _common.py's docstring
    assert "d) full SRI-G  [default]" in out and "c) no crossOrderKL" in out
    assert "Example: python experiments/table3_ablation.py with smoke d" in out
    res2 = run_script("table2_main.py", ["--help"], cwd=tmp_path, timeout=120)
    assert "sri_emorl" in res2.stdout and "SRI-EMORL" in res2.stdout and "not implemented" not in res2.stdout


def test_table_script_is_recorded_as_the_main_file():
    module = importlib.import_module("table3_ablation")
    assert Path(module.ex.mainfile.filename).name == "table3_ablation.py"
    assert {Path(s.filename).name for s in module.ex.sources} >= {"table3_ablation.py", "_common.py"}


# -- item 10 ------------------------------------------------------------------------------------
@pytest.mark.parametrize("args,message", [
    (["synth", "blocks", "--num", "-5"], "--num must be an integer >= 1, got -5"),
    (["synth", "blocks", "--num", "10", "--size", "8"], "--size 8 is not valid: image sizes must be a multiple of 16"),
    (["synth", "blocks", "--num", "10", "--size", "50"], "--size 50 is not valid"),
    (["synth", "blocks", "--num", "10", "--num-test", "0"], "--num-test must be an integer >= 1"),
    (["convert", "--dataset", "clevr6", "--src", "SRC", "--test-size", "-5"],
     "--test-size must be an integer >= 0, got -5"),
    (["convert", "--dataset", "clevr6", "--src", "SRC", "--image-size", "50"], "--image-size 50 is not valid"),
    (["convert", "--dataset", "clevr6", "--src", "SRC", "--test-size", "3", "--val-size", "2",
      "--limit", "5"], "--limit 5 leaves no training scenes"),
])
def test_sri_data_refuses_bad_sizes_up_front(tmp_path, capsys, args, message):
    src = tmp_path / "clevr.tfrecords"
    src.write_bytes(b"")
    out = tmp_path / "out"
    argv = [str(src) if a == "SRC" else a for a in args] + ["--out", str(out), "--no-progress"]
    assert data_main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert not out.exists()  # nothing half-written
