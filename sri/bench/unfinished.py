"""`python -m sri.bench unfinished keep|restore`: carry an unfinished learning run to another machine.

A run of the learning check (`sri.bench.learn`, also under `compare` and `time-to-bar`) that a working
session cut short lives in its output folder (`run/ckpt_*.pt`, fp32 with Adam's moments, and its
curve). `keep OUT DEST` writes what the next session needs, small enough to commit: `DEST.pt` (the
last checkpoint exported compactly: fp16 weights, bf16 Adam moments, GECO, goal-schedule, RNG and
data-position state) and `DEST_curve.json` (the curve so far, every chunk's command and commit).
`restore DEST OUT` puts them back as a run folder, so that `learn --resume` (or the same `compare`
command) continues the run from that step on any machine.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["keep", "restore", "git_ignored", "main"]


def _paths(dest: Path) -> tuple[Path, Path]:
    dest = Path(dest)
    return dest.with_name(dest.name + ".pt"), dest.with_name(dest.name + "_curve.json")


def keep(out: str | Path, dest: str | Path) -> tuple[Path, Path]:
    """The last checkpoint and curve of the learning run in `out` -> (`DEST.pt`, `DEST_curve.json`)."""
    from sri.bench.learn import earlier_curve
    from sri.checkpoint import export_checkpoint
    from sri.train.rundir import list_checkpoints

    out = Path(out)
    ckpts = list_checkpoints(out / "run")
    curve = earlier_curve(out)
    if not ckpts or curve is None:
        raise FileNotFoundError(f"{out} holds no learning run to keep (a learning run writes run/ckpt_*.pt and "
                                f"curve.json or curve.partial.json there)")
    step, path = ckpts[-1]
    # the curve only up to the checkpoint: evaluations after it are trained again when the run continues
    curve = dict(curve, points=[p for p in curve["points"] if p["step"] <= step], kept_at_step=step)
    weights, curve_file = _paths(Path(dest))
    weights.parent.mkdir(parents=True, exist_ok=True)
    export_checkpoint(path, weights)
    curve_file.write_text(json.dumps(curve, indent=1, default=str))
    return weights, curve_file


def git_ignored(paths: Sequence[str | Path]) -> list[Path]:
    """Those of `paths` that the git checkout holding them ignores (none outside a checkout or without git)."""
    ignored = []
    for path in map(Path, paths):
        try:
            res = subprocess.run(["git", "check-ignore", "-q", path.name], cwd=path.parent,
                                 capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return []
        if res.returncode == 0:
            ignored.append(path)
    return ignored


def restore(dest: str | Path, out: str | Path) -> Path:
    """Put a kept run back into `out` (`run/ckpt_<step>.pt` and `curve.json`); its checkpoint path."""
    from sri.checkpoint import load_checkpoint
    from sri.train.rundir import checkpoint_name, list_checkpoints

    weights, curve_file = _paths(Path(dest))
    if not weights.is_file() or not curve_file.is_file():
        raise FileNotFoundError(f"no kept run at {dest} (need {weights.name} and {curve_file.name}; made by "
                                f"`python -m sri.bench unfinished keep OUT {dest}`)")
    step = int(load_checkpoint(weights)["step"])
    out = Path(out)
    have = list_checkpoints(out / "run")
    if have and have[-1][0] >= step:
        raise FileExistsError(f"{out} already holds this run at step {have[-1][0]} (>= the kept step {step}); "
                              f"nothing to restore")
    (out / "run").mkdir(parents=True, exist_ok=True)
    target = out / "run" / checkpoint_name(step)
    target.write_bytes(weights.read_bytes())
    (out / "curve.json").write_text(curve_file.read_text())
    (out / "curve.partial.json").unlink(missing_ok=True)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: `keep OUT DEST` or `restore DEST OUT`."""
    p = argparse.ArgumentParser(prog="python -m sri.bench unfinished", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keep", help="export the last checkpoint and curve of a learning run, small enough to commit")
    k.add_argument("out", help="the run's output folder (learn --out, compare's OUT/<row>/seed<k>)")
    k.add_argument("dest", help="path prefix of the kept files (DEST.pt, DEST_curve.json)")
    r = sub.add_parser("restore", help="put a kept run back as a run folder that learn --resume continues")
    r.add_argument("dest", help="path prefix of the kept files")
    r.add_argument("out", help="the output folder to continue the run in")
    a = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        if a.cmd == "keep":
            kept = keep(a.out, a.dest)
            for path in kept:
                print(f"wrote {path}")
            # a kept run is only useful if it reaches the next machine: session 7's .pt files did not
            for path in git_ignored(kept):
                print(f"warning: git ignores {path}, so a commit leaves it out; add an exception "
                      f"(e.g. `!/{path.parent.as_posix()}/*.pt`) to .gitignore", file=sys.stderr)
        else:
            print(f"restored {restore(a.dest, a.out)}; continue with the run's command plus --resume")
    except (FileNotFoundError, FileExistsError) as e:
        raise SystemExit(f"sri.bench unfinished: {e}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
