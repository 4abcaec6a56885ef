"""Files written whole or not at all: a full disk or a kill never leaves a half-written report."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

__all__ = ["atomic_open", "atomic_write_text", "atomic_target"]


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `path` (same suffix) to write to; moved over `path` on success, deleted
    on any error, so an existing good file is kept when the write fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kw: object) -> Iterator[IO]:
    """`open(path, mode)` that replaces `path` only once the file is complete and flushed to disk."""
    with atomic_target(path) as tmp, open(tmp, mode, **kw) as f:  # type: ignore[call-overload]
        yield f
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """`Path.write_text`, atomically."""
    with atomic_open(path, "w") as f:
        f.write(text)
    return Path(path)
