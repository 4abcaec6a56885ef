"""Runs logged to a real MongoDB-wire server (secantusd-py, started as a separate process)."""
from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path

import pytest

from sri.credentials import redact
from sri.tracking.mongo_server import LocalMongoServer, find_server_binary
from sri.tracking.observers import attach_observers, make_mongo_observer, parse_mongo_spec, strip_mongo_args

sys.path.insert(0, str(Path(__file__).parent))
from test_experiments_support import run_script  # noqa: E402

pymongo = pytest.importorskip("pymongo")
needs_server = pytest.mark.skipif(find_server_binary() is None,
                                  reason="no MongoDB-wire server (pip install secantusdb)")


@pytest.fixture
def server(tmp_path):
    srv = LocalMongoServer(tmp_path / "mongo").start()
    yield srv
    srv.stop()


def test_mongo_spec_parsing_and_argv_stripping():
    assert parse_mongo_spec("127.0.0.1:27018:sri") == ("mongodb://127.0.0.1:27018", "sri")
    assert parse_mongo_spec("h:1") == ("mongodb://h:1", "sacred")
    assert parse_mongo_spec("mydb") == ("mongodb://localhost:27017", "mydb")
    assert parse_mongo_spec("mongodb://u:p@h:5/runsdb?authSource=admin")[1] == "runsdb"
    assert "p@" not in redact("mongodb://u:p@h:5/db") and "h:5" in redact("mongodb://u:p@h:5/db")
    argv, spec = strip_mongo_args(["x.py", "with", "smoke", "-m", "h:1:db", "seed=2"])
    assert argv == ["x.py", "with", "smoke", "seed=2"] and spec == "h:1:db"
    assert strip_mongo_args(["x.py", "--mongo_db=h:2:d"]) == (["x.py"], "h:2:d")
    with pytest.raises(ValueError, match="host:port:db"):
        parse_mongo_spec("a:b:c:d")


@needs_server
def test_smoke_run_logged_to_mongodb(tmp_path, server):
    spec = server.host_port_db("sri_test")
    res = run_script("table3_ablation.py", ["with", "smoke", "steps=2", f"run_dir={tmp_path / 'ck'}",
                                            "-m", spec], cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-4000:]
    assert not (tmp_path / "runs").exists()  # no file observer next to MongoDB
    db = pymongo.MongoClient(server.url, serverSelectionTimeoutMS=5000)["sri_test"]
    runs = list(db.runs.find())
    assert len(runs) == 1
    run = runs[0]
    assert run["_id"] == 1 and isinstance(run["_id"], int)  # Omniboard needs integer ids
    assert run["status"] == "COMPLETED"
    assert (run["config"]["table"], run["config"]["row"], run["config"]["dataset"]) == (3, "d", "blocks")
    # the server address is in neither the config nor the recorded command line options
    doc = json.dumps(run, default=str)
    assert str(server.port) not in json.dumps(run["config"]) and spec not in doc
    metrics = {m["name"]: m for m in db.metrics.find({"run_id": 1})}
    assert metrics["loss"]["steps"] == [1, 2]
    assert {"seg_nll", "beta_seg", "beta_sri", "sri_loss_bpd"} <= set(metrics)
    assert {m["name"] for m in run["info"]["metrics"]} == set(metrics)
    assert Path(run["info"]["checkpoint"]).is_file()
    assert [a["name"] for a in run["artifacts"]] == ["samples_00000002.png"]


def _start_run(obs) -> None:
    obs.started_event(ex_info={"name": "t", "base_dir": "/", "sources": [], "dependencies": [],
                               "repositories": [], "mainfile": None},
                      command="main", host_info={}, start_time=datetime.datetime.utcnow(),
                      config={"table": 3}, meta_info={}, _id=None)


def _points(step: int) -> dict:
    now = datetime.datetime.utcnow()
    return {"loss": {"steps": [step], "values": [float(step)], "timestamps": [now]},
            "beta_seg": {"steps": [step], "values": [1.0 / step], "timestamps": [now]}}


