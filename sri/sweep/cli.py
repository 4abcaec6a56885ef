"""`sri sweep TABLE [options] [with KEY=VALUE ...]` and `sri sweep status TABLE [options]`."""
from __future__ import annotations

import argparse
import sys
import time
from typing import Sequence

from sri.credentials import redact
from sri.names import check_name

USAGE_EXAMPLES = """examples:
  sri sweep 3 --preset smoke --seeds 0,1 --jobs 2       # Table 3 on this machine, 2 runs at a time
  sri sweep 3 --launcher slurm --partition gpu --gpus-per-job 1 --time 24:00:00
  sri sweep 2 --rows sri_mog,genv2_mog --datasets clevr6 --dry-run
  sri sweep 3 --preset smoke with steps=8               # any config entry, for every run
  sri sweep status 3 --preset smoke --seeds 0,1         # same plan options as the sweep
"""


def _csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _seeds(text: str) -> list[int]:
    try:
        return [int(x) for x in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds takes whole numbers separated by commas, e.g. "
                                         f"0,1,2; got {text!r}") from None


def build_parser(status: bool = False) -> argparse.ArgumentParser:
    """The parser of `sri sweep` (or, with `status`, of `sri sweep status`)."""
    from sri.configs import PRESETS

    prog = "sri sweep status" if status else "sri sweep"
    p = argparse.ArgumentParser(
        prog=prog,
        usage=f"{prog} TABLE [options] [with KEY=VALUE ...]",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=USAGE_EXAMPLES,
        description=(
            "One line per planned run of a sweep: queued / running / completed / failed, "
            "step, SLURM job id, store run id."
            if status
            else "Plan every run of a paper table (rows x datasets x seeds), skip the runs "
            "already COMPLETED in the store with the same config or held by a live "
            "worker, and launch the rest. Trailing `with KEY=VALUE ...` sets a config "
            "entry of every run, as for the table scripts."
        ),
    )
    p.add_argument("table", type=int, help="paper table: 1, 2, 3 or 4")
    p.add_argument(
        "--rows", type=_csv, default=None, help="comma-separated rows (default: every implemented row of the table)"
    )
    p.add_argument(
        "--datasets",
        type=_csv,
        action="extend",
        default=None,
        help="comma-separated datasets (default: the preset's, else the table's)",
    )
    p.add_argument("--seeds", type=_seeds, default=[0, 1, 2], help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--preset", choices=list(PRESETS), default="paper", help="default paper")
    p.add_argument(
        "--store",
        default=None,
        help="run store: a directory, mongodb://host:port/db or host:port:db (default: $SRI_MONGO_URL, else runs/)",
    )
    p.add_argument(
        "--sweep", default=None, help="sweep id recorded in every run (default: table<N>-<preset>-<hash of the plan>)"
    )
    p.add_argument(
        "--runs-dir", default=None, help="checkpoint root with a MongoDB store (default $SRI_RUNS_DIR, else runs/)"
    )
    if status:
        return p
    p.add_argument("--launcher", choices=("local", "slurm"), default="local", help="default local")
    p.add_argument("--jobs", type=int, default=1, help="local: runs at once (default 1)")
    p.add_argument("--dry-run", action="store_true", help="print the plan; launch and claim nothing")
    p.add_argument("--wait", action="store_true", help="slurm: wait until every submitted job ended")
    g = p.add_argument_group("slurm (--launcher slurm)")
    g.add_argument("--partition", default=None)
    g.add_argument(
        "--gpus-per-job", type=int, default=0, help="GPUs per run; more than one: the run trains under torchrun (DDP)"
    )
    g.add_argument("--nodes", type=int, default=1, help="nodes per run (GPUs spread evenly)")
    g.add_argument(
        "--time",
        default="24:00:00",
        help="time limit per job (minutes, H:MM:SS or D-HH:MM:SS); the run checkpoints "
        "before it and is requeued (default 24:00:00)",
    )
    g.add_argument("--account", default=None)
    g.add_argument("--mem", default=None, help="memory per node, e.g. 32G")
    g.add_argument("--cpus-per-job", type=int, default=None)
    g.add_argument("--max-requeues", type=int, default=20, help="requeues after a time limit per run (default 20)")
    return p


def _split_with(argv: list[str]) -> tuple[list[str], list[str]]:
    if "with" in argv:
        i = argv.index("with")
        return argv[:i], argv[i + 1 :]
    return argv, []


def _plan(args: argparse.Namespace, updates_text: list[str]):
    from sri.sweep.plan import parse_updates, plan_sweep, sweep_id

    planned = plan_sweep(args.table, args.rows, args.datasets, args.seeds, args.preset, parse_updates(updates_text))
    return planned, check_name(args.sweep, "--sweep") if args.sweep else sweep_id(planned)


def status_command(args: argparse.Namespace, updates: list[str]) -> str:
    """The `sri sweep status ...` command line for the same plan."""
    import shlex

    parts = [
        "sri",
        "sweep",
        "status",
        str(args.table),
        "--preset",
        args.preset,
        "--seeds",
        ",".join(map(str, args.seeds)),
    ]
    if args.rows:
        parts += ["--rows", ",".join(args.rows)]
    if args.datasets:
        parts += ["--datasets", ",".join(args.datasets)]
    for flag, value in (("--store", args.store), ("--sweep", args.sweep), ("--runs-dir", args.runs_dir)):
        if value:
            parts += [flag, redact(value)]  # a password never goes to the console
    if updates:
        parts += ["with", *updates]
    hint = shlex.join(parts)
    if args.store and redact(args.store) != args.store:
        hint += "   (password left out: put it back in --store, or set SRI_MONGO_URL and drop --store)"
    return hint


def status_main(argv: list[str]) -> int:
    """`sri sweep status TABLE ...`."""
    from sri.sweep.status import render_status, sweep_status
    from sri.tracking.store import resolve_store

    opts, updates = _split_with(argv)
    args = build_parser(status=True).parse_args(opts)
    planned, sweep = _plan(args, updates)
    status = sweep_status(planned, resolve_store(args.store))
    print(f"sweep {sweep} ({len(planned)} runs) in {resolve_store(args.store)}")
    print(render_status(status), end="")
    return 0


def _wait(job_ids: Sequence[str], poll_s: float = 5.0) -> None:
    from sri.sweep.slurm import slurm_states

    left = set(job_ids)
    while left:
        states = slurm_states(list(left))
        if states is None:
            print("[sweep] squeue is not available: not waiting", file=sys.stderr)
            return
        left = set(states)
        if left:
            time.sleep(poll_s)


def sweep_main(argv: list[str]) -> int:
    """`sri sweep TABLE ...`."""
    from sri.sweep.launch import claim_runs, launch_local, launch_slurm
    from sri.sweep.slurm import SlurmOptions, time_minutes
    from sri.tracking.store import resolve_store

    opts, updates = _split_with(argv)
    args = build_parser().parse_args(opts)
    if args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
    if args.nodes < 1 or args.gpus_per_job < 0:
        raise ValueError("--nodes must be at least 1 and --gpus-per-job at least 0")
    options = SlurmOptions(
        partition=args.partition,
        gpus_per_job=args.gpus_per_job,
        nodes=args.nodes,
        time=args.time,
        account=args.account,
        mem=args.mem,
        cpus_per_job=args.cpus_per_job,
        max_requeues=args.max_requeues,
    )
    if args.launcher == "slurm":
        time_minutes(options.time)
        _ = options.gpus_per_node  # fail now on an uneven split
    planned, sweep = _plan(args, updates)
    store = resolve_store(args.store)
    print(
        f"sweep {sweep}: table {args.table}, {len(planned)} planned runs, store {store}, "
        f"launcher {args.launcher}{' (dry run)' if args.dry_run else ''}"
    )
    chosen = claim_runs(planned, store, sweep, args.launcher, dry_run=args.dry_run)
    print(f"{len(chosen)} to launch, {len(planned) - len(chosen)} skipped")
    if args.dry_run or not chosen:
        return 0
    if args.launcher == "local":
        outcomes = launch_local(chosen, store, sweep, jobs=args.jobs, runs_dir=args.runs_dir)
        bad = {n: o for n, o in outcomes.items() if o != "completed"}
        for name, outcome in bad.items():
            print(f"[sweep] {outcome}: {name}", file=sys.stderr)
        print(
            f"[sweep] {len(outcomes) - len(bad)}/{len(outcomes)} completed; tables: "
            f"python -m sri.report tables --store {store} --preset {args.preset} --sweep {sweep}"
        )
        return 1 if bad else 0
    jobs = launch_slurm(chosen, store, sweep, options, runs_dir=args.runs_dir)
    print(f"[sweep] {len(jobs)} jobs submitted; follow with: {status_command(args, updates)}")
    if args.wait:
        _wait(list(jobs.values()))
        print("[sweep] every job ended")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `sri sweep`; returns the exit status."""
    from sri.configs import ConfigError

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "status":
            return status_main(argv[1:])
        return sweep_main(argv)
    except (ConfigError, ValueError, FileNotFoundError, ConnectionError, RuntimeError) as e:
        print(f"error: {redact(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "[sweep] interrupted: the running runs wrote checkpoints; run the same command to continue",
            file=sys.stderr,
        )
        return 130
