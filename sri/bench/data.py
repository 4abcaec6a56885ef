"""Benchmarks: `python -m sri.bench convert` (TFRecord conversion records/s) and `loader` (batches/s)."""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_synthetic_clevr(path: str | os.PathLike, num: int, *, seed: int = 0, unique: int = 16,
                          level: int = 3, too_many_every: int = 0, noise_std: float = 1.0) -> None:
    """Write `num` records in the official CLEVR-with-masks layout (GZIP TFRecord).

    Scenes come from the `shapes` generator at 320x320 (rows cropped to 240); `unique` distinct
    records are encoded and cycled. Every `too_many_every`-th record gets 7+ visible objects.
    """
    from sri.data.synthetic import generate
    from sri.data.tfrecord import encode_example, frame_record, zlib_backend

    sc = generate("shapes", unique, 320, seed)
    rng = np.random.default_rng(seed)
    bodies = []
    for u in range(unique):
        # rendering noise as in the real renders (makes the gzip size per record realistic, ~100 KB)
        noise = rng.normal(0, noise_std, (240, 320, 3)) if noise_std else 0
        img = np.clip(sc.images[u, 40:280] + noise, 0, 255).round().astype(np.uint8)
        lab = sc.masks[u, 40:280]
        mask = (lab[None] == np.arange(11)[:, None, None]).astype(np.uint8)[..., None] * 255
        vis = np.zeros(11, np.float32)
        vis[: int(sc.num_objects[u]) + 1] = 1.0
        feats = {"image": img, "mask": mask, "visibility": vis}
        for k in ("x", "y", "z", "rotation"):
            feats[k] = rng.normal(size=11).astype(np.float32)
        feats["pixel_coords"] = rng.normal(size=(11, 3)).astype(np.float32)
        for k in ("size", "material", "shape", "color"):
            feats[k] = rng.integers(0, 4, 11).astype(np.uint8)
        bodies.append(feats)
    comp = zlib_backend.compressobj(level, zlib_backend.DEFLATED, 31)
    encoded = [frame_record(encode_example(f)) for f in bodies]
    crowded = []
    for f in bodies:
        g = dict(f)
        g["visibility"] = np.ones(11, np.float32)
        crowded.append(frame_record(encode_example(g)))
    with open(path, "wb") as fh:
        for i in range(num):
            rec = crowded[i % unique] if too_many_every and i % too_many_every == 0 else encoded[i % unique]
            fh.write(comp.compress(rec))
        fh.write(comp.flush())


def bench_convert(argv: list[str]) -> int:
    """Time `convert_multi_object` on a synthetic official-format CLEVR file."""
    p = argparse.ArgumentParser(prog="python -m sri.bench convert")
    p.add_argument("--records", type=int, default=1000)
    p.add_argument("--shard-size", type=int, default=250)
    p.add_argument("--too-many-every", type=int, default=0,
                   help="every k-th record has > 6 objects (filtered); 0 = all kept (slowest case)")
    p.add_argument("--keep", default=None, help="directory to keep the files in (default: a temp dir)")
    a = p.parse_args(argv)
    from sri.data.multi_object import convert_multi_object

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(a.keep or tmp)
        d.mkdir(parents=True, exist_ok=True)
        src = d / "clevr_with_masks_train.tfrecords"
        t0 = time.perf_counter()
        write_synthetic_clevr(src, a.records, too_many_every=a.too_many_every)
        print(f"wrote {a.records} records ({src.stat().st_size / 1e6:.0f} MB gzip) in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        meta = convert_multi_object("clevr6", src, d / "clevr6", test_size=a.records // 10, val_size=a.records // 10,
                                    shard_size=a.shard_size, progress=False, overwrite=True)
        dt = time.perf_counter() - t0
    print(f"converted {a.records} CLEVR records (kept {meta['kept_records']}) in {dt:.2f} s: "
          f"{a.records / dt:.0f} records/s  (cpus: {os.cpu_count()})")
    return 0


def bench_loader(argv: list[str]) -> int:
    """DataLoader batches/s from a cache (a temporary synthetic one when no --root)."""
    p = argparse.ArgumentParser(prog="python -m sri.bench loader")
    p.add_argument("--dataset", default="blocks")
    p.add_argument("--root", default=None, help="cache directory (default: synthesise one in a temp dir)")
    p.add_argument("--split", default="train")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batches", type=int, default=300)
    p.add_argument("--num", type=int, default=4096, help="scenes to synthesise when no --root")
    a = p.parse_args(argv)
    import torch
    from torch.utils.data import DataLoader

    from sri.data import build_dataset

    with tempfile.TemporaryDirectory() as tmp:
        root = a.root
        if root is None:
            if a.dataset not in ("blocks", "shapes"):
                print("--root is required for a real dataset", file=sys.stderr)
                return 2
            from sri.data.cli import synth
            root = str(Path(tmp) / a.dataset)
            t0 = time.perf_counter()
            synth(a.dataset, root, a.num, progress=False)
            dt = time.perf_counter() - t0
            print(f"synthesised {a.num + 2 * (a.num // 10)} {a.dataset} scenes in {dt:.1f} s "
                  f"({(a.num + 2 * (a.num // 10)) / dt:.0f} scenes/s)")
        ds = build_dataset(a.dataset, root, a.split)
        dl = DataLoader(ds, batch_size=a.batch_size, shuffle=True, drop_last=True, num_workers=a.workers,
                        persistent_workers=a.workers > 0, pin_memory=torch.cuda.is_available())
        n, t0 = 0, None
        while n < a.batches + 1:
            for batch in dl:
                if t0 is None:
                    t0 = time.perf_counter()  # first batch = warm-up (worker start)
                n += 1
                if n >= a.batches + 1:
                    break
        dt = time.perf_counter() - t0
        b = batch["image"]
    print(f"{a.dataset} {a.split}: {a.batches / dt:.1f} batches/s of {tuple(b.shape)} "
          f"({a.batches * a.batch_size / dt:.0f} images/s, workers={a.workers})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`main(["convert", ...])` or `main(["loader", ...])`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("convert", "loader"):
        print("usage: python -m sri.bench {convert,loader} [options]", file=sys.stderr)
        return 2
    return bench_convert(argv[1:]) if argv[0] == "convert" else bench_loader(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
