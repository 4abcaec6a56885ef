"""`sri runs import`: copy the runs of a Sacred file store (e.g. `make demo`'s `runs/demo`) into a
MongoDB store, so that Omniboard, which reads MongoDB only, shows them.

Each run folder (`<store>/<id>/run.json`, `config.json`, `info.json`, `metrics.json`, `cout.txt`) becomes
one run document and its metric series, in the layout Sacred's MongoObserver writes (`runs` and
`metrics` collections, `info.metrics` naming the series). A run gets the next free run id of the
database; its origin is kept in `meta.imported_from`, so importing the same store twice adds only the
runs that are new (a run still RUNNING is skipped until it ends). Source files and artifacts stay in
the file store: only their names are copied.
"""
from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

__all__ = ["file_store_runs", "run_document", "import_file_store"]

FINISHED = {"COMPLETED", "FAILED", "INTERRUPTED", "TIMEOUT"}
MONGO_FORMAT = "MongoObserver-0.7.0"  # the `format` field Sacred's MongoObserver writes


def _when(value: Any) -> Any:
    """An ISO time string of the file store as a datetime (what MongoObserver stores); else as is."""
    if isinstance(value, str):
        try:
            return datetime.datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


def _read_json(path: Path, default: Any) -> Any:
    if not path.is_file():
        return default
    text = path.read_text()
    return json.loads(text) if text.strip() else default


def file_store_runs(store: str | Path) -> list[Path]:
    """The run folders of a Sacred file store (those with a `run.json`), in run-id order."""
    root = Path(store)
    if not root.is_dir():
        raise FileNotFoundError(f"no file store at {root}: give the folder that `-F` or `--store` wrote "
                                f"(make demo writes runs/demo)")
    found = [p for p in root.iterdir() if p.is_dir() and p.name.isdigit() and (p / "run.json").is_file()]
    return sorted(found, key=lambda p: int(p.name))


def run_document(folder: Path, new_id: int) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(the MongoDB run document, {metric name: series}) of one file-store run folder.

    Raises ValueError naming the file when the run's record is damaged."""
    try:
        run = json.loads((folder / "run.json").read_text())
        config = _read_json(folder / "config.json", {})
        info = _read_json(folder / "info.json", {})
        metrics = _read_json(folder / "metrics.json", {})
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"run {folder} has a damaged record ({e}); it was not imported") from None
    cout = folder / "cout.txt"
    experiment = dict(run.get("experiment") or {})
    source_names = [s[0] if isinstance(s, (list, tuple)) else str(s) for s in experiment.get("sources", [])]
    experiment["sources"] = []  # MongoObserver keeps source files in GridFS; the file store keeps them
    meta = dict(run.get("meta") or {})
    origin = {"store": str(folder.parent.resolve()), "run_id": folder.name}
    meta["imported_from"] = origin
    meta.setdefault("comment", f"imported from the file store {origin['store']}, run {folder.name}")
    if source_names:
        meta["source_files"] = source_names
    doc = {
        "_id": new_id, "format": MONGO_FORMAT, "experiment": experiment,
        "command": run.get("command"), "host": run.get("host", {}),
        "start_time": _when(run.get("start_time")), "stop_time": _when(run.get("stop_time")),
        "heartbeat": _when(run.get("heartbeat")), "status": run.get("status"),
        "result": run.get("result"), "meta": meta, "config": config, "info": dict(info),
        "resources": run.get("resources", []),
        "artifacts": [{"name": a if isinstance(a, str) else str(a)} for a in run.get("artifacts", [])],
        "captured_out": cout.read_text(errors="replace") if cout.is_file() else "",
    }
    if "fail_trace" in run:
        doc["fail_trace"] = run["fail_trace"]
    series = {name: {"steps": list(m.get("steps", [])), "values": list(m.get("values", [])),
                     "timestamps": [_when(t) for t in m.get("timestamps", [])]}
              for name, m in metrics.items()}
    return doc, series


def import_file_store(store: str | Path, mongo: str | None = None, *,
                      include_running: bool = False) -> dict[str, Any]:
    """Copy every finished run of the file store `store` not yet in the MongoDB `mongo` (URL or
    host:port:db; default $SRI_MONGO_URL) into it; returns what was imported and skipped."""
    import pymongo

    from sri.tracking.store import resolve_store

    spec = resolve_store(mongo)
    if spec.kind != "mongo":
        raise ValueError(f"{spec} is not a MongoDB store: give --store mongodb://host:port/db (or set "
                         f"SRI_MONGO_URL); Omniboard reads MongoDB only")
    folders = file_store_runs(store)
    client = pymongo.MongoClient(spec.url, serverSelectionTimeoutMS=5000)
    try:
        db = client[spec.db]
        done = {(d["meta"]["imported_from"]["store"], str(d["meta"]["imported_from"]["run_id"]))
                for d in db.runs.find({"meta.imported_from": {"$exists": True}}, {"meta.imported_from": 1})}
        last = db.runs.find_one(sort=[("_id", pymongo.DESCENDING)], projection={"_id": 1})
        next_id = int(last["_id"]) + 1 if last and isinstance(last["_id"], int) else 1
        imported, skipped = [], []
        for folder in folders:
            key = (str(folder.parent.resolve()), folder.name)
            if key in done:
                skipped.append({"run": folder.name, "why": "imported before"})
                continue
            try:
                doc, series = run_document(folder, next_id)
            except ValueError as e:
                skipped.append({"run": folder.name, "why": str(e)})
                continue
            if doc["status"] not in FINISHED and not include_running:
                skipped.append({"run": folder.name, "why": f"status {doc['status']}: not finished"})
                continue
            refs = []
            for name, s in series.items():
                res = db.metrics.insert_one({"run_id": next_id, "name": name, **s})
                refs.append({"id": str(res.inserted_id), "name": name})
            doc["info"]["metrics"] = refs
            db.runs.insert_one(doc)
            imported.append({"run": folder.name, "id": next_id, "status": doc["status"],
                             "experiment": doc["experiment"].get("name"), "metrics": len(refs)})
            next_id += 1
    finally:
        client.close()
    return {"store": str(Path(store)), "mongo": str(spec), "imported": imported, "skipped": skipped}
