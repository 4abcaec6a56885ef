"""Sacred observers for the experiment scripts: MongoDB (buffered, survives outages) or the file store.

`attach_observers(ex, mongo_url=None, file_dir="runs")` attaches a MongoDB observer when a URL
(`-m host:port:db`, `mongodb://…/db` or `$SRI_MONGO_URL`) is given, else a FileStorageObserver.
The URL never enters the run's config or output. `SacredRunLogger` adapts Sacred's `_run` to the
trainer's logger protocol.
"""
from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

from sri.credentials import redact

MONGO_ENV = "SRI_MONGO_URL"
# set (to "1") by sweeps for their children: a MongoDB URL from the environment is then required, as -m is
MONGO_REQUIRED_ENV = "SRI_MONGO_REQUIRED"
SERVER_TIMEOUT_MS = 3000


def parse_mongo_spec(spec: str) -> tuple[str, str]:
    """(url, db_name) from Sacred's `host:port:db`, `host:port`, `db`, or a `mongodb://…/db` URL."""
    spec = spec.strip()
    if not spec:
        raise ValueError("empty MongoDB spec; use host:port:db or mongodb://host:port/db")
    if spec.startswith(("mongodb://", "mongodb+srv://")):
        path = urlsplit(spec).path.lstrip("/")
        db = path.split("/")[0] or "sacred"
        return spec, db
    parts = spec.split(":")
    if len(parts) == 3:
        host, port, db = parts
    elif len(parts) == 2:
        (host, port), db = parts, "sacred"
    elif len(parts) == 1:
        host, port, db = "localhost", "27017", parts[0]
    else:
        raise ValueError(f"cannot parse MongoDB spec {spec!r}; use host:port:db")
    if not port.isdigit():
        raise ValueError(f"MongoDB port must be a number in {spec!r}; use host:port:db")
    return f"mongodb://{host}:{port}", db


class MongoAuthError(ConnectionError):
    """The MongoDB server answered but refused the user name / password."""


def is_auth_failure(e: BaseException) -> bool:
    """Whether a pymongo error is an authentication failure (code 18 or an auth message)."""
    return getattr(e, "code", None) == 18 or "authentication failed" in str(e).lower()


def strip_mongo_args(argv: Sequence[str]) -> tuple[list[str], str | None]:
    """Remove Sacred's `-m X` / `--mongo_db X` / `--mongo_db=X` from argv; returns (argv, X)."""
    out, spec, i = [], None, 0
    argv = list(argv)
    while i < len(argv):
        a = argv[i]
        if a in ("-m", "--mongo_db"):
            if i + 1 >= len(argv):
                raise ValueError(f"{a} needs a value: host:port:db")
            spec, i = argv[i + 1], i + 2
            continue
        if a.startswith("--mongo_db="):
            spec = a.split("=", 1)[1]
        else:
            out.append(a)
        i += 1
    return out, spec


def has_file_storage_arg(argv: Sequence[str]) -> bool:
    """True when Sacred's own `-F DIR` / `--file_storage` flag is present."""
    return any(a in ("-F", "--file_storage") or a.startswith("--file_storage=") for a in argv)


