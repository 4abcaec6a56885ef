"""sri.tracking.store: resolving stores and reading runs from the file store and MongoDB."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from test_report_util import write_run

from sri.tracking import RunRecord, load_runs, resolve_store


def test_resolve_store_forms(tmp_path, monkeypatch):
    monkeypatch.delenv("SRI_MONGO_URL", raising=False)
    s = resolve_store()
    assert s.kind == "file" and s.path == Path("runs")
    s = resolve_store(tmp_path)
    assert s.kind == "file" and s.path == tmp_path
    s = resolve_store("mongodb://127.0.0.1:27018/sri")
    assert (s.kind, s.db, s.host_port_db) == ("mongo", "sri", "127.0.0.1:27018:sri")
    s = resolve_store("localhost:27017:exp")
    assert (s.kind, s.db, s.url) == ("mongo", "exp", "mongodb://localhost:27017/")
    assert resolve_store("mongodb://h:1").db == "sacred"  # Sacred's default database
    monkeypatch.setenv("SRI_MONGO_URL", "mongodb://10.0.0.1:1234/x")
    assert resolve_store().host_port_db == "10.0.0.1:1234:x"
    with pytest.raises(ValueError):
        resolve_store("  ")


def test_load_file_store_hand_made(tmp_path):
    write_run(tmp_path, 1, table=3, row="d", dataset="blocks", seed=0,
              metrics={"loss": [(0, 5.0), (10, 4.0), (5, 3.0)], "fid": 70.5},
              info={"checkpoint": "/x/final.pt"})
    write_run(tmp_path, 2, table=3, row="d", dataset="blocks", seed=1, metrics={}, status="FAILED")
    (tmp_path / "_sources").mkdir()  # Sacred's shared sources folder is not a run
    runs = load_runs(tmp_path)
    assert [r.id for r in runs] == [1, 2]
    r = runs[0]
    assert isinstance(r, RunRecord)
    assert r.experiment == "table3" and r.status == "COMPLETED"
    assert r.config["row"] == "d" and r.checkpoint == "/x/final.pt"
    assert r.metrics["loss"] == [(0, 5.0), (10, 4.0), (5, 3.0)]
    assert r.final("loss") == 4.0  # value at the largest step
    assert r.final("fid") == 70.5 and r.final("nope") is None
    assert r.start_time == dt.datetime(2024, 1, 1, 0, 1) and r.stop_time > r.start_time
    assert runs[1].status == "FAILED" and runs[1].metrics == {}


def test_missing_store_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="run an experiment first"):
        load_runs(tmp_path / "nope")


def test_reads_a_real_sacred_file_store(tmp_path):
    """The reader agrees with what Sacred's own FileStorageObserver writes."""
    from sacred import Experiment
    from sacred.observers import FileStorageObserver

    ex = Experiment("table2_main", save_git_info=False)
    ex.observers.append(FileStorageObserver(str(tmp_path / "runs")))

    @ex.config
    def cfg():
        table = 2
        row = "sri_g"
        dataset = "blocks"
        model = "sri"
        model_options = {"num_slots": 4}

    @ex.main
    def main(_run):
        for i in range(3):
            _run.log_scalar("loss", 1.0 / (i + 1), i)
        _run.log_scalar("fid", 42.0, 3)
        _run.info["checkpoint"] = "ckpt.pt"

    ex.run(config_updates={"seed": 7}, options={"--loglevel": "ERROR"})
    (run,) = load_runs(tmp_path / "runs")
    assert run.id == 1 and run.status == "COMPLETED" and run.experiment == "table2_main"
    assert run.config["seed"] == 7 and run.config["model_options"] == {"num_slots": 4}
    assert run.metrics["loss"] == [(0, 1.0), (1, 0.5), (2, 1.0 / 3)]
    assert run.final("fid") == 42.0 and run.checkpoint == "ckpt.pt"
    assert run.start_time is not None and run.stop_time >= run.start_time


