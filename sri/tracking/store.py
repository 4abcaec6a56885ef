"""Reading Sacred runs back from a file store (`runs/`) or MongoDB (MongoObserver layout)."""
from __future__ import annotations

import datetime as _dt
import json
import os
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

DEFAULT_FILE_STORE = "runs"
DEFAULT_MONGO_DB = "sacred"  # Sacred's MongoObserver default database name
_HOST_PORT_DB = re.compile(r"^(?P<host>[A-Za-z0-9_.\-]+|\[[0-9a-fA-F:]+\]):(?P<port>\d+):(?P<db>[^:/\s]+)$")


@dataclass
class RunRecord:
    """One Sacred run: config, info, status and logged scalars (`metrics`: name → [(step, value)])."""

    id: Any
    experiment: str
    status: str
    config: dict[str, Any]
    info: dict[str, Any]
    metrics: dict[str, list[tuple[int, float]]]
    start_time: _dt.datetime | None = None
    stop_time: _dt.datetime | None = None
    result: Any = None
    source: str = ""

    def final(self, name: str) -> float | None:
        """The value logged at the largest step for metric `name` (last logged on ties); None if absent."""
        series = self.metrics.get(name)
        if not series:
            return None
        best = max(range(len(series)), key=lambda i: (series[i][0], i))
        return float(series[best][1])

    def final_metrics(self, names: Iterable[str] | None = None) -> dict[str, float]:
        """`final(name)` for each requested (default: every) metric that was logged."""
        names = list(self.metrics) if names is None else list(names)
        out = {}
        for name in names:
            value = self.final(name)
            if value is not None:
                out[name] = value
        return out

    @property
    def checkpoint(self) -> str | None:
        """`info["checkpoint"]`: path of the final checkpoint, if the run recorded one."""
        ckpt = self.info.get("checkpoint")
        return str(ckpt) if ckpt else None

    def checkpoint_path(self) -> Path | None:
        """The final checkpoint as an existing file: the path as logged (absolute or relative to
        the working directory), else relative to the file store or its parent, else in the run
        folder's `archive/<time>/` (where a later `resume=False` run moved it); None if not found."""
        ckpt = self.checkpoint
        if not ckpt:
            return None
        path = Path(ckpt)
        candidates = [path]
        if not path.is_absolute() and self.source and "://" not in self.source:
            store = Path(self.source)
            candidates += [store.parent / path, store / path]
        for c in candidates:
            if c.is_file():
                return c
        for c in candidates:  # only when unambiguous: another run may have used the same step
            archived = list(c.parent.glob(f"archive/*/{c.name}"))
            if len(archived) == 1:
                return archived[0]
        return None


@dataclass(frozen=True)
class StoreSpec:
    """Where runs live: `kind` is "file" (with `path`) or "mongo" (with `url` and `db`)."""

    kind: str
    path: Path | None = None
    url: str | None = None
    db: str | None = None

    @property
    def host_port_db(self) -> str:
        """Sacred's / Omniboard's `host:port:db` form of a MongoDB store."""
        if self.kind != "mongo":
            raise ValueError(f"{self} is not a MongoDB store")
        from urllib.parse import urlsplit

        parts = urlsplit(self.url or "")
        host = parts.hostname or "127.0.0.1"
        port = parts.port or 27017
        return f"{host}:{port}:{self.db}"

    @property
    def db_url(self) -> str:
        """`mongodb://…/db[?options]`: the server URL with the database in its path."""
        if self.kind != "mongo":
            raise ValueError(f"{self} is not a MongoDB store")
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(self.url or "")
        return urlunsplit((parts.scheme, parts.netloc, f"/{self.db}", parts.query, ""))

    def __str__(self) -> str:
        """For messages: a MongoDB URL never shows its user name or password."""
        from sri.credentials import redact

        return str(self.path) if self.kind == "file" else f"{redact(self.url or '')} (db {self.db})"


