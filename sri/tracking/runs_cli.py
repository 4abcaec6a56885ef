"""`sri runs`: `replay-unsent` (metrics buffered while MongoDB was down) and `import` (a file store's
runs into MongoDB, for Omniboard)."""
from __future__ import annotations

import argparse
import os
import pickle
import sys
from typing import Sequence

from sri.credentials import redact

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sri runs", description="Runs in a MongoDB store.")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("replay-unsent", help="send metrics and run documents buffered while MongoDB was down")
    r.add_argument("--store", default=None, help="mongodb://host:port/db or host:port:db (default $SRI_MONGO_URL)")
    r.add_argument("--dir", default="runs/mongo_unsent",
                   help="the folder the runs wrote to (default runs/mongo_unsent; $SRI_RUNS_DIR/mongo_unsent)")
    i = sub.add_parser("import", help="copy a Sacred file store's finished runs (e.g. make demo's runs/demo) "
                                      "into MongoDB, so that Omniboard shows them; runs imported before are skipped")
    i.add_argument("--from", dest="source", default="runs/demo", metavar="DIR",
                   help="the file store (default runs/demo, where make demo logs)")
    i.add_argument("--store", default=None, help="mongodb://host:port/db or host:port:db (default $SRI_MONGO_URL)")
    i.add_argument("--include-running", action="store_true",
                   help="also import runs whose status is still RUNNING (e.g. killed runs)")
    return p


def _replay(a: argparse.Namespace) -> int:
    from sri.tracking.replay import replay_unsent

    try:
        res = replay_unsent(a.store, a.dir)
    except (ValueError, ConnectionError, pickle.UnpicklingError) as e:
        print(f"error: {redact(str(e))}", file=sys.stderr)
        return 2
    except Exception as e:  # pymongo's errors: the server is still away
        print(f"error: MongoDB did not take the runs ({type(e).__name__}: {redact(str(e))}); "
              f"nothing was moved, try again once it is reachable", file=sys.stderr)
        return 2
    if not res["runs"]:
        print(res.get("note", "nothing to send"))
    for e in res["runs"]:
        print(f"run {e['run_id']}: {e['metrics']} metric series ({e['points']} points) sent"
              + (f", run document written back (status {e.get('status')})" if e["run_document"] else ""))
    return 0


def _import(a: argparse.Namespace) -> int:
    from sri.tracking.file_import import import_file_store

    if a.store is None and not os.environ.get("SRI_MONGO_URL"):
        print("error: give --store mongodb://host:port/db (or set SRI_MONGO_URL); `make omniboard` imports "
              "runs/demo into its local server by itself", file=sys.stderr)
        return 2
    try:
        res = import_file_store(a.source, a.store, include_running=a.include_running)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {redact(str(e))}", file=sys.stderr)
        return 2
    except Exception as e:  # pymongo's errors
        print(f"error: MongoDB did not take the runs ({type(e).__name__}: {redact(str(e))})", file=sys.stderr)
        return 2
    for e in res["imported"]:
        print(f"run {e['run']} ({e['experiment']}, {e['status']}, {e['metrics']} metric series) -> run id {e['id']}")
    for e in res["skipped"]:
        print(f"run {e['run']} skipped: {e['why']}")
    print(f"{len(res['imported'])} run(s) imported from {res['store']} into {res['mongo']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`sri runs replay-unsent ...` or `sri runs import ...`."""
    a = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    return _replay(a) if a.cmd == "replay-unsent" else _import(a)