def _mongo_server_or_skip():
    mongo_server = pytest.importorskip("sri.tracking.mongo_server")
    if mongo_server.find_server_binary() is None:
        pytest.skip("no MongoDB-wire server (pip install secantusdb)")
    return mongo_server.LocalMongoServer()


def test_reads_sacred_mongo_observer(tmp_path):
    """Runs logged by Sacred's MongoObserver read back identically to the file store."""
    from sacred import Experiment
    from sacred.observers import FileStorageObserver, MongoObserver

    with _mongo_server_or_skip() as server:
        ex = Experiment("table3_ablation", save_git_info=False)
        ex.observers.append(MongoObserver(url=server.url, db_name="sri"))
        ex.observers.append(FileStorageObserver(str(tmp_path / "runs")))

        @ex.config
        def cfg():
            table = 3
            row = "a"
            dataset = "shapes"
            model = "sri"

        @ex.main
        def main(_run):
            _run.log_scalar("fid", 99.5, 10)
            _run.log_scalar("loss", 3.0, 0)
            _run.log_scalar("loss", 2.0, 1)
            _run.info["checkpoint"] = "c.pt"

        for seed in (1, 2):
            ex.run(config_updates={"seed": seed}, options={"--loglevel": "ERROR"})
        mongo_runs = load_runs(server.host_port_db("sri"))
        also = load_runs(server.url + "/sri")
        from sri.report.tables import build_tables

        results, _ = build_tables(server.host_port_db("sri"), tmp_path / "tables", order="off")
    file_runs = load_runs(tmp_path / "runs")
    assert [r.id for r in mongo_runs] == [1, 2] == [r.id for r in also]
    for m, f in zip(mongo_runs, file_runs):
        assert (m.status, m.experiment, m.config["seed"]) == (f.status, f.experiment, f.config["seed"])
        assert m.metrics == f.metrics and m.checkpoint == f.checkpoint == "c.pt"
        assert abs((m.start_time - f.start_time).total_seconds()) < 1.0
    cell = results[(3, "a", "shapes", "fid")]
    assert (cell.n, cell.mean, cell.std, sorted(cell.seeds)) == (2, 99.5, 0.0, [1, 2])


def test_checkpoint_path_resolution(tmp_path, monkeypatch):
    store = tmp_path / "proj" / "runs"
    ckpt = tmp_path / "proj" / "runs" / "checkpoints" / "final.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"x")
    write_run(store, 1, table=3, row="d", dataset="blocks", seed=0, metrics={},
              info={"checkpoint": "runs/checkpoints/final.pt"})  # relative to the project folder
    write_run(store, 2, table=3, row="d", dataset="blocks", seed=1, metrics={},
              info={"checkpoint": str(ckpt)})
    write_run(store, 3, table=3, row="d", dataset="blocks", seed=2, metrics={},
              info={"checkpoint": "runs/checkpoints/gone.pt"})
    monkeypatch.chdir(tmp_path)
    r1, r2, r3 = load_runs(store)
    assert r1.checkpoint_path() == store.parent / "runs/checkpoints/final.pt"
    assert r2.checkpoint_path() == ckpt and r3.checkpoint_path() is None
    monkeypatch.chdir(tmp_path / "proj")
    assert load_runs(store)[0].checkpoint_path() == Path("runs/checkpoints/final.pt")


def test_one_damaged_run_is_skipped_with_a_warning_naming_it(tmp_path):
    """Issue 27: one truncated run.json (or a 0-byte metrics.json after a full disk) stopped every report."""
    store = tmp_path / "runs"
    write_run(store, 1, table=3, row="d", dataset="blocks", seed=0, metrics={"s_acc": 0.5})
    bad = write_run(store, 2, table=3, row="d", dataset="blocks", seed=1, metrics={"s_acc": 0.6})
    (bad / "run.json").write_text('{"status": "COMPL')
    empty = write_run(store, 3, table=3, row="d", dataset="blocks", seed=2, metrics={"s_acc": 0.7})
    (empty / "metrics.json").write_text("")
    with pytest.warns(UserWarning, match=r"skipping run .*2 of store"):
        runs = load_runs(store)
    assert [r.id for r in runs] == [1]
