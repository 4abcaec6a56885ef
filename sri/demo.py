"""`python -m sri.demo` (`make demo`): SRI vs GENv2 on synthetic blocks in about 15 minutes on a CPU.

Runs Table 2's rows `sri_mog` and `genv2_mog` on the dataset `blocks` with the `demo` preset
(32x32, K=5, 6 minutes of training each), logs them to the file store `runs/demo/`, then calls
`python -m sri.report tables` and `figures` on that store and writes the two models' samples and
slot masks side by side. Rerunning continues both runs from their checkpoints.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

ROWS = (("sri_mog", "SRI-MoG"), ("genv2_mog", "GENv2-MoG"))
REPO = Path(__file__).resolve().parents[1]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sri.demo", description=__doc__.split("\n")[0])
    p.add_argument("--store", default="runs/demo", help="Sacred file store for the runs (default runs/demo)")
    p.add_argument("--tables", default="tables/demo", help="where the tables go (default tables/demo)")
    p.add_argument("--figures", default="figures/demo", help="where the figures go (default figures/demo)")
    p.add_argument("--minutes", type=float, default=6.0, help="training minutes per model (default 6)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="tiny runs (the `smoke` preset) to check the pipeline")
    p.add_argument("--skip-report", action="store_true", help="do not call python -m sri.report")
    return p


def _experiments_dir() -> Path:
    d = REPO / "experiments"
    if not (d / "table2_main.py").is_file():
        raise SystemExit(f"sri.demo needs the experiment scripts of a source checkout, not found at {d}; "
                         f"run it from a clone of the repository (`make demo`)")
    return d


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SRI_MONGO_URL", None)  # the demo is self-contained: file store only
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def train_runs(store: Path, *, minutes: float, seed: int, smoke: bool) -> None:
    """Run the two experiments as the user would, printing each command."""
    script = _experiments_dir() / "table2_main.py"
    for row, label in ROWS:
        cmd = [sys.executable, str(script), "with", "smoke" if smoke else "demo", f"row={row}",
               "dataset=blocks", f"seed={seed}",
               f"run_dir={store / 'checkpoints' / row / f'seed{seed}'}", "-F", str(store)]
        if not smoke:
            cmd.insert(6, f"time_limit={int(minutes * 60)}")
        print(f"\n[demo] training {label}: {' '.join(cmd[1:])}", flush=True)
        res = subprocess.run(cmd, env=_env())
        if res.returncode != 0:
            raise SystemExit(f"[demo] the {label} run failed (exit {res.returncode}); see the output above")


def latest_runs(store: Path) -> dict[str, Any]:
    """The latest completed demo run per row in the store (RunRecord)."""
    from sri.tracking import load_runs

    out: dict[str, Any] = {}
    for r in load_runs(str(store)):
        row = r.config.get("row")
        if r.status != "COMPLETED" or r.config.get("table") != 2 or row not in dict(ROWS):
            continue
        if row not in out or str(r.start_time) > str(out[row].start_time):
            out[row] = r
    return out


def report(store: Path, tables: Path, figures: Path) -> list[str]:
    """`python -m sri.report tables` and `figures` on the demo store; returns notes for the summary."""
    notes = []
    for cmd, out in (("tables", tables), ("figures", figures)):
        argv = [sys.executable, "-m", "sri.report", cmd, "--store", str(store), "--out", str(out)]
        print(f"\n[demo] {' '.join(argv[1:])}", flush=True)
        try:
            res = subprocess.run(argv, env=_env())
        except OSError as e:
            notes.append(f"python -m sri.report {cmd} could not run: {e}")
            continue
        if res.returncode != 0:
            notes.append(f"python -m sri.report {cmd} exited with {res.returncode} (see above)")
    return notes


def side_by_side(runs: dict[str, Any], path: Path, *, n: int = 8, seed: int = 0) -> Path:
    """Samples (top) and their slot masks (bottom) of each model, next to each other, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    from sri.checkpoint import load_model
    from sri.train.trainer import mask_colors

    panels = []
    for row, label in ROWS:
        if row not in runs:
            continue
        model, ckpt = load_model(runs[row].info["checkpoint"])
        with torch.no_grad():
            out = model.sample(n, generator=torch.Generator().manual_seed(seed))
        imgs = (out.images.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        masks = mask_colors(out.masks)
        h, w = imgs.shape[1:3]
        pad = np.full((h, 2, 3), 255, np.uint8)
        top = np.concatenate([x for i in imgs for x in (i, pad)], 1)
        bottom = np.concatenate([x for m in masks for x in (m, pad)], 1)
        gap = np.full((2, top.shape[1], 3), 255, np.uint8)
        panels.append((f"{label} (step {ckpt['step']})", np.concatenate([top, gap, bottom], 0)))
    if not panels:
        raise SystemExit("[demo] no completed demo runs with checkpoints found")
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 2.2), squeeze=False)
    for ax, (title, arr) in zip(axes[0], panels):
        ax.imshow(arr, interpolation="nearest")
        ax.set_title(f"{title}: samples (top), slot masks (bottom)", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Train both models, make tables and figures, print where everything went."""
    args = _parser().parse_args(argv)
    store, tables, figures = Path(args.store), Path(args.tables), Path(args.figures)
    t0 = time.time()
    train_runs(store, minutes=args.minutes, seed=args.seed, smoke=args.smoke)
    runs = latest_runs(store)
    notes = [] if args.skip_report else report(store, tables, figures)
    fig = side_by_side(runs, figures / "demo_sri_vs_genv2.png", seed=args.seed)

    print("\n" + "=" * 72)
    print(f"sri demo finished in {(time.time() - t0) / 60:.1f} min")
    print(f"  runs (Sacred file store): {store}/")
    for row, label in ROWS:
        r = runs.get(row)
        if r is None:
            print(f"    {label}: no completed run")
            continue
        fm = r.info.get("final_metrics", {})
        shown = ", ".join(f"{k}={v:.4g}" for k, v in sorted(fm.items())) or "no final metrics"
        print(f"    {label}: run {r.id}, checkpoint {r.info.get('checkpoint')}; {shown}")
        if "fid_skipped" in r.info:
            print("      (FID skipped: no Inception weights on this machine)")
    if not args.skip_report:
        listed = sorted(str(p) for p in tables.glob("*")) if tables.is_dir() else []
        print(f"  tables: {tables}/ ({len(listed)} files" + (f", e.g. {listed[0]})" if listed else ")"))
        figs = sorted(str(p) for p in figures.glob("*.png")) if figures.is_dir() else []
        print(f"  figures: {figures}/ ({len(figs)} PNGs)")
    print(f"  side-by-side samples and slot masks: {fig}")
    for note in notes:
        print(f"  note: {note}")
    print("=" * 72)
    return 0


if __name__ == "__main__":
    sys.exit(main())
