"""The files of a run folder: checkpoint and sample-grid names, listing, pruning, and moving an
earlier run's files aside (archived or marked corrupt; never deleted)."""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

CKPT_RE = re.compile(r"^ckpt_(\d{8,})\.pt$")
SAMPLES_RE = re.compile(r"^samples_(\d{8,})\.png$")
ARCHIVE_DIR = "archive"  # resume=False moves an earlier run's checkpoints to archive/<timestamp>/


def checkpoint_name(step: int) -> str:
    """File name of the checkpoint at `step` (`ckpt_00000042.pt`)."""
    return f"ckpt_{step:08d}.pt"


def samples_name(step: int) -> str:
    """File name of the sample grid at `step` (`samples_00000042.png`)."""
    return f"samples_{step:08d}.png"


def checkpoint_step(path: str | os.PathLike) -> int:
    """The step in a checkpoint's file name."""
    return int(CKPT_RE.match(Path(path).name).group(1))


def list_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """(step, path) of the checkpoints in a run directory, oldest first."""
    d = Path(run_dir)
    if not d.is_dir():
        return []
    out = []
    for p in d.iterdir():
        m = CKPT_RE.match(p.name)
        if m:
            out.append((int(m.group(1)), p))
    return sorted(out)


def prune_checkpoints(written: list[str], new: str, keep: int, protect: str | None = None) -> list[str]:
    """Add `new` to this run's checkpoints `written`, delete all but the `keep` newest (none when
    keep <= 0) except `protect`, and return the ones left, oldest first."""
    mine = [w for w in written if w != new] + [new]
    mine.sort(key=checkpoint_step)
    if keep > 0:
        for old in mine[:-keep]:
            if old == protect:
                continue
            Path(old).unlink(missing_ok=True)
            mine.remove(old)
    return mine


def set_aside(path: Path) -> Path:
    """Rename an unreadable checkpoint to `<name>.corrupt` (or `.corruptN` if taken); the new path."""
    aside = path.with_name(path.name + ".corrupt")
    n = 1
    while aside.exists():
        aside, n = path.with_name(f"{path.name}.corrupt{n}"), n + 1
    os.replace(path, aside)
    return aside


def archive_previous_run(run_dir: Path) -> Path | None:
    """Move an earlier run's checkpoints and sample grids into `archive/<timestamp>/`; that folder,
    or None when there were no checkpoints (sample grids alone stay)."""
    old = [p for _, p in list_checkpoints(run_dir)]
    if not old:
        return None
    old += [p for p in run_dir.iterdir() if SAMPLES_RE.match(p.name)]
    base = run_dir / ARCHIVE_DIR / time.strftime("%Y%m%d-%H%M%S")
    dest, n = base, 1
    while dest.exists():
        dest, n = base.with_name(f"{base.name}-{n}"), n + 1
    dest.mkdir(parents=True)
    for p in old:
        os.replace(p, dest / p.name)
    return dest
