"""Where the trainer reports to: the `Logger` protocol and its null, in-memory and run adapters.

The Sacred side adapts its `_run` with `as_logger`; nothing here imports Sacred.
"""
from __future__ import annotations

from typing import Any, Protocol


class Logger(Protocol):
    """What the trainer reports to (the Sacred side adapts `_run` to this)."""

    def log_scalar(self, name: str, value: float, step: int) -> None: ...
    def set_info(self, key: str, value: Any) -> None: ...
    def add_artifact(self, path: str, name: str | None = None) -> None: ...


class NullLogger:
    """Discards everything; the default outside Sacred."""

    def log_scalar(self, name: str, value: float, step: int) -> None:
        pass

    def set_info(self, key: str, value: Any) -> None:
        pass

    def add_artifact(self, path: str, name: str | None = None) -> None:
        pass


class MemoryLogger(NullLogger):
    """Keeps scalars, info and artifact paths in dicts (handy in notebooks and tests)."""

    def __init__(self) -> None:
        self.scalars: dict[str, list[tuple[int, float]]] = {}
        self.info: dict[str, Any] = {}
        self.artifacts: list[str] = []

    def log_scalar(self, name: str, value: float, step: int) -> None:
        self.scalars.setdefault(name, []).append((int(step), float(value)))

    def set_info(self, key: str, value: Any) -> None:
        self.info[key] = value

    def add_artifact(self, path: str, name: str | None = None) -> None:
        self.artifacts.append(str(path))


class RunLogger(NullLogger):
    """Duck-typed adapter for an object with `log_scalar`, an `info` dict and `add_artifact`."""

    def __init__(self, run: Any) -> None:
        self.run = run

    def log_scalar(self, name: str, value: float, step: int) -> None:
        self.run.log_scalar(name, float(value), int(step))

    def set_info(self, key: str, value: Any) -> None:
        self.run.info[key] = value

    def add_artifact(self, path: str, name: str | None = None) -> None:
        self.run.add_artifact(str(path), name=name)


def as_logger(run: Any) -> Logger:
    """A Logger for `run`: itself if it already is one, an adapter for a Sacred-like run, or a no-op."""
    if run is None:
        return NullLogger()
    if all(hasattr(run, m) for m in ("log_scalar", "set_info", "add_artifact")):
        return run
    if hasattr(run, "log_scalar") and hasattr(run, "info"):
        return RunLogger(run)
    raise TypeError(f"cannot log to {type(run).__name__}: need log_scalar/set_info/add_artifact")
