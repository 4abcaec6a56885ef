"""Omniboard in a real headless Chromium, against a local MongoDB-wire server with a logged run."""
from __future__ import annotations

import html
import json
import re
import shutil
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from sri.report.omniboard import (
    Omniboard,
    chromium_binary,
    dump_dom,
    install_omniboard,
    omniboard_entry,
    register_metric_columns,
)

REPO = Path(__file__).resolve().parents[1]
PREFIX = REPO / ".cache" / "omniboard"


def _text(dom: str) -> str:
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", dom)))


def _log_file_store_run(store: Path) -> None:
    """One finished run in a Sacred file store, as `make demo` writes them."""
    from sacred import Experiment

    from sri.tracking.file_observer import SafeFileStorageObserver

    ex = Experiment("demo_file_store_run", save_git_info=False)
    ex.observers.append(SafeFileStorageObserver(str(store)))

    @ex.main
    def main(_run):
        _run.log_scalar("ari_fg", 0.6875, 1)

    ex.run(options={"--loglevel": "ERROR"})


def _log_minimal_run(url: str, db: str) -> None:
    from sacred import Experiment
    from sacred.observers import MongoObserver

    ex = Experiment("table3_ablation", save_git_info=False)
    ex.observers.append(MongoObserver(url=url, db_name=db))

    @ex.config
    def cfg():
        table = 3
        row = "d"
        dataset = "blocks"
        model = "sri"

    @ex.main
    def main(_run):
        for step in range(4):
            _run.log_scalar("loss", 10.0 - step, step)
        _run.log_scalar("fid", 123.25, 4)
        _run.log_scalar("ari_fg", 0.8125, 4)
        _run.info["checkpoint"] = "runs/x/final.pt"

    ex.run(config_updates={"seed": 17}, options={"--loglevel": "ERROR"})


@pytest.mark.browser
def test_omniboard_shows_run_and_metrics(tmp_path, skip_or_fail):
    # skipped where a tool is missing, a failure in CI (.ci/run installs them all, SRI_CI=1)
    if shutil.which("node") is None or shutil.which("npm") is None:
        skip_or_fail("Node.js/npm not installed (apt-get install -y nodejs npm)")
    if chromium_binary() is None:
        skip_or_fail("Chromium not installed (apt-get install -y chromium)")
    import sri.tracking.mongo_server as mongo_server
    if mongo_server.find_server_binary() is None:
        skip_or_fail("no MongoDB-wire server (pip install secantusdb)")
    if omniboard_entry(PREFIX) is None:
        try:
            install_omniboard(PREFIX)
        except (RuntimeError, FileNotFoundError) as e:
            skip_or_fail(f"omniboard could not be installed: {e}")

    with mongo_server.LocalMongoServer() as server:
        _log_minimal_run(server.url, "sri")
        _log_file_store_run(tmp_path / "demo_store")  # make omniboard imports make demo's file store
        from sri.report.omniboard import import_for_omniboard
        from sri.tracking.store import resolve_store

        import_for_omniboard(str(tmp_path / "demo_store"), resolve_store(f"{server.url}/sri"))
        added = register_metric_columns(server.url + "/sri", "sri", ["fid", "ari_fg", "loss"])
        assert added == ["fid", "ari_fg", "loss"]
        assert register_metric_columns(server.url + "/sri", "sri", ["fid"]) == []  # idempotent
        port = mongo_server.free_port()
        with Omniboard(f"{server.url}/sri", port=port, prefix=PREFIX,
                       log=tmp_path / "omniboard.log") as board:
            query = urllib.parse.quote(json.dumps({"run_id": 1}))
            with urllib.request.urlopen(f"{board.url}sacred/api/v1/Metrics?query={query}") as r:
                metrics = {m["name"]: m for m in json.load(r)}
            assert metrics["loss"]["values"] == [10.0, 9.0, 8.0, 7.0]
            text = _text(dump_dom(board.url, profile=tmp_path / "profile"))
            if "table3_ablation" not in text:  # a slow machine: give the page more virtual time
                text = _text(dump_dom(board.url, virtual_time_ms=60000, profile=tmp_path / "p2"))
    assert "table3_ablation" in text, text[:2000]
    assert "COMPLETED" in text
    # Metric columns show the last logged values; config columns show the run's config.
    for header in ("Fid", "Ari Fg", "Loss", "C Row", "C Seed"):
        assert header in text, header
    row = text[text.index("table3_ablation"):]
    assert "123.25" in row and "0.8125" in row and " 7 " in row + " "
    assert " 17 " in row + " " and " blocks " in row
    assert "demo_file_store_run" in text and "0.6875" in text[text.index("demo_file_store_run"):]
