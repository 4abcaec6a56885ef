"""`sri data {convert,download,synth,info,verify}`: make, inspect and check dataset caches."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sri.data import REAL
from sri.data.errors import DataError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sri data", description="Convert, download or synthesise datasets "
                                "into the local cache that `sri.data.build_dataset` reads.")
    sub = p.add_subparsers(dest="cmd", required=True)

    c = sub.add_parser("convert", help="convert official files into a cache (resumable)")
    c.add_argument("--dataset", required=True, choices=list(REAL))
    c.add_argument("--src", required=True, help="the .tfrecords file, or the ShapeStacks root")
    c.add_argument("--out", required=True, help="cache directory to create (e.g. data/clevr6)")
    c.add_argument("--test-size", type=int, default=10_000, help="TFRecord datasets: first N scenes are test")
    c.add_argument("--val-size", type=int, default=10_000, help="TFRecord datasets: next N scenes are val")
    c.add_argument("--image-size", type=int, default=None, help="output size (default 96 CLEVR6, else 64)")
    c.add_argument("--shard-size", type=int, default=None, help="records per resumable shard")
    c.add_argument("--limit", type=int, default=None, help="TFRecord datasets: stop after N raw records")
    c.add_argument("--workers", type=int, default=None, help="ShapeStacks: decoding processes")
    c.add_argument("--overwrite", action="store_true", help="discard an existing or unfinished cache")
    c.add_argument("--no-progress", action="store_true")

    d = sub.add_parser("download", help="fetch the official files (resumable), then convert")
    d.add_argument("dataset", choices=list(REAL))
    d.add_argument("--out", required=True, help="cache directory to create")
    d.add_argument("--raw-dir", default=None, help="where downloads go (default OUT/download)")
    d.add_argument("--no-convert", action="store_true", help="only download")
    d.add_argument("--test-size", type=int, default=10_000, help="TFRecord datasets: first N scenes are test")
    d.add_argument("--val-size", type=int, default=10_000, help="TFRecord datasets: next N scenes are val")
    d.add_argument("--no-progress", action="store_true")

    s = sub.add_parser("synth", help="generate a synthetic dataset cache")
    s.add_argument("dataset", choices=["blocks", "shapes"])
    s.add_argument("--out", required=True)
    s.add_argument("--num", type=int, required=True, help="training scenes")
    s.add_argument("--num-val", type=int, default=None, help="validation scenes (default num//10, >= 1)")
    s.add_argument("--num-test", type=int, default=None, help="test scenes (default num//10, >= 1)")
    s.add_argument("--size", type=int, default=64)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--overwrite", action="store_true")
    s.add_argument("--no-progress", action="store_true")

    i = sub.add_parser("info", help="print a cache's meta.json")
    i.add_argument("path")

    v = sub.add_parser("verify", help="check that the dataset caches and the FID weights a run needs are "
                                      "present and whole, and say what is missing (no network needed)")
    v.add_argument("--root", default=None, help="folder of the converted datasets (default $SRI_DATA, else data)")
    v.add_argument("--datasets", default=",".join(REAL),
                   help=f"comma-separated caches to check under ROOT (default {','.join(REAL)})")
    v.add_argument("--hash", action="store_true",
                   help="also compare every array file's SHA-256 with the one recorded when the cache was made")
    v.add_argument("--no-weights", action="store_true", help="do not check the Inception weights (FID)")
    return p


def verify_main(args: argparse.Namespace) -> int:
    """Print one line per checked item and what fixes each problem; 0 when all are present and whole."""
    import os

    from sri.data.verify import verify

    root = args.root or os.environ.get("SRI_DATA", "data")
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    reports = verify(root, names, hash_files=args.hash, weights=not args.no_weights)
    for r in reports:
        detail = ""
        if r["status"] == "ok" and r.get("counts"):
            c = r["counts"]
            detail = (f" ({r['image_size']}x{r['image_size']}; train {c['train']}, val {c['val']}, test "
                      f"{c['test']}{'; contents hashed' if r.get('hashed') else ''})")
        print(f"{r['status']:>10}  {r['name']}: {r['path']}{detail}")
        for problem in r["problems"]:
            print(f"            {problem}")
        if r.get("note"):
            print(f"            note: {r['note']}")
        if r["status"] != "ok":
            print(f"            fix: {r['fix']}")
    bad = [r["name"] for r in reports if r["status"] != "ok"]
    print(f"{len(reports) - len(bad)} of {len(reports)} ok" + (f"; not ready: {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


def synth(name: str, out: str | Path, num: int, *, num_val: int | None = None, num_test: int | None = None,
          size: int = 64, seed: int = 0, overwrite: bool = False, progress: bool | None = None,
          shard_size: int = 5000) -> dict:
    """Write a synthetic cache; split s holds `generate(name, n_s, size, split_seed(seed, s))`."""
    from tqdm import tqdm

    from sri.data.cache import CacheWriter, read_meta
    from sri.data.synthetic import generate, split_seed

    counts = {"train": int(num), "val": int(num_val if num_val is not None else max(1, num // 10)),
              "test": int(num_test if num_test is not None else max(1, num // 10))}
    writer = CacheWriter(out, name, {"counts": counts, "image_size": int(size), "seed": int(seed),
                                     "shard_size": int(shard_size)}, overwrite=overwrite)
    if writer.existing_complete():
        return read_meta(out)
    order, ranges, pos = [], {}, 0
    show = sys.stderr.isatty() if progress is None else progress
    with tqdm(total=sum(counts.values()), unit="scene", desc=f"synth {name}", disable=not show) as bar:
        for split, n in counts.items():
            ranges[split] = (pos, pos + n)
            pos += n
            for k, start in enumerate(range(0, max(n, 1), shard_size)):
                shard = f"{split}-{k:05d}"
                order.append(shard)
                m = min(shard_size, n - start)
                if not writer.is_done(shard):
                    writer.write_shard(shard, *generate(name, m, size, split_seed(seed, split), start=start))
                bar.update(m)
    return writer.finalize(order, ranges, size, source=f"synthetic:{name}:seed={seed}",
                           extra={"seed": int(seed), "split_seeds": {s: split_seed(seed, s) for s in counts}})


def _size_error(flag: str, size: int | None) -> str | None:
    if size is not None and (size < 16 or size % 16):
        return (f"{flag} {size} is not valid: image sizes must be a multiple of 16, at least 16 "
                f"(the models upsample 4 times by 2), e.g. {flag} 64")
    return None


def check_args(args: argparse.Namespace) -> str | None:
    """Why the arguments cannot work (with the valid range), or None; checked before any work."""
    def at_least(flag: str, value: int | None, low: int) -> str | None:
        if value is not None and value < low:
            return f"{flag} must be an integer >= {low}, got {value}"
        return None

    checks: list[str | None] = []
    if args.cmd == "synth":
        checks += [at_least("--num", args.num, 1), at_least("--num-val", args.num_val, 1),
                   at_least("--num-test", args.num_test, 1), _size_error("--size", args.size)]
    elif args.cmd in ("convert", "download"):
        checks += [at_least("--test-size", args.test_size, 0), at_least("--val-size", args.val_size, 0)]
    if args.cmd == "convert":
        checks += [_size_error("--image-size", args.image_size),
                   at_least("--shard-size", args.shard_size, 1), at_least("--workers", args.workers, 1),
                   at_least("--limit", args.limit, 1)]
        if (args.dataset != "shapestacks" and args.limit is not None and args.test_size >= 0
                and args.val_size >= 0 and args.limit <= args.test_size + args.val_size):
            checks.append(f"--limit {args.limit} leaves no training scenes: the first --test-size "
                          f"{args.test_size} + --val-size {args.val_size} records are test and "
                          f"validation; use --limit > {args.test_size + args.val_size} or smaller "
                          f"--test-size/--val-size")
    return next((c for c in checks if c), None)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `sri data`; returns the exit status."""
    args = _parser().parse_args(argv)
    problem = check_args(args)
    if problem:
        print(f"sri data: error: {problem}", file=sys.stderr)
        return 2
    if args.cmd == "verify":
        return verify_main(args)
    progress = None if not getattr(args, "no_progress", False) else False
    try:
        if args.cmd == "convert":
            if args.dataset == "shapestacks":
                from sri.data.shapestacks import convert_shapestacks
                kw = {"shard_size": args.shard_size} if args.shard_size else {}
                meta = convert_shapestacks(args.src, args.out, image_size=args.image_size or 64,
                                           workers=args.workers, overwrite=args.overwrite, progress=progress, **kw)
            else:
                from sri.data.multi_object import convert_multi_object
                kw = {"shard_size": args.shard_size} if args.shard_size else {}
                meta = convert_multi_object(args.dataset, args.src, args.out, test_size=args.test_size,
                                            val_size=args.val_size, image_size=args.image_size,
                                            overwrite=args.overwrite, progress=progress, limit=args.limit, **kw)
        elif args.cmd == "download":
            from sri.data.download import download_dataset
            kw = {} if args.dataset == "shapestacks" else {"test_size": args.test_size, "val_size": args.val_size}
            res = download_dataset(args.dataset, args.out, raw_dir=args.raw_dir, convert=not args.no_convert,
                                   progress=progress, **kw)
            if args.no_convert:
                print(f"downloaded: {res}")
                return 0
            meta = res
        elif args.cmd == "synth":
            meta = synth(args.dataset, args.out, args.num, num_val=args.num_val, num_test=args.num_test,
                         size=args.size, seed=args.seed, overwrite=args.overwrite, progress=progress)
        else:
            from sri.data.cache import is_complete, read_meta
            if not is_complete(args.path):
                raise DataError(f"{args.path} is not a finished cache (no COMPLETE marker)")
            print(json.dumps(read_meta(args.path), indent=1))
            return 0
    except DataError as e:
        print(f"sri data: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("sri data: interrupted; re-run the same command to resume (finished shards are kept)",
              file=sys.stderr)
        return 130
    c = meta["counts"]
    print(f"{meta['dataset']}: {args.out} complete ({meta['image_size']}x{meta['image_size']}; "
          f"train {c['train']}, val {c['val']}, test {c['test']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