@needs_server
def test_mongo_outage_mid_run_loses_no_metric(tmp_path):
    srv = LocalMongoServer(tmp_path / "mongo").start()
    port = srv.port
    try:
        obs = make_mongo_observer(srv.host_port_db("outage"), fallback_dir=tmp_path / "unsent",
                                  timeout_ms=500)
        _start_run(obs)
        info: dict = {}
        obs.log_metrics(_points(1), info)
        srv.stop()
        obs.log_metrics(_points(2), info)  # server gone: buffered, no exception
        obs.heartbeat_event(info, "", datetime.datetime.utcnow(), None)
        obs.log_metrics(_points(3), info)
        assert obs._pending["loss"]["steps"] == [2, 3]
        srv = LocalMongoServer(tmp_path / "mongo", port=port).start()  # same data, same port
        obs.log_metrics(_points(4), info)
        obs.completed_event(datetime.datetime.utcnow(), None)
        db = pymongo.MongoClient(srv.url, serverSelectionTimeoutMS=5000)["outage"]
        m = db.metrics.find_one({"run_id": 1, "name": "loss"})
        assert m["steps"] == [1, 2, 3, 4] and m["values"] == [1.0, 2.0, 3.0, 4.0]
        assert db.runs.find_one({"_id": 1})["status"] == "COMPLETED"
        assert not (tmp_path / "unsent").exists()

        # still down at the end: the buffered points go to a JSON file, and we say where
        obs2 = make_mongo_observer(srv.host_port_db("outage"), fallback_dir=tmp_path / "unsent",
                                   timeout_ms=500)
        obs2.final_attempts = 1
        _start_run(obs2)
        srv.stop()
        obs2.log_metrics(_points(1), {})
        obs2.completed_event(datetime.datetime.utcnow(), None)
        saved = json.loads((tmp_path / "unsent" / "2" / "metrics.json").read_text())
        assert saved["loss"]["steps"] == [1]
    finally:
        if srv.running:
            srv.stop()


@needs_server
def test_attach_observers_env_url_and_fallback(tmp_path, server, monkeypatch):
    from sacred import Experiment
    from sacred.observers import FileStorageObserver

    ex = Experiment("t")
    monkeypatch.setenv("SRI_MONGO_URL", server.url + "/envdb")
    obs = attach_observers(ex, file_dir=str(tmp_path / "runs"))
    assert len(obs) == 1 and ex.observers[0] is obs[0] and obs[0].runs.database.name == "envdb"
    ex2 = Experiment("t2")
    ex2.observers.append(FileStorageObserver(str(tmp_path / "F")))  # e.g. from -F
    attach_observers(ex2, mongo_url=server.url + "/x", file_dir=None)
    assert type(ex2.observers[0]).__name__ == "BufferedMongoObserver"  # Mongo always first
    # a server that does not answer: the file store takes over, with a warning
    monkeypatch.delenv("SRI_MONGO_URL")
    ex3 = Experiment("t3")
    with pytest.warns(UserWarning, match="file store"):
        attach_observers(ex3, mongo_url="127.0.0.1:9:db", file_dir=str(tmp_path / "runs"))
    assert [type(o).__name__ for o in ex3.observers] == ["SafeFileStorageObserver"]
    # only rank 0 observes
    ex4 = Experiment("t4")
    assert attach_observers(ex4, mongo_url=server.url + "/x", rank=1) == [] and not ex4.observers


@needs_server
def test_metrics_and_run_document_left_unsent_are_replayed_once(tmp_path):
    """Issue 27: MongoDB gone for good mid-run left the run RUNNING and its metrics in mongo_unsent/."""
    from sri.tracking.replay import replay_unsent
    from sri.tracking.runs_cli import main as replay_main

    srv = LocalMongoServer(tmp_path / "mongo").start()
    port = srv.port
    try:
        obs = make_mongo_observer(srv.host_port_db("gone"), fallback_dir=tmp_path / "unsent", timeout_ms=500)
        obs.final_attempts = 1
        _start_run(obs)
        obs.log_metrics(_points(1), {})
        srv.stop()
        obs.log_metrics(_points(2), {})
        obs.completed_event(datetime.datetime.utcnow(), None)  # still down: a JSON file and a pickled run doc
        assert (tmp_path / "unsent" / "1" / "metrics.json").is_file()
        assert list((tmp_path / "unsent").glob("sacred_mongo_fail_1_*.pickle"))
        srv = LocalMongoServer(tmp_path / "mongo", port=port).start()
        db = pymongo.MongoClient(srv.url, serverSelectionTimeoutMS=5000)["gone"]
        assert db.runs.find_one({"_id": 1})["status"] == "RUNNING"
        assert replay_main(["replay-unsent", "--store", srv.host_port_db("gone"), "--dir",
                            str(tmp_path / "unsent")]) == 0
        m = db.metrics.find_one({"run_id": 1, "name": "loss"})
        assert m["steps"] == [1, 2]
        assert db.runs.find_one({"_id": 1})["status"] == "COMPLETED"
        again = replay_unsent(srv.host_port_db("gone"), tmp_path / "unsent")
        assert again["runs"] == [] and db.metrics.find_one({"run_id": 1, "name": "loss"})["steps"] == [1, 2]
    finally:
        if srv.running:
            srv.stop()
