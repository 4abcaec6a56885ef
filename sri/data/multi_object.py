"""Conversion of DeepMind's multi-object TFRecords (CLEVR with masks -> CLEVR6, Objects Room).

Per record: the image and the per-entity binary masks are decoded with the minimal
Example parser, turned into one label map (argmax over entities, entity 0 = background;
Objects Room: entities 0-3 = sky/floor/walls = background), cropped and resized (images
bilinear without antialiasing, half-pixel centres, as `torch.nn.functional.interpolate`;
label maps nearest, so image and mask stay aligned), and the object labels renumbered
1..n in entity order over the objects still visible. `num_objects` is that n.

Split rule (our choice): for CLEVR6 the <= 6 objects filter (`visibility.sum() <= 7`) is
applied first and the GENESIS split is taken over the filtered scenes: the first
`test_size` (10K) kept scenes are test, the next `val_size` (10K) validation, the rest
train. So the test set always holds 10K CLEVR6 scenes, as in GENESIS-v2/EMORL evaluation.
Objects Room has no filter, so the split is over the raw records.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sri.data.cache import CacheWriter
from sri.data.errors import DataError
from sri.data.tfrecord import iter_records_threaded, parse_example


@dataclass(frozen=True)
class MultiObjectSpec:
    """Shapes and preprocessing of one DeepMind multi-object dataset."""
    name: str
    height: int
    width: int
    entities: int
    background_entities: int
    crop: tuple[int, int, int, int] | None  # rows r0:r1, cols c0:c1
    image_size: int
    max_visible: int | None  # keep records with visibility.sum() <= this


SPECS = {
    "clevr6": MultiObjectSpec("clevr6", 240, 320, 11, 1, (29, 221, 64, 256), 96, 7),
    "objects_room": MultiObjectSpec("objects_room", 64, 64, 7, 4, None, 64, None),
}


def nearest_indices(n_in: int, n_out: int) -> np.ndarray | slice:
    """Source indices of nearest-neighbour resizing (`floor(i * n_in / n_out)`, as torch 'nearest');
    a slice when the factor is an integer (cheaper on strided views)."""
    if n_in % n_out == 0:
        return slice(0, n_in, n_in // n_out)
    return (np.arange(n_out) * n_in) // n_out


def resize_bilinear(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 [N,H,W,3] -> uint8 [N,size,size,3], bilinear (half-pixel centres, no antialias), rounded."""
    if images.shape[1] == size and images.shape[2] == size:
        return images
    if images.shape[1] == images.shape[2] == 2 * size:
        # exact halving: bilinear = mean of each 2x2 block; integer sum, round half to even
        a = images.astype(np.uint16)
        s = a[:, 0::2, 0::2] + a[:, 1::2, 0::2] + a[:, 0::2, 1::2] + a[:, 1::2, 1::2]
        q, r = s >> 2, s & 3
        q += (r > 2) | ((r == 2) & (q & 1).astype(bool))
        return q.astype(np.uint8)
    t = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    out = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    return out.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def relabel(labels: np.ndarray, background: int) -> tuple[np.ndarray, int]:
    """Entity label map -> 0 background, objects 1..n in entity order over the visible ones."""
    present = np.flatnonzero(np.bincount(labels.reshape(-1), minlength=256))
    objects = present[present >= background]
    lut = np.zeros(256, np.uint8)
    lut[objects] = np.arange(1, len(objects) + 1, dtype=np.uint8)
    return lut[labels], len(objects)


def _feature(f: dict, key: str, size: int, src: str, index: int, shape: str) -> np.ndarray:
    v = f.get(key)
    if v is None:
        raise DataError(f"{src}: record {index} has no feature {key!r} (is this the right --dataset?)")
    if isinstance(v, list) or v.size != size:
        got = len(v) if isinstance(v, list) else v.size
        raise DataError(f"{src}: record {index}: feature {key!r} has {got} values, expected {shape} = {size} "
                        "(wrong --dataset or a corrupt file)")
    return v


def process_record(spec: MultiObjectSpec, data: bytes | memoryview, src: str, index: int,
                   image_size: int | None = None) -> tuple[np.ndarray, np.ndarray, int] | None:
    """One record -> (image uint8 [S,S,3] before resizing is batched, label map uint8 [S,S], n), or None if filtered."""
    H, W, E = spec.height, spec.width, spec.entities
    try:
        if spec.max_visible is not None:  # filter before decoding the big features
            vis = _feature(parse_example(data, {"visibility"}), "visibility", E, src, index, f"[{E}]")
            if float(np.asarray(vis, np.float64).sum()) > spec.max_visible:
                return None
        f = parse_example(data, {"image", "mask"}, copy=False)
    except ValueError as e:
        raise DataError(f"{src}: record {index} is not a valid tf.train.Example ({e})") from e
    image = _feature(f, "image", H * W * 3, src, index, f"[{H},{W},3]").reshape(H, W, 3)
    mask = _feature(f, "mask", E * H * W, src, index, f"[{E},{H},{W},1]").reshape(E, H, W)
    if spec.crop is not None:
        r0, r1, c0, c1 = spec.crop
        image, mask = image[r0:r1, c0:c1], mask[:, r0:r1, c0:c1]
    size = image_size or spec.image_size
    rows = nearest_indices(mask.shape[1], size)
    cols = nearest_indices(mask.shape[2], size)
    labels = mask[:, rows][:, :, cols].argmax(axis=0).astype(np.uint8)
    labels, n = relabel(labels, spec.background_entities)
    return np.ascontiguousarray(image), labels, n


