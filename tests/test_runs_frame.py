"""`sri.tracking.runs_frame`, the sweep filter of the tables and `python -m sri.report runs`."""
from __future__ import annotations

import csv
import datetime as dt

import numpy as np
import pytest
from test_report_util import write_run

from sri.report.__main__ import main as report_main
from sri.report.tables import collect_results
from sri.tracking import config_fingerprint, load_runs, runs_frame


def _store(tmp_path):
    write_run(tmp_path, 1, table=3, row="d", dataset="blocks", seed=0,
              metrics={"fid": 40.0, "loss": [(0, 9.0), (7, 2.0)]}, config_extra={"sweep": "s1"})
    write_run(tmp_path, 2, table=3, row="d", dataset="blocks", seed=1,
              metrics={"fid": 44.0, "s_acc": 0.5}, config_extra={"sweep": "s1"})
    write_run(tmp_path, 3, table=3, row="d", dataset="blocks", seed=2, metrics={"fid": 90.0},
              info={"sweep": "s2"})
    write_run(tmp_path, 4, table=3, row="a", dataset="blocks", seed=0, metrics={"loss": [(3, 1.0)]},
              status="RUNNING", start=dt.datetime(2025, 1, 1))
    return tmp_path


def test_runs_frame_one_row_per_run(tmp_path):
    frame = runs_frame(_store(tmp_path))
    assert list(frame["id"]) == [1, 2, 3, 4]  # by start time
    for col in ("id", "status", "table", "row", "dataset", "seed", "preset", "sweep", "step"):
        assert col in frame.columns
    r1 = frame.set_index("id").loc[1]
    assert (r1["status"], r1["table"], r1["row"], r1["seed"], r1["preset"], r1["sweep"]) == \
        ("COMPLETED", 3, "d", 0, "paper", "s1")
    assert r1["step"] == 7 and r1["loss"] == 2.0 and r1["fid"] == 40.0  # final = last step
    assert frame.set_index("id").loc[3, "sweep"] == "s2"  # from info when not in config
    assert np.isnan(frame.set_index("id").loc[4, "fid"])
    assert frame.set_index("id").loc[2, "s_acc"] == 0.5


def test_runs_frame_accepts_loaded_records(tmp_path):
    runs = load_runs(_store(tmp_path))
    assert runs_frame(runs).equals(runs_frame(tmp_path))


def test_config_fingerprint_ignores_labels_and_tuple_vs_list():
    a = {"steps": 4, "final_metrics": ("fid",), "sweep": "x", "progress": True}
    b = {"steps": 4, "final_metrics": ["fid"], "sweep": "y", "progress": False}
    assert config_fingerprint(a) == config_fingerprint(b)
    assert config_fingerprint(a) != config_fingerprint({**b, "steps": 5})
    # entries of the scripts that are no training option (e.g. inception_weights) do not count
    assert config_fingerprint(a) == config_fingerprint({**a, "inception_weights": "/w.pth"})


def test_tables_filter_by_sweep(tmp_path):
    runs = load_runs(_store(tmp_path))
    every = collect_results(runs, order="off")
    assert every[(3, "d", "blocks", "fid")].n == 3
    s1 = collect_results(runs, order="off", sweep="s1")
    cell = s1[(3, "d", "blocks", "fid")]
    assert cell.n == 2 and cell.mean == pytest.approx(42.0) and cell.std == pytest.approx(2.0)
    assert collect_results(runs, order="off", sweep="nope") == {}


def test_report_runs_prints_and_exports_csv(tmp_path, capsys):
    store = _store(tmp_path / "runs")
    assert report_main(["runs", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "COMPLETED" in out and "RUNNING" in out and "s1" in out
    path = tmp_path / "runs.csv"
    assert report_main(["runs", "--store", str(store), "--csv", str(path), "--sweep", "s1"]) == 0
    rows = list(csv.DictReader(path.open()))
    assert [r["id"] for r in rows] == ["1", "2"] and rows[0]["fid"] == "40.0"
    assert report_main(["runs", "--store", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