def _make_buffered_mongo_observer():
    from sacred.observers import MongoObserver

    class BufferedMongoObserver(MongoObserver):
        """MongoObserver that never raises mid-run: metrics are buffered while MongoDB is away and
        flushed on reconnect; what cannot be sent by the end goes to a JSON file, and we say so."""

        fallback_dir: Path = Path("runs") / "mongo_unsent"
        final_attempts: int = 5  # tries (1 s apart) to flush buffered metrics at the end

        def __init__(self, *args: Any, fallback_dir: str | os.PathLike | None = None, **kw: Any):
            fallback = Path(fallback_dir) if fallback_dir is not None else self.fallback_dir
            # Sacred pickles the run document there when its final save fails
            kw.setdefault("failure_dir", str(fallback))
            super().__init__(*args, **kw)
            self.fallback_dir = fallback
            self._pending: dict[str, dict[str, list]] = {}
            self._pending_artifacts: list[dict[str, Any]] = []
            self._warned = False

        def _note_outage(self, e: Exception) -> None:
            if not self._warned:
                print(f"[sri] MongoDB unreachable ({type(e).__name__}); training continues, metrics "
                      f"are buffered and sent on reconnect", file=sys.__stderr__)
                self._warned = True

        def _flush(self, info: dict) -> bool:
            import pymongo.errors

            for key in list(self._pending):
                m = self._pending[key]
                push = {f: {"$each": m[f]} for f in ("steps", "values", "timestamps")}
                try:
                    res = self.metrics.update_one({"run_id": self.run_entry["_id"], "name": key},
                                                  {"$push": push}, upsert=True)
                except pymongo.errors.PyMongoError as e:
                    self._note_outage(e)
                    return False
                del self._pending[key]
                if res.upserted_id is not None:
                    info.setdefault("metrics", []).append({"name": key, "id": str(res.upserted_id)})
            if self._warned:
                print("[sri] MongoDB is back: buffered metrics sent", file=sys.__stderr__)
                self._warned = False
            return True

        def log_metrics(self, metrics_by_name: dict, info: dict) -> None:
            if self.metrics is None:
                return
            for key, m in metrics_by_name.items():
                p = self._pending.setdefault(key, {"steps": [], "values": [], "timestamps": []})
                for f in ("steps", "values", "timestamps"):
                    p[f].extend(m[f])
            self._flush(info)
            self._retry_artifacts()

        def heartbeat_event(self, info, captured_out, beat_time, result):
            import pymongo.errors

            try:
                super().heartbeat_event(info, captured_out, beat_time, result)
            except pymongo.errors.PyMongoError as e:
                self._note_outage(e)

        def artifact_event(self, name, filename, metadata=None, content_type=None):
            import pymongo.errors

            try:
                super().artifact_event(name, filename, metadata, content_type)
            except pymongo.errors.PyMongoError as e:
                self._note_outage(e)
                self._pending_artifacts.append(dict(name=name, filename=filename, metadata=metadata,
                                                    content_type=content_type))

        def _retry_artifacts(self) -> None:
            import pymongo.errors

            while self._pending_artifacts:
                a = self._pending_artifacts[0]
                try:
                    super().artifact_event(**a)
                except pymongo.errors.PyMongoError:
                    return
                self._pending_artifacts.pop(0)

        def _final(self, info: dict | None = None) -> None:
            info = info if info is not None else self.run_entry.setdefault("info", {})
            for attempt in range(self.final_attempts):
                if self._flush(info):
                    break
                if attempt + 1 < self.final_attempts:
                    time.sleep(1.0)
            self._retry_artifacts()
            if self._pending or self._pending_artifacts:
                out = self.fallback_dir / str(self.run_entry.get("_id", "unknown"))
                out.mkdir(parents=True, exist_ok=True)
                with open(out / "metrics.json", "w") as f:
                    json.dump(self._pending, f, default=str)
                with open(out / "artifacts.json", "w") as f:
                    json.dump(self._pending_artifacts, f, default=str)
                print(f"[sri] MongoDB still unreachable at the end of the run: unsent metrics written "
                      f"to {out}/metrics.json (the run document goes to {self.fallback_dir})",
                      file=sys.__stderr__)

        def completed_event(self, stop_time, result):
            self._final()
            super().completed_event(stop_time, result)

        def interrupted_event(self, interrupt_time, status):
            self._final()
            super().interrupted_event(interrupt_time, status)

        def failed_event(self, fail_time, fail_trace):
            self._final()
            super().failed_event(fail_time, fail_trace)

    return BufferedMongoObserver


def __getattr__(name: str) -> Any:
    if name == "BufferedMongoObserver":  # built lazily so importing this module does not need sacred
        cls = _make_buffered_mongo_observer()
        globals()[name] = cls
        return cls
    raise AttributeError(name)


