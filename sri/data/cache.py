"""The local dataset cache: resumable sharded writing and fast memory-mapped reading.

Layout of a finished cache directory (format version 1)::

    DIR/meta.json                      dataset, image_size, counts, source, format_version, checksums, ...
    DIR/COMPLETE                       written last, atomically: readers ignore a cache without it
    DIR/{train,val,test}/images.npy    uint8 [N, H, W, 3]
    DIR/{train,val,test}/masks.npy     uint8 [N, H, W]  (0 = background, 1..n objects)
    DIR/{train,val,test}/num_objects.npy  uint8 [N]

While a conversion runs, results go to `DIR/shards/<name>.npz` and `DIR/shards/manifest.json`
lists the finished shards; a re-run with the same settings skips them (resume). The split
files are assembled from the shards at the end, then `meta.json` and `COMPLETE` are written
and the shards removed.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from sri.checksums import file_sha256
from sri.data.errors import DataError

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
_FIELDS = ("images", "masks", "num_objects")


# array file -> (dtype, per-scene shape given the image size s), as the layout above says
ARRAYS: dict[str, tuple[Any, Any]] = {"images": (np.uint8, lambda s: (s, s, 3)),
                                      "masks": (np.uint8, lambda s: (s, s)),
                                      "num_objects": (np.uint8, lambda s: ())}


def array_problem(path: Path, field: str, n: int, size: int) -> str | None:
    """Why the array file `path` is not the `field` array of `n` scenes at `size` (None when it is)."""
    dtype, tail = ARRAYS[field]
    if not path.is_file():
        return f"{path} is missing"
    try:
        arr = np.load(path, mmap_mode="r")
    except (ValueError, OSError, EOFError) as e:  # truncated or not a .npy file
        return f"{path} cannot be read ({e})"
    want = (n, *tail(size))
    if arr.shape != want or arr.dtype != dtype:
        return f"{path} holds {arr.dtype} {tuple(arr.shape)}, meta.json promises {np.dtype(dtype)} {want}"
    expected = arr.offset + arr.nbytes
    if path.stat().st_size != expected:
        return f"{path} has {path.stat().st_size} bytes, {expected} expected"
    return None


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` via a temporary file and `os.replace`."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def is_complete(root: str | os.PathLike) -> bool:
    """True when `root` holds a finished cache."""
    return (Path(root) / "COMPLETE").is_file() and (Path(root) / "meta.json").is_file()


def read_meta(root: str | os.PathLike) -> dict[str, Any]:
    """The `meta.json` of a finished cache."""
    return json.loads((Path(root) / "meta.json").read_text())


class CacheWriter:
    """Writes a cache in named shards with a manifest so that an interrupted run can resume.

    `params` identifies the conversion (dataset, source, sizes...); resuming with different
    params is refused unless `overwrite` (which discards the old shards and cache).
    """

    def __init__(self, out: str | os.PathLike, dataset: str, params: dict[str, Any], *, overwrite: bool = False):
        self.out = Path(out)
        self.dataset = dataset
        self.params = {"dataset": dataset, **params}
        self.shard_dir = self.out / "shards"
        self.manifest_path = self.shard_dir / "manifest.json"
        if self.out.exists() and not self.out.is_dir():
            raise DataError(f"{self.out} exists and is not a directory; choose another --out")
        if overwrite and self.out.exists():
            self._clear()
        self.out.mkdir(parents=True, exist_ok=True)
        self.done: dict[str, dict[str, Any]] = {}
        if self.manifest_path.is_file():
            manifest = json.loads(self.manifest_path.read_text())
            if manifest.get("params") != json.loads(json.dumps(self.params)):
                raise DataError(
                    f"{self.out} holds an unfinished conversion with different settings "
                    f"({manifest.get('params')} vs {self.params}); pass --overwrite to start again "
                    "or choose another --out")
            self.done = manifest.get("done", {})

    def _clear(self) -> None:
        for name in ("COMPLETE", "meta.json"):
            (self.out / name).unlink(missing_ok=True)
        for sub in (*SPLITS, "shards"):
            shutil.rmtree(self.out / sub, ignore_errors=True)

    def existing_complete(self) -> bool:
        """True when the cache is already finished with the same params (nothing to do)."""
        if not is_complete(self.out):
            return False
        meta = read_meta(self.out)
        if meta.get("params") != json.loads(json.dumps(self.params)):
            raise DataError(f"{self.out} already holds a finished {meta.get('dataset')} cache made with "
                            f"different settings ({meta.get('params')}); pass --overwrite to replace it")
        return True

    def is_done(self, name: str) -> bool:
        return name in self.done and (self.shard_dir / f"{name}.npz").is_file()

    def write_shard(self, name: str, images: np.ndarray, masks: np.ndarray, num_objects: np.ndarray,
                    **info: Any) -> None:
        """Store one shard atomically and record it in the manifest."""
        n = len(images)
        if masks.shape != images.shape[:3] or len(num_objects) != n:
            raise ValueError("shard arrays disagree in shape")
        self.shard_dir.mkdir(exist_ok=True)
        path = self.shard_dir / f"{name}.npz"
        tmp = self.shard_dir / f"{name}.tmp.npz"
        np.savez(tmp, images=images.astype(np.uint8, copy=False), masks=masks.astype(np.uint8, copy=False),
                 num_objects=num_objects.astype(np.uint8, copy=False))
        os.replace(tmp, path)
        self.done[name] = {"count": int(n), **info}
        atomic_write_text(self.manifest_path, json.dumps({"params": self.params, "done": self.done}, indent=1))

    def shard_count(self, name: str) -> int:
        return int(self.done[name]["count"])

    def finalize(self, order: list[str], split_ranges: dict[str, tuple[int, int]], image_size: int,
                 source: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Assemble the split files from the shards (global index = concatenation in `order`)."""
        for name in order:
            if not self.is_done(name):
                raise DataError(f"{self.out}: shard {name} is missing; re-run the command to finish it")
        starts, pos = {}, 0
        for name in order:
            starts[name] = pos
            pos += self.shard_count(name)
        counts = {}
        for split in SPLITS:
            lo, hi = split_ranges.get(split, (0, 0))
            n = max(0, hi - lo)
            counts[split] = n
            d = self.out / split
            d.mkdir(exist_ok=True)
            outs = {
                "images": np.lib.format.open_memmap(
                    d / "images.npy.tmp", "w+", np.uint8, (n, image_size, image_size, 3)
                ),
                "masks": np.lib.format.open_memmap(d / "masks.npy.tmp", "w+", np.uint8, (n, image_size, image_size)),
                "num_objects": np.lib.format.open_memmap(d / "num_objects.npy.tmp", "w+", np.uint8, (n,)),
            }
            for name in order:
                s0, c = starts[name], self.shard_count(name)
                a, b = max(lo, s0), min(hi, s0 + c)
                if a >= b:
                    continue
                with np.load(self.shard_dir / f"{name}.npz") as z:
                    for f in _FIELDS:
                        outs[f][a - lo : b - lo] = z[f][a - s0 : b - s0]
            for f, arr in outs.items():
                arr.flush()
                os.replace(d / f"{f}.npy.tmp", d / f"{f}.npy")
            outs.clear()
        meta = {
            "format_version": FORMAT_VERSION,
            "dataset": self.dataset,
            "image_size": int(image_size),
            "counts": counts,
            "source": source,
            "params": self.params,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            # SHA-256 of every array file, so that a copied cache can be checked (`sri data verify --hash`)
            "checksums": {f"{split}/{f}.npy": file_sha256(self.out / split / f"{f}.npy")
                          for split in SPLITS for f in _FIELDS},
            **(extra or {}),
        }
        atomic_write_text(self.out / "meta.json", json.dumps(meta, indent=1))
        atomic_write_text(self.out / "COMPLETE", f"{meta['created']}\n")
        shutil.rmtree(self.shard_dir, ignore_errors=True)
        return meta


