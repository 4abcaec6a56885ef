"""Atomic claims: at most one worker holds a planned run (by its config key) at a time.

File store: `<store>/_sweeps/claims/<key>.json`, created with a hard link (atomic, and never seen
half-written) and replaced with `os.replace`; a stale claim is taken over by renaming it away
first, which only one contender can do. MongoDB: the `sweep_claims` collection of the store's
database, `_id` = key (insert fails for the second claimant; updates and take-overs match on the
holder's token).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import socket
import uuid
from pathlib import Path
from typing import Any

from sri.tracking.store import StoreSpec, resolve_store

# queued: submitted, not started; running; interrupted: stopped on a signal, will be resumed
# (requeue); completed; failed: released, a later sweep launches it again
STATES = ("queued", "running", "interrupted", "completed", "failed")


def now() -> str:
    """UTC time for claim records."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_claim(key: str, *, sweep: str, name: str, launcher: str, **extra: Any) -> dict[str, Any]:
    """A fresh claim record held by this process (state `queued`)."""
    return {"key": key, "token": uuid.uuid4().hex, "sweep": sweep, "name": name, "state": "queued",
            "launcher": launcher, "host": socket.gethostname(), "pid": os.getpid(), "job_id": None,
            "updated": now(), **extra}


class FileClaims:
    """Claims in a folder of JSON files (one per run key)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def _write_tmp(self, record: dict[str, Any]) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{record['key']}.{uuid.uuid4().hex}.tmp"
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
        return tmp

    def get(self, key: str) -> dict[str, Any] | None:
        """The claim on `key`, or None."""
        try:
            return json.loads(self._path(key).read_text())
        except FileNotFoundError:
            return None
        except ValueError as e:  # never half-written by us; a hand-edited file
            raise RuntimeError(f"claim file {self._path(key)} is not valid JSON ({e}); delete it "
                               f"to release the run") from None

    def all(self) -> list[dict[str, Any]]:
        """Every claim."""
        if not self.folder.is_dir():
            return []
        return [c for p in sorted(self.folder.glob("*.json")) if (c := self.get(p.stem)) is not None]

    def create(self, record: dict[str, Any]) -> bool:
        """Claim `record["key"]`; False when someone holds it already."""
        tmp = self._write_tmp(record)
        try:
            os.link(tmp, self._path(record["key"]))
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)

    def update(self, key: str, token: str, **fields: Any) -> bool:
        """Change the claim's fields if `token` still holds it; False otherwise."""
        current = self.get(key)
        if current is None or current.get("token") != token:
            return False
        tmp = self._write_tmp({**current, **fields, "updated": now()})
        os.replace(tmp, self._path(key))
        return True

    def take_over(self, key: str, old_token: str, record: dict[str, Any]) -> bool:
        """Replace a stale claim (held by `old_token`) with `record`; only one contender wins."""
        aside = self.folder / f".{key}.{uuid.uuid4().hex}.stale"
        try:
            os.rename(self._path(key), aside)
        except FileNotFoundError:
            return self.create(record)
        try:
            old = json.loads(aside.read_text())
        except ValueError:
            old = {}
        if old.get("token") != old_token:  # it changed hands meanwhile: put it back
            try:
                os.link(aside, self._path(key))
            except FileExistsError:
                pass
            finally:
                aside.unlink(missing_ok=True)
            return False
        aside.unlink(missing_ok=True)
        return self.create(record)


class MongoClaims:
    """Claims in the `sweep_claims` collection of a MongoDB store."""

    def __init__(self, spec: StoreSpec, timeout_ms: int = 5000) -> None:
        import pymongo

        self.client = pymongo.MongoClient(spec.url, serverSelectionTimeoutMS=timeout_ms)
        self.coll = self.client[spec.db]["sweep_claims"]

    def get(self, key: str) -> dict[str, Any] | None:
        """The claim on `key`, or None."""
        doc = self.coll.find_one({"_id": key})
        return None if doc is None else {k: v for k, v in doc.items() if k != "_id"}

    def all(self) -> list[dict[str, Any]]:
        """Every claim."""
        return [{k: v for k, v in d.items() if k != "_id"} for d in self.coll.find({})]

    def create(self, record: dict[str, Any]) -> bool:
        """Claim `record["key"]`; False when someone holds it already."""
        from pymongo.errors import DuplicateKeyError

        try:
            self.coll.insert_one({"_id": record["key"], **record})
            return True
        except DuplicateKeyError:
            return False

    def update(self, key: str, token: str, **fields: Any) -> bool:
        """Change the claim's fields if `token` still holds it; False otherwise."""
        res = self.coll.update_one({"_id": key, "token": token}, {"$set": {**fields, "updated": now()}})
        return res.matched_count == 1

    def take_over(self, key: str, old_token: str, record: dict[str, Any]) -> bool:
        """Replace a stale claim (held by `old_token`) with `record`; only one contender wins."""
        res = self.coll.replace_one({"_id": key, "token": old_token}, {"_id": key, **record})
        return res.matched_count == 1


def sweep_folder(store: str | os.PathLike | StoreSpec | None, runs_dir: str | os.PathLike | None = None) -> Path:
    """Where a sweep keeps its claims (file store), job logs and submitit folders:
    `<file store>/_sweeps`, or `<runs_dir or $SRI_RUNS_DIR or runs>/_sweeps` with MongoDB."""
    spec = resolve_store(store)
    if spec.kind == "file":
        return Path(spec.path).resolve() / "_sweeps"
    return Path(runs_dir or os.environ.get("SRI_RUNS_DIR") or "runs").resolve() / "_sweeps"


def open_claims(store: str | os.PathLike | StoreSpec | None) -> FileClaims | MongoClaims:
    """The claims of `store`'s sweeps."""
    spec = resolve_store(store)
    if spec.kind == "file":
        return FileClaims(sweep_folder(spec) / "claims")
    return MongoClaims(spec)
