"""Conversion of the ShapeStacks tree into a cache.

Input: `ROOT/splits/default/{train,eval,test}.txt` (one scenario per line; eval -> our "val"),
`ROOT/recordings/<scenario>/rgb-*-cam_N-mono-0.png` (224x224 RGB) and the instance masks
`iseg-w=0-f=0-l=0-c=original-cam_N-mono-0.map` in `recordings/<scenario>/` or
`iseg/<scenario>/` (a PNG whose value is 32 * label). Every rgb image of a listed scenario is
one item, paired with the mask of its camera. Preprocessing as GENESIS: centre crop 196
(offset round((224-196)/2) = 14), resize to 64 with PIL (bilinear for images, nearest for
masks, as torchvision on PIL images).

Labels: 0 = background, 1..6 = shapes; 7 ("unassigned": pixels the renderer gave to no
shape) is mapped to background 0, since no object owns them and ARI-FG must not count them
as an object. The shape labels still present after resizing are renumbered 1..n in label
order (`num_objects` = n).
"""
from __future__ import annotations

import os
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sri.data.cache import CacheWriter, read_meta
from sri.data.errors import DataError
from sri.data.multi_object import relabel

CROP = 196
SPLIT_FILES = {"train": "train.txt", "val": "eval.txt", "test": "test.txt"}
_CAM = re.compile(r"cam_(\d+)-mono-0\.png$")


def mask_name(cam: str) -> str:
    """The instance-mask file name of camera `cam`."""
    return f"iseg-w=0-f=0-l=0-c=original-cam_{cam}-mono-0.map"


def list_items(root: str | os.PathLike) -> dict[str, list[tuple[str, str, str]]]:
    """split -> [(scenario, rgb path, mask path)], sorted; checks every listed scenario exists."""
    root = Path(root)
    rec = root / "recordings"
    if not rec.is_dir():
        raise DataError(f"{rec} is missing: {root} is not a ShapeStacks root (expected recordings/ and "
                        "splits/default/). Download it with: sri data download shapestacks --out DIR")
    out: dict[str, list[tuple[str, str, str]]] = {}
    for split, fname in SPLIT_FILES.items():
        sf = root / "splits" / "default" / fname
        if not sf.is_file():
            raise DataError(f"{sf} is missing: the ShapeStacks split files come with shapestacks-meta.tar.gz")
        items = []
        for line_no, line in enumerate(sf.read_text().splitlines(), 1):
            scen = line.strip()
            if not scen:
                continue
            sdir = rec / scen
            if not sdir.is_dir():
                raise DataError(f"{sf} line {line_no} names scenario {scen!r}, but {sdir} does not exist "
                                "(incomplete download or wrong root)")
            rgbs = sorted(p for p in os.listdir(sdir) if p.startswith("rgb-") and _CAM.search(p))
            if not rgbs:
                raise DataError(f"scenario {scen!r}: no rgb-*-cam_N-mono-0.png images in {sdir}")
            for r in rgbs:
                cam = _CAM.search(r).group(1)
                cands = [sdir / mask_name(cam), root / "iseg" / scen / mask_name(cam)]
                m = next((c for c in cands if c.is_file()), None)
                if m is None:
                    raise DataError(f"scenario {scen!r}: mask {mask_name(cam)} not found in {cands[0].parent} "
                                    f"or {cands[1].parent} (extract shapestacks-iseg.tar.gz)")
                items.append((scen, str(sdir / r), str(m)))
        out[split] = items
    return out


def _crop_box(w: int, h: int, scen: str, path: str) -> tuple[int, int, int, int]:
    if w < CROP or h < CROP:
        raise DataError(f"scenario {scen!r}: {path} is {w}x{h}, smaller than the {CROP} crop")
    left, top = int(round((w - CROP) / 2.0)), int(round((h - CROP) / 2.0))
    return left, top, left + CROP, top + CROP


