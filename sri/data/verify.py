"""`sri data verify`: are the files a run needs where the suite looks for them, whole and unaltered?

Checks, without a network: each real dataset's converted cache under the data root (finished, its
arrays of the shapes and sizes `meta.json` promises, and with `--hash` the SHA-256 recorded when
it was made), and the Inception weights FID needs (present, and their SHA-256 starting with the
8 hex digits their file name carries). Each missing or damaged file is named with the command or
copy that fixes it: what an offline machine needs before its first run.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from sri.checksums import file_sha256
from sri.data.cache import (
    ARRAYS,
    FORMAT_VERSION,
    SPLITS,
    array_problem,
    is_complete,
    make_command_hint,
    read_meta,
)

__all__ = ["verify_cache", "verify_inception_weights", "verify"]

def verify_cache(path: str | os.PathLike, name: str, *, hash_files: bool = False) -> dict[str, Any]:
    """{"name", "path", "status": ok|missing|incomplete|damaged, "problems", "fix"} of one cache."""
    path = Path(path)
    fix = make_command_hint(name, path)
    out: dict[str, Any] = {"name": name, "path": str(path), "problems": [], "fix": fix}
    if not path.exists():
        return {**out, "status": "missing", "problems": [f"no cache at {path}"]}
    if not is_complete(path):
        why = "an unfinished conversion (re-run the command to resume it)" if (path / "shards").is_dir() \
            else "no COMPLETE marker or meta.json"
        return {**out, "status": "incomplete", "problems": [f"{path}: {why}"]}
    try:
        meta = read_meta(path)
    except ValueError as e:
        return {**out, "status": "damaged", "problems": [f"{path / 'meta.json'} cannot be read ({e})"]}
    problems = []
    if meta.get("dataset") != name:
        problems.append(f"{path} holds a {meta.get('dataset')!r} cache, not {name!r}")
    if meta.get("format_version") != FORMAT_VERSION:
        problems.append(f"cache format version {meta.get('format_version')}, expected {FORMAT_VERSION}")
    size = int(meta.get("image_size", 0))
    for split in SPLITS:
        n = int(meta.get("counts", {}).get(split, 0))
        for field in ARRAYS:
            problem = array_problem(path / split / f"{field}.npy", field, n, size)
            if problem:
                problems.append(problem)
    sums = meta.get("checksums") or {}
    if hash_files and not problems:
        if not sums:
            out["note"] = "made before caches recorded checksums: sizes and shapes checked, not contents"
        for rel, want in sums.items():
            if file_sha256(path / rel) != want:
                problems.append(f"{path / rel}: SHA-256 differs from the one recorded when the cache was made")
    out["counts"] = meta.get("counts")
    out["image_size"] = size
    out["hashed"] = bool(hash_files and sums and not problems)
    return {**out, "status": "damaged" if problems else "ok", "problems": problems}


def verify_inception_weights(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """{"status": ok|missing|damaged, "path", "problems", "fix"} of FID's Inception weights."""
    from sri.metrics.fid import (
        INCEPTION_WEIGHTS_FILE,
        INCEPTION_WEIGHTS_SHA256,
        INCEPTION_WEIGHTS_SHA256_PREFIX,
        INCEPTION_WEIGHTS_URL,
        WEIGHTS_ENV,
        default_inception_weights_path,
    )

    where = Path(path or os.environ.get(WEIGHTS_ENV) or default_inception_weights_path()).expanduser()
    fix = (f"copy {INCEPTION_WEIGHTS_FILE} (from {INCEPTION_WEIGHTS_URL}) to {where}, or point "
           f"${WEIGHTS_ENV} at it")
    out = {"name": "inception weights (FID)", "path": str(where), "fix": fix}
    if not where.is_file():
        return {**out, "status": "missing", "problems": [f"no file at {where}"]}
    digest = file_sha256(where)
    ok = digest == INCEPTION_WEIGHTS_SHA256 if INCEPTION_WEIGHTS_SHA256 else \
        digest.startswith(INCEPTION_WEIGHTS_SHA256_PREFIX)
    if not ok:
        return {**out, "status": "damaged",
                "problems": [f"{where}: SHA-256 {digest[:16]}... does not match the pinned "
                             f"{(INCEPTION_WEIGHTS_SHA256 or INCEPTION_WEIGHTS_SHA256_PREFIX)[:16]}"]}
    return {**out, "status": "ok", "problems": []}


def verify(root: str | os.PathLike, datasets: Iterable[str], *, hash_files: bool = False,
           weights: bool = True) -> list[dict[str, Any]]:
    """One report per dataset cache under `root` (`root/<name>`), then the Inception weights."""
    reports = [verify_cache(Path(root) / name, name, hash_files=hash_files) for name in datasets]
    if weights:
        reports.append(verify_inception_weights())
    return reports
