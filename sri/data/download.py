"""Resumable downloads of the official dataset files, then conversion.

Sources (public): DeepMind's `multi-object-datasets` Google Cloud Storage bucket
(`clevr_with_masks/clevr_with_masks_train.tfrecords`, `objects_room/objects_room_train.tfrecords`;
GCS publishes an MD5 per object in the `x-goog-hash` response header, which we verify when
present) and the ShapeStacks site (`shapestacks-{meta,rgb,iseg}.tar.gz`, each with a published
`.md5` file next to it). Sizes are checked against `Content-Length`/`Content-Range`.
Downloads go to `<file>.part` and resume with an HTTP Range request.
"""
from __future__ import annotations

import base64
import hashlib
import os
import re
import sys
import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sri.data.errors import DataError

GCS = "https://storage.googleapis.com/multi-object-datasets"
SHAPESTACKS = "http://shapestacks-file.robots.ox.ac.uk/static/download/v1"

# name -> [(url, url of a published md5 file or None)]
SOURCES: dict[str, list[tuple[str, str | None]]] = {
    "clevr6": [(f"{GCS}/clevr_with_masks/clevr_with_masks_train.tfrecords", None)],
    "objects_room": [(f"{GCS}/objects_room/objects_room_train.tfrecords", None)],
    "shapestacks": [(f"{SHAPESTACKS}/shapestacks-{part}.tar.gz", f"{SHAPESTACKS}/shapestacks-{part}.md5")
                    for part in ("meta", "rgb", "iseg")],
}

Opener = Callable[..., Any]
_CHUNK = 1 << 20


def _md5_of(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def fetch_text(url: str, opener: Opener = urllib.request.urlopen, timeout: float = 60) -> str:
    """The body of a small text file."""
    with opener(urllib.request.Request(url), timeout=timeout) as resp:
        return resp.read().decode("utf-8", "replace")


def parse_md5(text: str) -> str:
    """The first 32-hex-digit token of an md5 file (`<hex>  <name>`)."""
    m = re.search(r"\b[0-9a-fA-F]{32}\b", text)
    if not m:
        raise DataError(f"no MD5 checksum found in {text[:80]!r}")
    return m.group(0).lower()


def _goog_md5(headers: Any) -> str | None:
    for value in headers.get_all("x-goog-hash") or []:
        for part in value.split(","):
            k, _, v = part.strip().partition("=")
            if k == "md5" and v:
                return base64.b64decode(v + "=" * (-len(v) % 4)).hex()
    return None


def download(url: str, dest: str | os.PathLike, *, md5: str | None = None, opener: Opener = urllib.request.urlopen,
             progress: bool | None = None, timeout: float = 60) -> Path:
    """Download `url` to `dest`, resuming `dest.part` with HTTP Range; verify size and MD5 when known.

    Returns `dest`. A finished `dest` is kept as is (its MD5 is checked when `md5` is given).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file():
        if md5 and _md5_of(dest) != md5:
            raise DataError(f"{dest}: MD5 mismatch with the published checksum; delete it and download again")
        return dest
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        resp = opener(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # nothing left to fetch
            resp = None
        else:
            raise DataError(f"{url}: HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, OSError) as e:
        raise DataError(f"{url}: cannot connect ({e}); check the network, then re-run to resume") from e
    total = None
    if resp is not None:
        with resp:
            status = getattr(resp, "status", None) or resp.getcode()
            headers = resp.headers
            md5 = md5 or _goog_md5(headers)
            if status == 206:
                m = re.match(r"bytes (\d+)-\d+/(\d+|\*)", headers.get("Content-Range", ""))
                if not m or int(m.group(1)) != have:
                    raise DataError(f"{url}: the server answered the resume request with a wrong range "
                                    f"({headers.get('Content-Range')!r}); delete {part} and retry")
                total = int(m.group(2)) if m.group(2) != "*" else None
                mode = "ab"
            else:  # 200 (or no status for file://): the whole file
                have, mode = 0, "wb"
                cl = headers.get("Content-Length")
                total = int(cl) if cl else None
            from tqdm import tqdm
            show = sys.stderr.isatty() if progress is None else progress
            with open(part, mode) as fh, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                              desc=dest.name, disable=not show) as bar:
                for block in iter(lambda: resp.read(_CHUNK), b""):
                    fh.write(block)
                    bar.update(len(block))
    size = part.stat().st_size
    if total is not None and size != total:
        raise DataError(f"{part}: got {size} of {total} bytes; re-run the command to resume")
    if md5:
        got = _md5_of(part)
        if got != md5:
            part.unlink()
            raise DataError(f"{url}: MD5 {got} does not match the published {md5}; the partial file was "
                            "removed, re-run to download again")
    os.replace(part, dest)
    return dest


def find_shapestacks_root(base: Path) -> Path:
    """The directory under `base` that has `splits/default` and `recordings`."""
    for dirpath, dirnames, _ in os.walk(base):
        p = Path(dirpath)
        if (p / "splits" / "default").is_dir() and (p / "recordings").is_dir():
            return p
        if p.name == "recordings":
            dirnames[:] = []  # do not walk the scenarios
    raise DataError(f"no ShapeStacks root (splits/default/ and recordings/) under {base}")


def download_dataset(name: str, out: str | os.PathLike, *, raw_dir: str | os.PathLike | None = None,
                     convert: bool = True, opener: Opener = urllib.request.urlopen, sources: list | None = None,
                     progress: bool | None = None, **convert_kw: Any) -> dict[str, Any] | Path:
    """Fetch the official files of `name` into `raw_dir` (default `out/download`), then convert into `out`."""
    if name not in SOURCES:
        raise DataError(f"unknown dataset {name!r}; expected one of {sorted(SOURCES)}")
    out = Path(out)
    raw = Path(raw_dir) if raw_dir is not None else out / "download"
    files = []
    for url, md5_url in sources if sources is not None else SOURCES[name]:
        md5 = parse_md5(fetch_text(md5_url, opener)) if md5_url else None
        files.append(download(url, raw / url.rsplit("/", 1)[-1], md5=md5, opener=opener, progress=progress))
    if name == "shapestacks":
        tree = raw / "extracted"
        for f in files:
            marker = tree / f".{f.name}.done"
            if marker.is_file():
                continue
            tree.mkdir(parents=True, exist_ok=True)
            try:
                with tarfile.open(f) as tf:
                    tf.extractall(tree, filter="data")
            except (tarfile.TarError, OSError) as e:
                raise DataError(f"{f}: cannot extract ({e}); delete it and download again") from e
            marker.write_text("ok\n")
        src: Path = find_shapestacks_root(tree)
    else:
        src = files[0]
    if not convert:
        return src
    if name == "shapestacks":
        from sri.data.shapestacks import convert_shapestacks
        return convert_shapestacks(src, out, progress=progress, **convert_kw)
    from sri.data.multi_object import convert_multi_object
    return convert_multi_object(name, src, out, progress=progress, **convert_kw)
