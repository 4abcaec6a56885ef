"""`sri runs import`: a Sacred file store's runs copied into a real MongoDB-wire server read back the same."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from sri.tracking.file_import import file_store_runs, import_file_store, run_document
from sri.tracking.mongo_server import LocalMongoServer, find_server_binary
from sri.tracking.runs_cli import main as runs_main
from sri.tracking.store import load_runs

pymongo = pytest.importorskip("pymongo")
needs_server = pytest.mark.skipif(find_server_binary() is None,
                                  reason="no MongoDB-wire server (pip install secantusdb)")

SCRIPT = textwrap.dedent('''
    import sys
    from sacred import Experiment
    from sri.tracking.file_observer import SafeFileStorageObserver
    ex = Experiment("table2_gmm", save_git_info=False)
    ex.observers.append(SafeFileStorageObserver(sys.argv[1]))
    @ex.config
    def cfg():
        table = 2
        row = "sri_g"
        dataset = "blocks"
        fail = False
    @ex.main
    def main(_run, fail):
        for s in range(3):
            _run.log_scalar("loss", 5.0 - s, s)
        _run.log_scalar("ari_fg", 0.75, 3)
        _run.info["checkpoint"] = "runs/x/final.pt"
        print("trained")
        if fail:
            raise RuntimeError("diverged")
        return 1.5
    ex.run_commandline(["x", "with", *sys.argv[2:], "--loglevel=ERROR", "--capture=sys"])  # sys: synchronous
''')


@pytest.fixture
def file_store(tmp_path):
    """A file store with a completed run, a failed run and a damaged record."""
    script = tmp_path / "exp.py"
    script.write_text(SCRIPT)
    store = tmp_path / "store"
    for extra in (["seed=3"], ["seed=4", "fail=True"]):
        subprocess.run([sys.executable, "-W", "ignore", str(script), str(store), *extra],
                       capture_output=True, text=True, timeout=120)
    (store / "3").mkdir()
    (store / "3" / "run.json").write_text("{not json")
    return store


@pytest.fixture
def server(tmp_path):
    srv = LocalMongoServer(tmp_path / "mongo").start()
    yield srv
    srv.stop()


def test_a_run_folder_becomes_a_mongo_run_document(file_store):
    assert [p.name for p in file_store_runs(file_store)] == ["1", "2", "3"]
    doc, series = run_document(file_store / "1", 7)
    assert doc["_id"] == 7 and doc["status"] == "COMPLETED" and doc["result"] == 1.5
    assert doc["config"]["seed"] == 3 and doc["config"]["row"] == "sri_g"
    assert doc["experiment"]["name"] == "table2_gmm" and doc["experiment"]["sources"] == []
    assert "trained" in doc["captured_out"]
    assert doc["start_time"] <= doc["stop_time"]  # datetimes, as MongoObserver stores them
    assert doc["meta"]["imported_from"] == {"store": str(file_store.resolve()), "run_id": "1"}
    assert series["loss"]["values"] == [5.0, 4.0, 3.0] and series["loss"]["steps"] == [0, 1, 2]
    with pytest.raises(ValueError, match="damaged record"):
        run_document(file_store / "3", 8)
    with pytest.raises(FileNotFoundError, match="make demo writes runs/demo"):
        file_store_runs(file_store / "missing")


@needs_server
def test_imported_runs_read_back_like_the_file_store_and_import_only_once(file_store, server):
    url = f"{server.url}/sri"
    res = import_file_store(file_store, url)
    assert [(e["run"], e["status"]) for e in res["imported"]] == [("1", "COMPLETED"), ("2", "FAILED")]
    assert [s["run"] for s in res["skipped"]] == ["3"] and "damaged" in res["skipped"][0]["why"]
    # the suite's own reader sees the same runs in both stores
    by_seed = lambda runs: {r.config["seed"]: r for r in runs}  # noqa: E731
    files, mongo = by_seed(load_runs(str(file_store))), by_seed(load_runs(url))
    assert sorted(mongo) == sorted(files) == [3, 4]
    for seed in (3, 4):
        assert mongo[seed].status == files[seed].status
        assert mongo[seed].config == files[seed].config
        assert mongo[seed].metrics == files[seed].metrics
    client = pymongo.MongoClient(server.url)
    run = client["sri"].runs.find_one({"config.seed": 3})
    assert {m["name"] for m in run["info"]["metrics"]} == {"loss", "ari_fg"}
    assert client["sri"].metrics.count_documents({}) == 4
    again = import_file_store(file_store, url)
    assert again["imported"] == [] and client["sri"].runs.count_documents({}) == 2
    client.close()


@needs_server
def test_runs_import_command(file_store, server, capsys, monkeypatch):
    monkeypatch.delenv("SRI_MONGO_URL", raising=False)
    assert runs_main(["import", "--from", str(file_store)]) == 2
    assert "give --store" in capsys.readouterr().err
    assert runs_main(["import", "--from", str(file_store), "--store", f"{server.url}/sri"]) == 0
    out = capsys.readouterr().out
    assert "run 1 (table2_gmm, COMPLETED, 2 metric series) -> run id 1" in out
    assert "2 run(s) imported" in out
    assert runs_main(["import", "--from", str(file_store), "--store", str(file_store)]) == 2
    assert "is not a MongoDB store" in capsys.readouterr().err
