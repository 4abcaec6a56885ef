"""Issue 13, reports: only preset=paper runs unless told otherwise, with preset and steps shown (6);
checkpoint paths valid from anywhere, and "no figure written" is a failure when runs exist (7)."""
from __future__ import annotations

import csv
import datetime as dt
import sys
from pathlib import Path

import pytest

from sri.report.__main__ import main as report_main
from sri.tracking import load_runs
from sri.train.loggers import MemoryLogger

sys.path.insert(0, str(Path(__file__).parent))
from test_report_util import write_run  # noqa: E402
from test_trainer_standins import StandInTrainer, base_config  # noqa: E402


# -- item 6 -------------------------------------------------------------------------------------
def _mixed_store(store: Path) -> None:
    """A real (paper) run and a later 4-step smoke run of the same (table, row, dataset, seed)."""
    write_run(store, 1, table=2, row="sri_g", dataset="shapestacks", seed=0,
              metrics={"fid": [(500_000, 74.0)]}, start=dt.datetime(2024, 1, 1),
              config_extra={"preset": "paper", "steps": 500_000})
    write_run(store, 2, table=2, row="sri_g", dataset="shapestacks", seed=0,
              metrics={"fid": [(4, 300.0)]}, start=dt.datetime(2024, 6, 1),
              config_extra={"preset": "smoke", "steps": 4})


def _fid_line(out: Path) -> dict:
    lines = list(csv.DictReader(open(out / "table2.csv")))
    return [l for l in lines if (l["row"], l["dataset"], l["metric"]) == ("sri_g", "shapestacks", "fid")][0]


def test_tables_and_check_paper_use_only_paper_runs_by_default(tmp_path, capsys):
    store = tmp_path / "runs"
    _mixed_store(store)
    assert report_main(["tables", "--store", str(store), "--out", str(tmp_path / "t"), "--order", "off"]) == 0
    err = capsys.readouterr().err
    line = _fid_line(tmp_path / "t")
    assert float(line["mean"]) == 74.0 and line["presets"] == "paper" and line["steps"] == "500000"
    md = (tmp_path / "t" / "table2.md").read_text()
    assert "seed 0: preset paper, 500000 steps (run 1)" in md
    assert "preset=paper" in err and "1 smoke" in err and "--preset" in err

    report_main(["check-paper", "--store", str(store), "--out", str(tmp_path / "c"), "--order", "off"])
    out = capsys.readouterr().out
    fid_row = [l for l in out.splitlines() if "| SRI-G | shapestacks | fid |" in l][0]
    assert "74.0" in fid_row and "paper, 500000 steps" in fid_row and "300" not in fid_row


@pytest.mark.parametrize("preset,expected,presets", [("smoke", 300.0, "smoke"), ("all", 300.0, "smoke"),
                                                     ("paper", 74.0, "paper")])
def test_preset_option_selects_runs(tmp_path, preset, expected, presets):
    store = tmp_path / "runs"
    _mixed_store(store)
    assert report_main(["tables", "--store", str(store), "--out", str(tmp_path / "t"), "--order", "off",
                        "--preset", preset]) == 0
    line = _fid_line(tmp_path / "t")
    assert float(line["mean"]) == expected and line["presets"] == presets


# -- item 7 -------------------------------------------------------------------------------------
def test_recorded_checkpoint_paths_are_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    log = MemoryLogger()
    StandInTrainer(base_config("relative/ck", steps=2, checkpoint_every=1), logger=log).fit()
    for p in [log.info["checkpoint"], log.info["run_dir"], *log.info["checkpoints"]]:
        assert Path(p).is_absolute(), p
    monkeypatch.chdir(tmp_path.parent)  # elsewhere: the recorded path still works
    assert Path(log.info["checkpoint"]).is_file()


def test_old_relative_and_archived_checkpoints_are_found_from_anywhere(tmp_path, monkeypatch):
    store = tmp_path / "proj" / "runs"
    ckpt = tmp_path / "proj" / "runs" / "checkpoints" / "ckpt_00000004.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"x")
    write_run(store, 1, table=3, row="d", dataset="blocks", seed=0, metrics={"fid": 1.0},
              info={"checkpoint": "runs/checkpoints/ckpt_00000004.pt"})
    monkeypatch.chdir(tmp_path)
    run = load_runs(store)[0]
    assert run.checkpoint_path().resolve() == ckpt.resolve()
    # a later resume=False run moved it to archive/<time>/
    archived = ckpt.parent / "archive" / "20240101-000000" / ckpt.name
    archived.parent.mkdir(parents=True)
    ckpt.rename(archived)
    assert run.checkpoint_path().resolve() == archived.resolve()


def test_figures_exit_non_zero_when_runs_exist_but_nothing_is_written(tmp_path, monkeypatch, capsys):
    store = tmp_path / "runs"
    write_run(store, 1, table=3, row="d", dataset="blocks", seed=0, metrics={"fid": 1.0},
              info={"checkpoint": "elsewhere/ckpt_00000004.pt"})
    monkeypatch.chdir(tmp_path)
    code = report_main(["figures", "--store", str(store), "--out", str(tmp_path / "figs")])
    err = capsys.readouterr().err
    assert code == 1
    assert "no figures written although 1 completed run(s) exist" in err
    assert "elsewhere/ckpt_00000004.pt" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert report_main(["figures", "--store", str(empty), "--out", str(tmp_path / "figs")]) == 0