def mask_labels(arr: np.ndarray, path: str = "mask") -> np.ndarray:
    """Labels 0-7 of a mask file: the official files store 32 * label; a mask saved with the raw
    labels 0-7 (e.g. re-exported by another tool) is taken as it is; anything else is a DataError."""
    values = np.unique(arr)
    if values.size and values.max() > 255:
        raise DataError(f"{path}: mask values up to {int(values.max())}; expected 32 * label (0-224)")
    if np.all(values % 32 == 0) and values.max(initial=0) <= 224:
        return (arr.astype(np.uint8) // 32).astype(np.uint8)
    if values.max(initial=0) <= 7:
        return arr.astype(np.uint8)
    odd = [int(v) for v in values if v % 32 and v > 7][:5]
    raise DataError(f"{path}: mask values {odd} are neither 32 * label (official files) nor raw labels 0-7; "
                    f"is this a ShapeStacks iseg mask?")


def load_item(scen: str, rgb: str, mask: str, size: int) -> tuple[np.ndarray, np.ndarray, int]:
    """One (image, label map, num_objects) after crop and resize."""
    try:
        with Image.open(rgb) as im:
            im = im.convert("RGB")
            box = _crop_box(im.width, im.height, scen, rgb)
            img = np.asarray(im.crop(box).resize((size, size), Image.BILINEAR), np.uint8)
        with Image.open(mask) as mm:
            arr = np.asarray(mm)
    except (OSError, SyntaxError) as e:
        what = e.filename if getattr(e, "filename", None) else f"{rgb} / {mask}"
        raise DataError(f"scenario {scen!r}: cannot read {what} ({e})") from e
    if arr.ndim == 3:
        arr = arr[..., 0]
    if arr.shape[::-1] != (im.width, im.height):
        raise DataError(f"scenario {scen!r}: mask {mask} is {arr.shape[1]}x{arr.shape[0]} but the image is "
                        f"{im.width}x{im.height}")
    labels = mask_labels(arr, mask)
    labels[labels == 7] = 0  # unassigned -> background
    lab = np.asarray(Image.fromarray(labels).crop(box).resize((size, size), Image.NEAREST), np.uint8)
    lab, n = relabel(lab, 1)
    return img, lab, n


def _load_chunk(args: tuple[list[tuple[str, str, str]], int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    items, size = args
    res = [load_item(s, r, m, size) for s, r, m in items]
    return (np.stack([r[0] for r in res]), np.stack([r[1] for r in res]),
            np.array([r[2] for r in res], np.uint8))


def convert_shapestacks(src: str | os.PathLike, out: str | os.PathLike, *, image_size: int = 64,
                        shard_size: int = 2000, workers: int | None = None, overwrite: bool = False,
                        progress: bool | None = None) -> dict[str, Any]:
    """Convert a ShapeStacks root into a cache at `out` (resumable). Returns the cache's meta dict."""
    src = Path(src)
    items = list_items(src)
    params = {"source_name": src.name, "counts": {k: len(v) for k, v in items.items()},
              "image_size": int(image_size), "shard_size": int(shard_size)}
    writer = CacheWriter(out, "shapestacks", params, overwrite=overwrite)
    if writer.existing_complete():
        return read_meta(out)
    jobs = []
    for split in ("train", "val", "test"):
        lst = items[split]
        for k in range(0, max(len(lst), 1), shard_size):
            jobs.append((f"{split}-{k // shard_size:05d}", lst[k:k + shard_size]))
    todo = [(name, chunk) for name, chunk in jobs if not writer.is_done(name)]
    from tqdm import tqdm
    show = sys.stderr.isatty() if progress is None else progress
    workers = workers if workers is not None else min(4, os.cpu_count() or 1)
    bar = tqdm(total=sum(len(c) for _, c in todo), unit="img", desc="convert shapestacks", disable=not show)
    sub = 200  # images per task, so the progress bar moves

    def tasks(chunk):
        return [(chunk[i:i + sub], image_size) for i in range(0, len(chunk), sub)]

    try:
        pool = ProcessPoolExecutor(workers) if workers > 1 else None
        try:
            for name, chunk in todo:
                parts = []
                it = pool.map(_load_chunk, tasks(chunk)) if pool else map(_load_chunk, tasks(chunk))
                for part in it:
                    parts.append(part)
                    bar.update(len(part[0]))
                if parts:
                    imgs, labs, ns = (np.concatenate([p[i] for p in parts]) for i in range(3))
                else:
                    imgs = np.zeros((0, image_size, image_size, 3), np.uint8)
                    labs = np.zeros((0, image_size, image_size), np.uint8)
                    ns = np.zeros(0, np.uint8)
                writer.write_shard(name, imgs, labs, ns)
        finally:
            if pool:
                pool.shutdown(cancel_futures=True)
    finally:
        bar.close()
    if not any(np.load(writer.shard_dir / f"{name}.npz")["num_objects"].any() for name, _ in jobs
               if writer.is_done(name)):
        raise DataError(f"{src}: no object in any converted mask: the masks are not in an encoding this "
                        f"converter knows (32 * label or raw labels 0-7); nothing was finalised")
    order = [name for name, _ in jobs]
    counts = {s: len(items[s]) for s in ("train", "val", "test")}
    ranges, pos = {}, 0
    for s in ("train", "val", "test"):
        ranges[s] = (pos, pos + counts[s])
        pos += counts[s]
    return writer.finalize(order, ranges, image_size, source=str(src.resolve()), extra={
        "split_rule": "splits/default/{train,eval,test}.txt (eval -> val)",
        "label_7": "unassigned pixels mapped to background 0"})
