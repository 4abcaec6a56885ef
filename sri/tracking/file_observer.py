"""Sacred's file store, made safe against a full disk: whole-file writes, nothing lost, failure named.

Sacred's FileStorageObserver rewrites `metrics.json`, `run.json` and `info.json` in place: on a
full disk the truncated file stays 0 bytes (every metric logged before is gone), the error is only
logged, and the run still ends COMPLETED. `SafeFileStorageObserver` writes each file to a
temporary beside it and renames it into place (the previous version survives a failed write),
keeps metrics it could not write and retries them at the next heartbeat, and records the first
write error so that the run can be failed with a message naming the folder (`raise_if_failed`).
"""
from __future__ import annotations

import json
import os
from typing import Any

from sacred.observers import FileStorageObserver
from sacred.serializer import flatten

from sri.atomicio import atomic_open

__all__ = ["SafeFileStorageObserver", "RunStoreWriteError", "raise_if_store_failed"]


class RunStoreWriteError(OSError):
    """The run store could not be written (disk full, read-only, removed): the run must not count."""


class SafeFileStorageObserver(FileStorageObserver):
    """A FileStorageObserver with atomic writes, retried metrics and a recorded write error."""

    write_error: OSError | None = None
    _pending: dict[str, dict[str, list]] | None = None

    def save_json(self, obj: Any, filename: str) -> None:
        try:
            with atomic_open(os.path.join(self.dir, filename), "w") as f:
                json.dump(flatten(obj), f, sort_keys=True, indent=2)
        except OSError as e:
            self._record(e, filename)
            raise

    def save_cout(self) -> None:
        try:
            super().save_cout()
        except OSError as e:
            self._record(e, "cout.txt")
            raise

    def log_metrics(self, metrics_by_name: dict[str, Any], info: Any) -> None:
        """Add new measurements to metrics.json; on a failed write keep them for the next call."""
        pending = self._pending or {}
        for name, ptr in metrics_by_name.items():
            entry = pending.setdefault(name, {"values": [], "steps": [], "timestamps": []})
            entry["values"] += list(ptr["values"])
            entry["steps"] += list(ptr["steps"])
            entry["timestamps"] += [ts.isoformat() if hasattr(ts, "isoformat") else ts for ts in ptr["timestamps"]]
        self._pending = pending
        path = os.path.join(self.dir, "metrics.json")
        try:
            with open(path) as f:
                saved = json.load(f)
        except (OSError, json.JSONDecodeError):
            saved = {}
        for name, entry in pending.items():
            dst = saved.setdefault(name, {"values": [], "steps": [], "timestamps": []})
            for key in ("values", "steps", "timestamps"):
                dst[key] += entry[key]
        self.save_json(saved, "metrics.json")  # raises (and keeps `pending`) when the disk is full
        self._pending = None

    def _record(self, e: OSError, filename: str) -> None:
        if self.write_error is None:
            from sri.checkpoint import write_error_reason

            self.write_error = RunStoreWriteError(
                e.errno, f"cannot write {filename} in the run store folder {self.dir}: {write_error_reason(e)}")


def raise_if_store_failed(observers: list[Any]) -> None:
    """RunStoreWriteError for the first observer that could not write its files (the run fails)."""
    for obs in observers:
        err = getattr(obs, "write_error", None)
        if err is not None:
            raise RunStoreWriteError(err.errno, f"{err.strerror}; the metrics logged before the failure are kept "
                                                f"in metrics.json; free space and rerun to resume from the checkpoint")