# -- item 8 -------------------------------------------------------------------------------------
SECRET_URL = "mongodb://u:secret@127.0.0.1:1/sri"


class _Refusing:
    """A pymongo.MongoClient stand-in whose server refuses the credentials."""

    def __init__(self, *args, **kw) -> None:
        self.admin = self

    def command(self, *args, **kw):
        from pymongo.errors import OperationFailure

        raise OperationFailure("Authentication failed.", code=18)

    def __getitem__(self, name):
        return self

    def find(self, *args, **kw):
        return self.command()

    def close(self) -> None:
        pass


def test_redact_removes_credentials_anywhere_in_a_message():
    from sri.credentials import redact

    msg = redact(f"cannot reach {SECRET_URL} (also mongodb+srv://a:b@h/x)")
    assert "secret" not in msg and ":b@" not in msg and "127.0.0.1:1" in msg and "***@" in msg


def test_check_paper_with_an_unreachable_url_prints_no_password(tmp_path, monkeypatch, capsys):
    import sri.tracking.store as store_module

    monkeypatch.setenv("SRI_MONGO_URL", SECRET_URL)
    real = store_module._load_mongo
    monkeypatch.setattr(store_module, "_load_mongo", lambda spec, **kw: real(spec, timeout_ms=200, **kw))
    code = report_main(["check-paper", "--out", str(tmp_path / "t")])
    cap = capsys.readouterr()
    assert code == 2
    assert "secret" not in cap.err + cap.out and "127.0.0.1:1" in cap.err


def test_authentication_failure_is_named_and_never_falls_back(tmp_path, monkeypatch, capsys):
    import pymongo
    from sacred import Experiment

    from sri.tracking.observers import MongoAuthError, attach_observers

    monkeypatch.setattr(pymongo, "MongoClient", _Refusing)
    monkeypatch.setenv("SRI_MONGO_URL", SECRET_URL)
    code = report_main(["check-paper", "--out", str(tmp_path / "t")])
    err = capsys.readouterr().err
    assert code == 2 and "authentication failed" in err and "does not answer" not in err
    assert "secret" not in err
    ex = Experiment("t")
    with pytest.raises(MongoAuthError, match="authentication failed") as info:
        attach_observers(ex, file_dir=str(tmp_path / "runs"))  # from $SRI_MONGO_URL
    assert "secret" not in str(info.value)
    assert not ex.observers and not (tmp_path / "runs").exists()  # no silent file store


def test_explicit_mongo_flag_does_not_fall_back_to_the_file_store(tmp_path):
    from test_experiments_support import run_script

    res = run_script("table3_ablation.py", ["with", "smoke", "steps=1", "-m", "mongodb://u:secret@127.0.0.1:9/sri",
                                            "-F", str(tmp_path / "F")], cwd=tmp_path, timeout=120)
    assert res.returncode == 2
    assert "not falling back to the file store" in res.stderr and "secret" not in res.stderr + res.stdout
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "runs").exists()


def test_omniboard_prints_no_password(monkeypatch, capsys):
    import sri.report.omniboard as ob

    class FakeBoard:
        def __init__(self, db_url, **kw):
            self.url, self.process, self.log_path = "http://127.0.0.1:9000/", None, "log"

        def start(self):
            return self

        def stop(self):
            pass

    def refuse(*args, **kw):
        raise RuntimeError(f"cannot connect to {SECRET_URL}")

    monkeypatch.setattr(ob, "Omniboard", FakeBoard)
    monkeypatch.setattr(ob, "register_metric_columns", refuse)
    ob.main(mongo=SECRET_URL)
    cap = capsys.readouterr()
    assert "secret" not in cap.out + cap.err
    assert "Omniboard for mongodb://***@127.0.0.1:1/ (db sri)" in cap.out


def test_omniboard_gets_the_url_from_the_environment_not_the_command_line(tmp_path, monkeypatch):
    import sri.report.omniboard as ob

    prefix = tmp_path / "prefix"
    (prefix / "node_modules" / "omniboard" / "dist").mkdir(parents=True)
    (prefix / "node_modules" / "omniboard" / "dist" / "start.js").write_text("// stand-in")
    monkeypatch.setattr(ob.shutil, "which", lambda name: "/usr/bin/node")
    monkeypatch.setenv("OMNIBOARD_CONFIG", "/elsewhere.json")
    seen = {}

    def fake_popen(cmd, env=None, **kw):
        seen["cmd"], seen["env"] = cmd, env
        raise RuntimeError("stop here")

    monkeypatch.setattr(ob.subprocess, "Popen", fake_popen)
    board = ob.Omniboard(SECRET_URL, prefix=prefix, install=False, log=tmp_path / "log")
    assert "secret" not in " ".join(board.command())
    with pytest.raises(RuntimeError, match="stop here"):
        board.start()
    assert "secret" not in " ".join(seen["cmd"])
    assert seen["env"]["MONGO_URI"] == SECRET_URL and "OMNIBOARD_CONFIG" not in seen["env"]