def make_command_hint(name: str, path: Path) -> str:
    """The `sri data` command that creates the cache for `name` at `path`."""
    if name in ("blocks", "shapes"):
        return f"sri data synth {name} --out {path} --num 50000 --size 64"
    if name == "shapestacks":
        return (
            f"sri data convert --dataset shapestacks --src SHAPESTACKS_ROOT --out {path}  "
            f"(or: sri data download shapestacks --out {path})"
        )
    src = {"clevr6": "clevr_with_masks_train.tfrecords", "objects_room": "objects_room_train.tfrecords"}.get(
        name, "FILE"
    )
    return f"sri data convert --dataset {name} --src {src} --out {path}  (or: sri data download {name} --out {path})"


def resolve_cache(name: str, root: str | os.PathLike) -> Path:
    """The finished cache directory of `name`: `root` itself or `root/<name>`."""
    root = Path(root)
    for cand in (root, root / name):
        if is_complete(cand):
            meta = read_meta(cand)
            if meta.get("dataset") != name:
                if cand == root and (root / name).is_dir():
                    continue
                raise DataError(
                    f"{cand} holds a {meta.get('dataset')!r} cache, not {name!r}; "
                    f"pass the {name} cache directory as root"
                )
            if meta.get("format_version") != FORMAT_VERSION:
                raise DataError(
                    f"{cand}: cache format version {meta.get('format_version')} is not "
                    f"{FORMAT_VERSION}; re-create it with: {make_command_hint(name, cand)}"
                )
            return cand
    target = root / name
    partial = next((c for c in (root, target) if (c / "shards").is_dir()), None)
    why = (
        f"{partial} holds an unfinished conversion; re-run the command to resume it"
        if partial
        else f"no finished {name} cache at {target} (nor at {root})"
    )
    raise DataError(f"{why}. Create it with: {make_command_hint(name, target)}")