def resolve_store(store: str | os.PathLike | StoreSpec | None = None) -> StoreSpec:
    """Interpret `store`: a directory, a `mongodb://host:port/db` URL or `host:port:db`.

    None means `$SRI_MONGO_URL` when set, else the file store `runs/`.
    """
    if isinstance(store, StoreSpec):
        return store
    if store is None:
        store = os.environ.get("SRI_MONGO_URL") or DEFAULT_FILE_STORE
    if isinstance(store, os.PathLike):
        return StoreSpec("file", path=Path(store))
    text = str(store).strip()
    if not text:
        raise ValueError("empty run store: give a directory, a mongodb:// URL or host:port:db")
    if text.startswith(("mongodb://", "mongodb+srv://")):
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(text)
        db = parts.path.lstrip("/") or DEFAULT_MONGO_DB
        if "/" in db:
            raise ValueError(f"bad MongoDB URL {text!r}: the path must be a single database name")
        url = urlunsplit((parts.scheme, parts.netloc, "/", parts.query, ""))
        return StoreSpec("mongo", url=url, db=db)
    m = _HOST_PORT_DB.match(text)
    if m and not Path(text).exists():
        host = m.group("host")
        return StoreSpec("mongo", url=f"mongodb://{host}:{m.group('port')}/", db=m.group("db"))
    return StoreSpec("file", path=Path(text))


def load_runs(store: str | os.PathLike | StoreSpec | None = None, *,
              final_only: bool = False) -> list[RunRecord]:
    """Every run in `store` (see `resolve_store`), sorted by id. `final_only` keeps only each
    metric's final (step, value): what reports need, in memory bounded by the number of runs."""
    spec = resolve_store(store)
    if spec.kind == "file":
        return _load_file_store(spec.path, final_only)
    return _load_mongo(spec, final_only=final_only)


def final_entry(series: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """The entry `RunRecord.final` reads (largest step, last logged on ties), as a one-item series."""
    if not series:
        return []
    best = max(range(len(series)), key=lambda i: (series[i][0], i))
    return [series[best]]


# -- file store ---------------------------------------------------------------------------------
def _read_json(path: Path, default: Any) -> Any:
    if not path.is_file():
        return default
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise RuntimeError(f"cannot read {path} ({e}); the run directory may be from a crashed "
                           f"run: delete it or repair the JSON") from e


def _parse_time(value: Any) -> _dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, _dt.datetime):
        return value
    if isinstance(value, dict) and "$date" in value:  # mongo extended JSON
        value = value["$date"]
    if isinstance(value, (int, float)):
        return _dt.datetime.fromtimestamp(value / 1000.0, tz=_dt.timezone.utc).replace(tzinfo=None)
    text = str(value)
    if text.endswith("Z"):
        text = text[:-1]
    try:
        parsed = _dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    # Sacred stores naive UTC times; keep all times naive so they compare.
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return parsed


def _series(entry: dict[str, Any], where: str) -> list[tuple[int, float]]:
    steps = entry.get("steps") or []
    values = entry.get("values") or []
    if len(steps) != len(values):
        raise RuntimeError(f"{where}: {len(steps)} steps but {len(values)} values")
    out = []
    for s, v in zip(steps, values):
        try:
            out.append((int(s), float(v)))
        except (TypeError, ValueError):
            continue  # a non-numeric value (Sacred allows anything) is not a scalar metric
    return out


def _id_key(r: RunRecord) -> tuple[bool, Any]:
    return (not isinstance(r.id, int), r.id if isinstance(r.id, int) else str(r.id))


def _run_id(name: str) -> Any:
    return int(name) if name.isdigit() else name


