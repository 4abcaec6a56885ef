"""Keeping MongoDB passwords out of what the suite prints, logs, stores and puts on command lines."""
from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["redact", "has_credentials", "write_secret", "read_secret"]

_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<cred>[^@/\s?#]*)@")


def redact(text: object) -> str:
    """`text` (a URL, or a message containing URLs) with every `user:password@` replaced by
    `***@`. The one function for anything that prints, logs or stores a MongoDB address."""
    return _CREDENTIALS.sub(lambda m: m.group("scheme") + "***@", str(text))


def has_credentials(url: str | None) -> bool:
    """Whether a URL carries a user name or password."""
    if not url or "://" not in url:
        return False
    parts = urlsplit(url)
    return bool(parts.username or parts.password)


def write_secret(path: str | os.PathLike, value: str) -> Path:
    """Write `value` to a file only its owner can read (0600, created so from the start)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing file keeps its mode under O_CREAT
        os.write(fd, value.encode())
    finally:
        os.close(fd)
    return path


def read_secret(path: str | os.PathLike) -> str:
    """What `write_secret` wrote."""
    return Path(path).read_text().strip()