class CacheDataset(Dataset):
    """One split of a finished cache; arrays are memory-mapped lazily (safe with worker processes)."""

    def __init__(self, path: str | os.PathLike, split: str, num: int | None = None):
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; expected one of {SPLITS}")
        self.path = Path(path)
        self.split = split
        try:
            self.meta = read_meta(self.path)
            self.image_size = int(self.meta["image_size"])
            total = int(self.meta["counts"][split])
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(f"{self.path / 'meta.json'} is damaged ({type(e).__name__}: {e}); re-create the "
                            f"cache (check it with `sri data verify`)") from None
        d = self.path / split
        for f in _FIELDS:
            if not (d / f"{f}.npy").is_file():
                raise DataError(f"{d / f'{f}.npy'} is missing; the cache is damaged: re-create it")
        self.length = total if num is None else min(int(num), total)
        self._arrays: dict[str, np.ndarray] | None = None

    def _open(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            d = self.path / self.split
            n = int(self.meta["counts"][self.split])
            for f in _FIELDS:  # a damaged array is named here, not as an IndexError mid-training
                problem = array_problem(d / f"{f}.npy", f, n, self.image_size)
                if problem:
                    raise DataError(f"the cache is damaged: {problem}; re-create it (check it with "
                                    f"`sri data verify`)")
            self._arrays = {f: np.load(d / f"{f}.npy", mmap_mode="r") for f in _FIELDS}
        return self._arrays

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, Any]:
        if i < 0:
            i += self.length
        if not 0 <= i < self.length:
            raise IndexError(i)
        a = self._open()
        return to_item(a["images"][i], a["masks"][i], a["num_objects"][i])

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_arrays"] = None  # each worker opens its own memory maps
        return state


def to_item(image: np.ndarray, mask: np.ndarray, num_objects: Any) -> dict[str, Any]:
    """uint8 arrays -> the dataset item dict (`image` float [3,H,W] in [0,1], `mask` long [H,W])."""
    img = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).permute(2, 0, 1).float().div_(255.0)
    msk = torch.from_numpy(np.array(mask, dtype=np.int64, copy=True))
    return {"image": img, "mask": msk, "num_objects": int(num_objects)}


class ArrayDataset(Dataset):
    """In-memory scenes (on-the-fly synthetic data) with the same items as `CacheDataset`."""

    def __init__(self, images: np.ndarray, masks: np.ndarray, num_objects: np.ndarray):
        self.images, self.masks, self.num_objects = images, masks, num_objects

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return to_item(self.images[i], self.masks[i], self.num_objects[i])