def _read_file_run(run_dir: Path, store: Path, final_only: bool = False) -> RunRecord:
    """One run folder of a Sacred file store; RuntimeError naming the file when it is damaged."""
    run = _read_json(run_dir / "run.json", {})
    metrics_raw = _read_json(run_dir / "metrics.json", {})
    metrics = {name: _series(entry, f"{run_dir / 'metrics.json'} [{name}]")
               for name, entry in metrics_raw.items() if isinstance(entry, dict)}
    del metrics_raw
    if final_only:
        metrics = {name: final_entry(series) for name, series in metrics.items()}
    return RunRecord(
        id=_run_id(run_dir.name),
        experiment=str((run.get("experiment") or {}).get("name", "")),
        status=str(run.get("status", "UNKNOWN")),
        config=_read_json(run_dir / "config.json", {}),
        info=_read_json(run_dir / "info.json", {}),
        metrics=metrics,
        start_time=_parse_time(run.get("start_time")),
        stop_time=_parse_time(run.get("stop_time")),
        result=run.get("result"),
        source=str(store),
    )


def _load_file_store(path: Path | None, final_only: bool = False) -> list[RunRecord]:
    assert path is not None
    if not path.exists():
        raise FileNotFoundError(
            f"run store {path} does not exist: run an experiment first (e.g. `python "
            f"experiments/table3_ablation.py with smoke`) or pass --store DIR / a MongoDB URL")
    if not path.is_dir():
        raise NotADirectoryError(f"run store {path} is not a directory")
    records = []
    for run_dir in path.iterdir():
        run_json = run_dir / "run.json"
        if not run_dir.is_dir() or not run_json.is_file() or run_dir.name.startswith("_"):
            continue
        try:  # one damaged run (a crash, a full disk) must not hide every other run of the store
            records.append(_read_file_run(run_dir, path, final_only))
        except (RuntimeError, AttributeError, TypeError) as e:
            msg = f"skipping run {run_dir} of store {path}: {e}"
            warnings.warn(msg)
            print(f"[sri] WARNING: {msg}", file=sys.stderr)
    records.sort(key=_id_key)
    return records


# -- MongoDB ------------------------------------------------------------------------------------
def _load_mongo(spec: StoreSpec, timeout_ms: int = 5000, *, final_only: bool = False) -> list[RunRecord]:
    import pymongo
    from pymongo.errors import PyMongoError

    client = pymongo.MongoClient(spec.url, serverSelectionTimeoutMS=timeout_ms)
    try:
        db = client[spec.db]
        runs = list(db["runs"].find({}, {"captured_out": 0, "experiment.sources": 0,
                                         "experiment.dependencies": 0, "host": 0}))
        metrics_by_run: dict[Any, dict[str, list[tuple[int, float]]]] = {}
        for doc in db["metrics"].find({}):  # a cursor: one series in memory at a time
            series = _series(doc, f"metrics document {doc.get('_id')}")
            if final_only:
                series = final_entry(series)
            metrics_by_run.setdefault(doc.get("run_id"), {})[str(doc.get("name"))] = series
    except PyMongoError as e:
        from sri.credentials import redact
        from sri.tracking.observers import MongoAuthError, is_auth_failure

        if is_auth_failure(e):
            raise MongoAuthError(f"cannot read runs from MongoDB {spec}: authentication failed; "
                                 f"check the user name and password in the URL") from None
        raise ConnectionError(f"cannot read runs from MongoDB {spec} ({type(e).__name__}: "
                              f"{redact(str(e))}); is the server running? "
                              f"(`python -m sri.tracking.mongo_server`)") from None
    finally:
        client.close()
    records = []
    for doc in runs:
        info = dict(doc.get("info") or {})
        records.append(RunRecord(
            id=doc.get("_id"),
            experiment=str((doc.get("experiment") or {}).get("name", "")),
            status=str(doc.get("status", "UNKNOWN")),
            config=dict(doc.get("config") or {}),
            info=info,
            metrics=metrics_by_run.get(doc.get("_id"), {}),
            start_time=_parse_time(doc.get("start_time")),
            stop_time=_parse_time(doc.get("stop_time")),
            result=doc.get("result"),
            source=str(spec),
        ))
    records.sort(key=_id_key)
    return records
