"""End to end: a smoke run and a two-job sweep logging to a MongoDB-wire server with a user and a
password; the password must appear in no file they write and on no process command line."""
from __future__ import annotations

import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from sweep_support import ROOT, sweep_env  # noqa: E402

pymongo = pytest.importorskip("pymongo")
pytestmark = pytest.mark.slow


def _files_with(root: Path, needle: bytes, skip: Path) -> list[str]:
    found = []
    for p in root.rglob("*"):
        if p.is_file() and skip not in p.parents and needle in p.read_bytes():
            found.append(str(p))
    return found


def _command_lines_with(needle: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if needle in line]


def test_no_password_in_files_or_process_lists(tmp_path):
    from sri.tracking.mongo_server import LocalMongoServer, find_server_binary

    if find_server_binary() is None:
        pytest.skip("no MongoDB-wire server (pip install secantusdb)")
    password = "pw-" + secrets.token_hex(8)
    data = tmp_path / "mongo-data"  # the server keeps its users' (hashed) credentials: not checked
    srv = LocalMongoServer(data).start()
    try:
        pymongo.MongoClient(srv.url).admin.command("createUser", "sriuser", pwd=password, roles=["root"])
        host = srv.url.split("//", 1)[1].rstrip("/")
        url = f"mongodb://sriuser:{password}@{host}/sri?authSource=admin"
        work = tmp_path / "work"
        work.mkdir()
        env = {**sweep_env(SRI_RUNS_DIR=str(work / "runs")), "SRI_MONGO_URL": url}
        seen: list[str] = []
        # a single run of a table script, its URL from the environment
        run = subprocess.Popen([sys.executable, str(ROOT / "experiments" / "table3_ablation.py"), "with",
                                "smoke", "row=d", "seed=5"], cwd=work, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        while run.poll() is None:
            seen += _command_lines_with(password)
            time.sleep(0.1)
        assert run.returncode == 0, run.stdout.read()[-3000:]
        # a two-job sweep, the store from $SRI_MONGO_URL (no --store: nothing on any command line)
        sweep = subprocess.Popen([sys.executable, "-m", "sri.cli", "sweep", "3", "--preset", "smoke", "--rows",
                                  "a,d", "--seeds", "0", "--jobs", "2"], cwd=work, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        while sweep.poll() is None:
            seen += _command_lines_with(password)
            time.sleep(0.1)
        out = sweep.stdout.read()
        assert sweep.returncode == 0 and "2/2 completed" in out, out[-3000:]
        client = pymongo.MongoClient(url)
        dbs = {n: client[n].runs.count_documents({"status": "COMPLETED"}) for n in client.list_database_names()}
        assert dbs.get("sri") == 3, dbs
    finally:
        srv.stop()
    assert seen == [], seen[:3]
    leaked = _files_with(tmp_path, password.encode(), skip=data)
    assert leaked == [], leaked
