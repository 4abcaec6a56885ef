"""`python -m sri.report {tables,figures,check-paper,runs,omniboard} [--store S] [--seed N] [--out DIR]`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from sri.atomicio import atomic_write_text


def _store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default=None,
                   help="run store: a directory (Sacred file store), mongodb://host:port/db or "
                        "host:port:db (default: $SRI_MONGO_URL, else runs/)")


def _preset_arg(p: argparse.ArgumentParser, default: str) -> None:
    from sri.configs import PRESETS

    p.add_argument("--preset", choices=[*PRESETS, "custom", "all"], default=default,
                   help=f"use only runs trained with this preset (demo|smoke|all; default "
                        f"{default})")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="also load old-format checkpoints that need a full unpickle (this can run "
                        "code stored in them: only for files you trust)")


def _sweep_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sweep", default=None,
                   help="use only the runs of this sweep id (`sri sweep` prints it; default: any)")


def _order_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--all-runs", action="store_true",
                   help="use every completed run, not only the latest per (row, dataset, seed)")
    p.add_argument("--order", choices=("auto", "logged", "off"), default="auto",
                   help="order consistency: logged, else computed from the checkpoint (auto); "
                        "only logged values; or none")
    p.add_argument("--order-samples", type=int, default=256,
                   help="samples per checkpoint for the order-consistency metric (default 256)")
    p.add_argument("--device", default=None, help="torch device for sampling (default cpu)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m sri.report`."""
    parser = argparse.ArgumentParser(prog="python -m sri.report",
                                     description="Logged runs → the paper's tables and figures.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("tables", help="tables/table{1..4}.csv and .md")
    _store_arg(p)
    _order_args(p)
    _preset_arg(p, "paper")
    _sweep_arg(p)
    p.add_argument("--seed", type=int, default=0, help="sampling seed for order consistency")
    p.add_argument("--out", default="tables", help="output folder (default tables/)")

    p = sub.add_parser("check-paper", help="compare with the paper; non-zero exit on a failure")
    _store_arg(p)
    _order_args(p)
    _preset_arg(p, "paper")
    _sweep_arg(p)
    p.add_argument("--seed", type=int, default=0, help="sampling seed for order consistency")
    p.add_argument("--out", default="tables", help="writes check_paper.md/.csv here (default tables/)")
    p.add_argument("--rel-tol", type=float, default=0.1,
                   help="relative tolerance where the paper gives no std (default 0.1 = 10%%)")
    p.add_argument("--all-datasets", action="store_true",
                   help="also test the paper's relative claims on non-paper (synthetic) datasets")
    p.add_argument("--strict", action="store_true", help="also fail when a paper value is missing")
    p.add_argument("--hide-missing", action="store_true", help="do not list missing results")

    p = sub.add_parser("figures", help="Figure 4/6/12/13/15-style PNGs from the runs' checkpoints")
    _store_arg(p)
    _preset_arg(p, "all")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (figures are deterministic)")
    p.add_argument("--out", default="figures", help="output folder (default figures/)")
    p.add_argument("--dataset", action="append", default=None, help="only these datasets")
    p.add_argument("--rows", default=None,
                   help="comma-separated row names (e.g. sri_mog,genv2_g) for Figure 4")
    p.add_argument("--fig6-row", default="sri_sa",
                   help="row whose seeds Figure 6 shows (default sri_sa; falls back to the row "
                        "with the most seeds)")
    p.add_argument("--num-samples", type=int, default=8, help="samples per model in Figure 4")
    p.add_argument("--data-root", default=None, help="dataset cache root for Figure 15")
    p.add_argument("--device", default=None, help="torch device (default cpu)")
    p.add_argument("--only", default=None, help="comma-separated figure numbers, e.g. 4,13")

    p = sub.add_parser("runs", help="every run as a table (one line per run; --csv to export)")
    _store_arg(p)
    p.add_argument("--csv", default=None, metavar="PATH",
                   help="write the table as CSV to PATH ('-': standard output) instead of printing it")
    p.add_argument("--preset", default=None, help="only runs of this preset")
    _sweep_arg(p)
    p.add_argument("--status", default=None, help="only runs with this status (e.g. COMPLETED)")
    p.add_argument("--table", type=int, default=None, help="only runs of this table")

    p = sub.add_parser("omniboard", help="start Omniboard against the configured MongoDB")
    p.add_argument("--mongo", default=None,
                   help="mongodb://host:port/db or host:port:db (default $SRI_MONGO_URL, else a "
                        "local server on 127.0.0.1:27017 with data in .cache/mongo, db 'sri')")
    p.add_argument("--port", type=int, default=None, help="Omniboard port (default $PORT or 9000)")
    p.add_argument("--prefix", default=".cache/omniboard", help="npm install prefix")
    p.add_argument("--mongo-dir", default=".cache/mongo", help="data folder of the local server")
    p.add_argument("--no-metric-columns", action="store_true",
                   help="do not add the evaluation metrics as Omniboard metric columns")
    p.add_argument("--import", dest="import_stores", action="append", default=None, metavar="DIR",
                   help="file stores whose finished runs are copied into the database first (repeatable; "
                        "default: runs/demo, only into the local server; `sri runs import` for another)")
    return parser


def _no_figures(store: str | None, preset: str) -> int:
    """Why no figure was written; 1 when completed runs exist (their checkpoints are missing or
    unloadable), 0 when the store simply has no completed run of `preset`."""
    from sri.report.tables import ALL_PRESETS, run_key, run_preset
    from sri.tracking import load_runs

    done = [r for r in load_runs(store, final_only=True) if r.status == "COMPLETED" and run_key(r) is not None
            and (preset == ALL_PRESETS or run_preset(r) == preset)]
    if not done:
        print(f"warning: no figures written: the store has no completed run of preset {preset}",
              file=sys.stderr)
        return 0
    missing = [f"run {r.id}: {r.checkpoint or 'no checkpoint recorded'}" for r in done
               if r.checkpoint_path() is None]
    detail = (f"; checkpoints not found: {'; '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
              if missing else " (their checkpoints could not be loaded or sampled, see the warnings)")
    print(f"error: no figures written although {len(done)} completed run(s) exist{detail}. "
          f"Relative checkpoint paths are looked up in the working directory and next to the "
          f"store; run from the training folder or move the checkpoints back", file=sys.stderr)
    return 1


def _runs(args: argparse.Namespace) -> int:
    """`runs`: print or export `sri.tracking.runs_frame` (filtered)."""
    from sri.credentials import redact
    from sri.tracking.frame import runs_frame

    try:
        frame = runs_frame(args.store)
    except (FileNotFoundError, NotADirectoryError, ConnectionError, RuntimeError) as e:
        print(f"error: {redact(str(e))}", file=sys.stderr)
        return 2
    for col in ("preset", "sweep", "status", "table"):
        value = getattr(args, col)
        if value is not None:
            frame = frame[frame[col] == value]
    if args.csv == "-":
        try:
            frame.to_csv(sys.stdout, index=False)
            sys.stdout.flush()
        except BrokenPipeError:  # `... --csv - | head`
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    if args.csv:
        frame.to_csv(args.csv, index=False)
        print(f"{len(frame)} runs written to {args.csv}", file=sys.stderr)
        return 0
    if frame.empty:
        print("no runs", file=sys.stderr)
        return 0
    import pandas as pd

    shown = frame.drop(columns=["checkpoint", "config_key", "stop_time"])
    with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 200):
        print(shown.to_string(index=False))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command in ("tables", "check-paper"):
        from sri.report.tables import build_tables

        try:
            results, paths = build_tables(args.store, args.out, latest_only=not args.all_runs,
                                          order=args.order, order_samples=args.order_samples,
                                          order_seed=args.seed, device=args.device,
                                          preset=args.preset, sweep=args.sweep,
                                          trust_checkpoint=args.trust_checkpoint)
        except (FileNotFoundError, NotADirectoryError, ConnectionError, RuntimeError) as e:
            from sri.credentials import redact

            print(f"error: {redact(str(e))}", file=sys.stderr)
            return 2
        if not results:
            print(f"warning: no completed runs of preset {args.preset} with final metrics found; the "
                  f"tables show the paper's values only", file=sys.stderr)
        if args.command == "tables":
            for path in paths:
                print(path)
            return 0
        from sri.report.check import exit_status, render_checks, run_check, write_checks

        checks = run_check(results, rel_tol=args.rel_tol, all_datasets=args.all_datasets)
        text = render_checks(checks, show_missing=not args.hide_missing)
        print(text)
        out = Path(args.out)
        atomic_write_text(out / "check_paper.md", text)
        write_checks(checks, out / "check_paper.csv")
        return exit_status(checks, strict=args.strict)
    if args.command == "figures":
        from sri.report.figures import make_figures

        try:
            paths = make_figures(args.store, args.out, seed=args.seed, datasets=args.dataset,
                                 rows=args.rows.split(",") if args.rows else None,
                                 fig6_row=args.fig6_row, num_samples=args.num_samples,
                                 data_root=args.data_root, device=args.device,
                                 only=[int(x) for x in args.only.split(",")] if args.only else None,
                                 preset=args.preset, trust_checkpoint=args.trust_checkpoint)
        except (FileNotFoundError, NotADirectoryError, ConnectionError) as e:
            from sri.credentials import redact

            print(f"error: {redact(str(e))}", file=sys.stderr)
            return 2
        for path in paths:
            print(path)
        if not paths:
            return _no_figures(args.store, args.preset)
        return 0
    if args.command == "runs":
        return _runs(args)
    if args.command == "omniboard":
        from sri.report.omniboard import main as omniboard_main

        return omniboard_main(mongo=args.mongo, port=args.port, prefix=args.prefix,
                              mongo_dir=args.mongo_dir, metric_columns=not args.no_metric_columns,
                              import_stores=args.import_stores)
    return 2


if __name__ == "__main__":
    sys.exit(main())
