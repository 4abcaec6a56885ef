"""The one exception type of `sri.data`."""
from __future__ import annotations


class DataError(ValueError):
    """Bad or missing dataset input; the message names the file/record and the fix."""
