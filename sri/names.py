"""Names that become parts of file paths (datasets, rows, sweep ids, run names) checked first."""
from __future__ import annotations

import re

__all__ = ["is_safe_name", "check_name", "UnsafeName"]

_SAFE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}")


class UnsafeName(ValueError):
    """A name from a store or a user that cannot be used as one path component."""


def is_safe_name(value: object) -> bool:
    """True for one path component of letters, digits, '_', '.', '+', '-' (no leading dot, no '..')."""
    return isinstance(value, str) and bool(_SAFE.fullmatch(value)) and ".." not in value


def check_name(value: object, what: str) -> str:
    """`value` if `is_safe_name`, else UnsafeName saying which name is wrong and what is allowed."""
    if not is_safe_name(value):
        raise UnsafeName(f"{what} {value!r} cannot be used in a file name: use letters, digits, '_', '.', "
                         f"'+' and '-' only (no '/', no '..', not starting with '.')")
    return str(value)