def convert_multi_object(dataset: str, src: str | os.PathLike, out: str | os.PathLike, *,
                         test_size: int = 10_000, val_size: int = 10_000, shard_size: int = 1000,
                         image_size: int | None = None, overwrite: bool = False, progress: bool | None = None,
                         limit: int | None = None) -> dict[str, Any]:
    """Convert a DeepMind TFRecord file into a cache at `out` (resumable; see module doc for the split).

    `limit` stops after that many raw records (quick trials). Returns the cache's meta dict.
    """
    if dataset not in SPECS:
        raise DataError(f"unknown multi-object dataset {dataset!r}; expected one of {sorted(SPECS)}")
    spec = SPECS[dataset]
    src = str(src)
    if not os.path.isfile(src):
        raise DataError(f"{src}: no such file. Download it with: sri data download {dataset} --out DIR")
    size = int(image_size or spec.image_size)
    src_size = os.path.getsize(src)
    params = {"source_name": os.path.basename(src), "source_bytes": src_size, "shard_size": int(shard_size),
              "image_size": size, "test_size": int(test_size), "val_size": int(val_size),
              "limit": limit}
    writer = CacheWriter(out, dataset, params, overwrite=overwrite)
    if writer.existing_complete():
        from sri.data.cache import read_meta
        return read_meta(out)

    from tqdm import tqdm
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=src_size, unit="B", unit_scale=True, desc=f"convert {dataset}", disable=not show,
               smoothing=0.05)

    def on_progress(nbytes: int) -> None:
        bar.update(nbytes - bar.n)

    def skip(index: int) -> bool:
        return writer.is_done(f"{index // shard_size:05d}")

    buf_img: list[np.ndarray] = []
    buf_lab: list[np.ndarray] = []
    buf_n: list[int] = []
    shard = -1
    records = 0
    t0 = time.time()

    def flush(shard_idx: int, nrec: int) -> None:
        imgs = resize_bilinear(np.stack(buf_img), size) if buf_img else np.zeros((0, size, size, 3), np.uint8)
        labs = np.stack(buf_lab) if buf_lab else np.zeros((0, size, size), np.uint8)
        writer.write_shard(f"{shard_idx:05d}", imgs, labs, np.array(buf_n, np.uint8), records=nrec)
        buf_img.clear(), buf_lab.clear(), buf_n.clear()

    shard_records = 0
    try:
        for index, data in iter_records_threaded(src, skip=skip, progress=on_progress):
            if limit is not None and index >= limit:
                break
            s = index // shard_size
            if s != shard:
                if shard >= 0 and not writer.is_done(f"{shard:05d}"):
                    flush(shard, shard_records)
                shard, shard_records = s, 0
            shard_records += 1
            records += 1
            if data is None:  # finished on an earlier run
                continue
            res = process_record(spec, data, src, index, size)
            if res is not None:
                buf_img.append(res[0])
                buf_lab.append(res[1])
                buf_n.append(res[2])
            if records % 64 == 0:
                bar.set_postfix(rec_per_s=f"{records / max(time.time() - t0, 1e-9):.0f}", refresh=False)
        if shard >= 0 and not writer.is_done(f"{shard:05d}"):
            flush(shard, shard_records)
    finally:
        bar.close()
    if shard < 0:
        raise DataError(f"{src}: the file holds no records")
    order = [f"{s:05d}" for s in range(shard + 1)]
    kept = sum(writer.shard_count(n) for n in order)
    n_test = min(test_size, kept)
    n_val = min(val_size, kept - n_test)
    ranges = {"test": (0, n_test), "val": (n_test, n_test + n_val), "train": (n_test + n_val, kept)}
    raw = sum(int(writer.done[n].get("records", 0)) for n in order)
    return writer.finalize(order, ranges, size, source=os.path.abspath(src), extra={
        "raw_records": raw, "kept_records": kept,
        "split_rule": ("filter first (visibility.sum() <= 7), then first test_size kept scenes = test, "
                       "next val_size = val, rest = train") if spec.max_visible is not None else
                      "first test_size records = test, next val_size = val, rest = train",
    })
