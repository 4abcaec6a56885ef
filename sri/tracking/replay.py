"""`sri runs replay-unsent` (`sri.tracking.runs_cli`): send what a run could not send while MongoDB was away.

When MongoDB stays unreachable until a run ends, `BufferedMongoObserver` writes the unsent metrics
to `<runs>/mongo_unsent/<run id>/metrics.json` (and artifacts.json), and Sacred pickles the final
run document (status, stop time, result, info) to `<runs>/mongo_unsent/sacred_mongo_fail_<id>_*.pickle`;
in the database the run still looks RUNNING. Once MongoDB is back, this command appends the
metrics to the run's metric series, writes the final run document back, and moves what it sent to
`<folder>/sent/`, so a second call sends nothing twice.
"""
from __future__ import annotations

import datetime
import json
import pickle
import shutil
from pathlib import Path
from typing import Any

__all__ = ["replay_unsent"]

_ALLOWED = {("datetime", "datetime"), ("datetime", "timezone"), ("datetime", "timedelta"),
            ("collections", "OrderedDict"), ("bson.objectid", "ObjectId"), ("builtins", "set"),
            ("builtins", "frozenset"), ("builtins", "tuple")}


class _RunDocUnpickler(pickle.Unpickler):
    """Loads Sacred's pickled run documents only: plain containers, times and ObjectIds, nothing that runs code."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a run document")


def _run_docs(folder: Path) -> dict[Any, tuple[Path, dict]]:
    out = {}
    for p in sorted(folder.glob("sacred_mongo_fail_*.pickle")):
        with open(p, "rb") as f:
            doc = _RunDocUnpickler(f).load()
        out[doc.get("_id")] = (p, doc)
    return out


def replay_unsent(store: str, folder: str | Path = "runs/mongo_unsent") -> dict[str, Any]:
    """Send every run's unsent metrics and final run document in `folder` to the MongoDB `store`."""
    from sri.tracking.store import resolve_store

    spec = resolve_store(store)
    if spec.kind != "mongo":
        raise ValueError(f"{spec} is not a MongoDB store: replay-unsent sends to MongoDB")
    folder = Path(folder)
    if not folder.is_dir():
        return {"runs": [], "note": f"{folder} does not exist: nothing was left unsent"}
    import pymongo

    client = pymongo.MongoClient(spec.url, serverSelectionTimeoutMS=5000)
    db = client[spec.db]
    docs = _run_docs(folder)
    sent_dir = folder / "sent"
    report = []
    run_ids = {int(p.name) if p.name.isdigit() else p.name for p in folder.iterdir()
               if p.is_dir() and p.name != "sent"} | set(docs)
    for rid in sorted(run_ids, key=str):
        entry: dict[str, Any] = {"run_id": rid, "metrics": 0, "points": 0, "run_document": False}
        mdir = folder / str(rid)
        metric_ids = []
        if (mdir / "metrics.json").is_file():
            pending = json.loads((mdir / "metrics.json").read_text())
            for name, m in pending.items():
                stamps = [datetime.datetime.fromisoformat(t) if isinstance(t, str) else t
                          for t in m.get("timestamps", [])]
                res = db.metrics.update_one({"run_id": rid, "name": name},
                                            {"$push": {"steps": {"$each": m["steps"]},
                                                       "values": {"$each": m["values"]},
                                                       "timestamps": {"$each": stamps}}}, upsert=True)
                if res.upserted_id is not None:
                    metric_ids.append({"name": name, "id": str(res.upserted_id)})
                entry["metrics"] += 1
                entry["points"] += len(m["steps"])
        if rid in docs:
            path, doc = docs[rid]
            if metric_ids:
                doc.setdefault("info", {}).setdefault("metrics", []).extend(metric_ids)
            db.runs.replace_one({"_id": rid}, doc, upsert=True)
            entry["run_document"] = True
            entry["status"] = doc.get("status")
        elif metric_ids:
            db.runs.update_one({"_id": rid}, {"$push": {"info.metrics": {"$each": metric_ids}}})
        sent_dir.mkdir(exist_ok=True)
        if mdir.is_dir():
            shutil.move(str(mdir), str(sent_dir / mdir.name))
        if rid in docs:
            shutil.move(str(docs[rid][0]), str(sent_dir / docs[rid][0].name))
        report.append(entry)
    return {"runs": report}
