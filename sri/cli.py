"""The `sri` console command: `sri data …`, `sri evaluate …`, `sri bench …`, `sri sweep …`, `sri runs …`."""
from __future__ import annotations

import sys

USAGE = """usage: sri <command> [args]

commands:
  data       convert, download or synthesise datasets (`sri data --help`)
  evaluate   evaluate a checkpoint: FID, ARI-FG, -ELBO (bpd), S-Acc (`sri evaluate --help`)
  bench      benchmarks (`sri bench --help`, same as `python -m sri.bench`)
  sweep      every run of a paper table, locally or on SLURM; `sri sweep status` (`sri sweep --help`)
  runs       `sri runs replay-unsent` (metrics buffered while MongoDB was down), `sri runs import`
             (a file store's runs into MongoDB for Omniboard) (`sri runs --help`)
"""


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the sub-command's own argument parser."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd == "data":
        from sri.data.cli import main as run
    elif cmd == "evaluate":
        from sri.evaluate import main as run
    elif cmd == "bench":
        from sri.bench import main as run
    elif cmd == "sweep":
        from sri.sweep.cli import main as run
    elif cmd == "runs":
        from sri.tracking.runs_cli import main as run
    else:
        print(f"sri: unknown command {cmd!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    return int(run(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