def make_mongo_observer(mongo_url: str, *, fallback_dir: str | os.PathLike | None = None,
                        check: bool = True, timeout_ms: int = SERVER_TIMEOUT_MS):
    """A BufferedMongoObserver for `mongo_url` (any spec `parse_mongo_spec` reads).

    With `check`, ping the server first and raise ConnectionError if it does not answer.
    """
    import pymongo
    import pymongo.errors

    url, db = parse_mongo_spec(mongo_url)
    client = pymongo.MongoClient(url, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms,
                                 socketTimeoutMS=max(timeout_ms, 10_000))
    if check:
        try:
            client.admin.command("ping")
        except pymongo.errors.PyMongoError as e:
            client.close()
            if is_auth_failure(e):
                raise MongoAuthError(f"MongoDB at {redact(url)}: authentication failed; check the user "
                                     f"name and password in the URL (-m or ${MONGO_ENV})") from None
            raise ConnectionError(f"MongoDB at {redact(url)} does not answer ({type(e).__name__})") from None
    cls = __getattr__("BufferedMongoObserver")
    return cls(client=client, db_name=db, fallback_dir=fallback_dir)


def attach_observers(ex: Any, mongo_url: str | None = None, file_dir: str | os.PathLike | None = "runs",
                     *, rank: int | None = None, required: bool = False) -> list[Any]:
    """Attach the run store to a Sacred Experiment: MongoDB if a URL is given (or $SRI_MONGO_URL),
    else a FileStorageObserver under `file_dir` (None: none). Only rank 0 observes under DDP.

    If the MongoDB server does not answer at start, the file store is used and a warning says so,
    unless `required` (MongoDB asked for explicitly, e.g. with `-m`): then ConnectionError. An
    authentication failure always raises MongoAuthError (never a silent fallback).
    The Mongo observer is always attached first (Omniboard needs its integer run ids).
    """
    from sri.tracking.file_observer import SafeFileStorageObserver

    rank = int(os.environ.get("RANK", "0")) if rank is None else rank
    if rank != 0:
        return []
    mongo_url = mongo_url or os.environ.get(MONGO_ENV) or None
    attached: list[Any] = []
    if mongo_url:
        fallback = Path(file_dir or "runs") / "mongo_unsent"
        try:
            obs = make_mongo_observer(mongo_url, fallback_dir=fallback)
        except MongoAuthError:
            raise
        except ConnectionError as e:
            if required:
                raise ConnectionError(f"{e}; not falling back to the file store because MongoDB was "
                                      f"asked for explicitly: start the server, fix the address, or "
                                      f"drop -m to log to {file_dir or 'runs'}/") from None
            msg = f"{e}; logging this run to the file store {file_dir or 'runs'}/ instead"
            warnings.warn(msg)
            print(f"[sri] WARNING: {msg}", file=sys.stderr)
            file_dir = file_dir or "runs"
        else:
            ex.observers.insert(0, obs)
            attached.append(obs)
            return attached
    if file_dir is not None:
        obs = SafeFileStorageObserver(str(file_dir))
        ex.observers.append(obs)
        attached.append(obs)
    return attached


def SacredRunLogger(run: Any) -> Any:
    """The trainer's logger protocol on top of a Sacred `_run` (log_scalar, info, artifacts); it stops
    the run (RunStoreWriteError) as soon as an observer could not write the run store."""
    from sri.tracking.file_observer import raise_if_store_failed
    from sri.train.loggers import RunLogger

    class _Checked(RunLogger):
        def log_scalar(self, name: str, value: float, step: int) -> None:
            raise_if_store_failed(getattr(self.run, "observers", []))
            super().log_scalar(name, value, step)

    return _Checked(run)


def configure_capture(ex: Any) -> None:
    """Keep run documents small: capture sys-level output with backspace/linefeed filtering."""
    from sacred import SETTINGS
    from sacred.utils import apply_backspaces_and_linefeeds

    SETTINGS.CAPTURE_MODE = "sys"
    ex.captured_out_filter = apply_backspaces_and_linefeeds
