"""`python -m sri.demo` (`make demo`): SRI vs GENv2 on synthetic blocks, trained on whatever device is there.

Runs Table 2's rows `sri_g` and `genv2_g` on the dataset `blocks` with the `demo` preset (the
recipe in `sri.configs.PRESETS["demo"]`, docs/LEARNING.md), logs them to the file store
`runs/demo/`, and ends with what the models learned: ARI-FG and reconstruction error on held-out
scenes, S-Acc and visible objects of samples, beside the data's values; then tables, figures and
the side-by-side figure. Where `demo_checkpoints/` holds checkpoints this project trained (`make
demo-checkpoints`), both runs start from them and continue training; `--from-scratch` ignores them.
Rerunning continues both runs from their own checkpoints.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from sri.demo.recipe import CHECKPOINTS, CONTINUE_GECO_GOAL, PROVENANCE, ROWS, make_checkpoints
from sri.provenance import REPO

# the demo's bar (issue: learned models): ARI-FG >= 0.75, MSE <= 0.25 x the mean-image MSE
BAR = {"ari_fg": 0.75, "mse_ratio": 0.25}
DEFAULT_MINUTES = 4.0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sri.demo", description=__doc__.split("\n")[0],
        epilog="Measured (`time make demo`): 8.6 min wall-clock in all with the defaults on a 2-core "
               "CPU (AMD EPYC, torch 2.13.0+cpu, 2026-12-07, commit 3d675d6), starting from "
               "demo_checkpoints/. make demo-checkpoints (four stages, 33,000 steps): stage 1 26.3 min "
               "(GENv2) and 40.7 min (SRI), stage 2 32.0 and 39.2 min (two one-thread processes side by "
               "side; stage 2 upper bounds: other jobs ran), stage 3 12.4 and 19.3 min (one two-thread "
               "process), stage 4 10.1 and 15.0 min (one thread each, upper bounds), wall-clock.")
    p.add_argument("--store", default="runs/demo", help="Sacred file store for the runs (default runs/demo)")
    p.add_argument("--tables", default="tables/demo", help="where the tables go (default tables/demo)")
    p.add_argument("--figures", default="figures/demo", help="where the figures go (default figures/demo)")
    p.add_argument("--minutes", type=float, default=DEFAULT_MINUTES,
                   help=f"wall-clock minutes of training per model (default {DEFAULT_MINUTES:g})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="tiny runs (the `smoke` preset) to check the pipeline")
    p.add_argument("--from-scratch", action="store_true",
                   help="ignore demo_checkpoints/ and train both models from random weights")
    p.add_argument("--skip-report", action="store_true", help="do not call python -m sri.report")
    p.add_argument("--eval-num", type=int, default=320, help="held-out scenes for ARI-FG and MSE (default 320)")
    p.add_argument("--num-samples", type=int, default=256, help="samples judged for S-Acc (default 256)")
    p.add_argument("--make-checkpoints", action="store_true",
                   help="(`make demo-checkpoints`) retrain demo_checkpoints/ from scratch and record provenance")
    p.add_argument("--checkpoint-steps", type=int, default=None,
                   help="training steps per model for --make-checkpoints (default: the recorded recipe's)")
    p.add_argument("--rows", default=None, help="with --make-checkpoints: only these rows (comma-separated)")
    p.add_argument("--start-stage", type=int, default=1,
                   help="with --make-checkpoints: start at this stage of the recipe, from the earlier "
                        "stage's export in runs/demo-checkpoints/<row>/ (default 1: from scratch)")
    p.add_argument("--checkpoint-dir", default=str(CHECKPOINTS),
                   help="where the demo reads checkpoints (and --make-checkpoints writes them with --overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help="with --make-checkpoints: replace the checkpoints in --checkpoint-dir (tracked files); "
                        "without it they go to a new folder runs/demo-checkpoints/new-<date>/")
    return p


def expected_checkpoint_minutes(checkpoint_dir: str | os.PathLike = CHECKPOINTS) -> dict[str, float]:
    """Wall-clock minutes each row's recorded recipe took (demo_checkpoints/provenance.json), by row."""
    path = Path(checkpoint_dir) / PROVENANCE
    if not path.is_file():
        return {}
    models = json.loads(path.read_text()).get("models", {})
    return {row: sum(m.get("stage_wall_s") or [m.get("wall_s") or 0.0]) / 60 for row, m in models.items()}


def checkpoint_target(checkpoint_dir: str | os.PathLike, overwrite: bool, now: str | None = None) -> Path:
    """Where --make-checkpoints writes: `checkpoint_dir` itself only with `overwrite` or when it holds
    no checkpoint yet, else a new folder under runs/demo-checkpoints/."""
    d = Path(checkpoint_dir)
    if overwrite or not any(d.glob("*.pt")):
        return d
    return Path("runs/demo-checkpoints") / f"new-{now or time.strftime('%Y%m%d-%H%M%S')}"


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


def shipped_checkpoint(row: str, directory: str | os.PathLike = CHECKPOINTS) -> Path | None:
    """The project-trained starting checkpoint of a demo row, if present."""
    p = Path(directory) / f"{row}.pt"
    return p if p.is_file() else None


def run_command(row: str, store: Path, *, seed: int, smoke: bool, extra: Sequence[str] = ()) -> list[str]:
    """The Sacred command of one demo run (as the user would type it)."""
    script = _experiments_dir() / "table2_main.py"
    return [sys.executable, str(script), "with", "smoke" if smoke else "demo", f"row={row}",
            "dataset=blocks", f"seed={seed}", *extra,
            f"run_dir={store / 'checkpoints' / row / f'seed{seed}'}", "-F", str(store)]


def train_runs(store: Path, *, minutes: float, seed: int, smoke: bool, from_scratch: bool = False,
               checkpoint_dir: str | os.PathLike = CHECKPOINTS) -> dict[str, str]:
    """Run the two experiments as the user would, printing each command; returns how each started."""
    started: dict[str, str] = {}
    for row, label in ROWS:
        extra = []
        if not smoke:
            extra.append(f"time_limit={int(minutes * 60)}")
            ck = None if from_scratch else shipped_checkpoint(row, checkpoint_dir)
            if ck is not None:

                # continue with the goal of the recipe's last stage (docs/LEARNING.md)
                extra.append(f"init_checkpoint={ck}")
                if CONTINUE_GECO_GOAL is not None:
                    extra.append(f"geco_goal={CONTINUE_GECO_GOAL:g}")
            started[row] = f"from {ck}" if ck is not None else "from scratch"
        cmd = run_command(row, store, seed=seed, smoke=smoke, extra=extra)
        print(f"\n[demo] training {label}: {shlex.join(cmd[1:])}", flush=True)
        res = subprocess.run(cmd, env=_env())
        if res.returncode != 0:
            raise SystemExit(f"[demo] the {label} run failed (exit {res.returncode}); see the output above")
    return started


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


def report(store: Path, tables: Path, figures: Path, preset: str) -> list[str]:
    """`python -m sri.report tables` and `figures` on the demo store; returns notes for the summary."""
    notes = []
    for cmd, out in (("tables", tables), ("figures", figures)):
        argv = [sys.executable, "-m", "sri.report", cmd, "--store", str(store), "--out", str(out),
                "--preset", preset]
        print(f"\n[demo] {' '.join(argv[1:])}", flush=True)
        try:
            res = subprocess.run(argv, env=_env())
        except OSError as e:
            notes.append(f"python -m sri.report {cmd} could not run: {e}")
            continue
        if res.returncode != 0:
            notes.append(f"python -m sri.report {cmd} exited with {res.returncode} (see above)")
    return notes


def held_out(image_size: int, num: int, object_scale: float = 1.0) -> tuple[Any, Any, Any]:
    """`num` test scenes of `blocks` (images, masks) and the mean of 2,000 training images."""
    import torch

    from sri.data import build_dataset
    from sri.metrics.learning import mean_image

    te = build_dataset("blocks", None, "test", num=num, image_size=image_size, object_scale=object_scale)
    tr = build_dataset("blocks", None, "train", num=2000, image_size=image_size, object_scale=object_scale)
    images = torch.stack([te[i]["image"] for i in range(len(te))])
    masks = torch.stack([te[i]["mask"] for i in range(len(te))])
    return images, masks, mean_image(torch.stack([tr[i]["image"] for i in range(len(tr))]))


def evaluate_models(models: dict[str, Any], *, eval_num: int, num_samples: int, seed: int,
                    object_scale: float = 1.0) -> dict[str, Any]:
    """Learning metrics of each model on held-out scenes, its samples, and the data's reference."""
    from sri.metrics.learning import data_reference, reconstruction_metrics, sample_metrics, sample_scene_fd

    out: dict[str, Any] = {"models": {}}
    scenes: dict[int, tuple[Any, Any, Any]] = {}  # one held-out set per image size, built once
    for row, model in models.items():
        if model.image_size not in scenes:
            scenes[model.image_size] = held_out(model.image_size, eval_num, object_scale)
        images, masks, base = scenes[model.image_size]
        res = reconstruction_metrics(model, images, masks, base)
        res.update({f"sample_{k}": v for k, v in sample_metrics(model, num_samples, seed=seed).items()})
        res["scene_fd"] = sample_scene_fd(model, images, num_samples, seed=seed)
        out["models"][row] = res
        out["data"] = data_reference(masks, images)
        out["eval_num"] = len(images)
    out["num_samples"] = num_samples
    return out


def print_summary(summary: dict[str, Any]) -> None:
    """The demo's closing table: what each model learned, beside the data's values and the bar."""
    data = summary.get("data", {})
    print(f"\n  what the models learned (held-out blocks scenes: {summary.get('eval_num')}; "
          f"samples: {summary.get('num_samples')})")
    print(f"  {'':<12}{'step':>7}{'ARI-FG':>8}{'ordered':>9}{'MSE/mean':>10}{'S-Acc':>7}{'objects':>9}"
          f"{'img obj':>9}{'scene FD':>10}")
    for row, label in ROWS:
        r = summary["models"].get(row)
        if r is None:
            continue
        ordered = f"{r['ari_fg_ordered']:.3f}" if "ari_fg_ordered" in r else "-"
        print(f"  {label:<12}{r.get('step', '?'):>7}{r['ari_fg']:>8.3f}{ordered:>9}{r['mse_ratio']:>10.3f}"
              f"{r['sample_s_acc']:>7.2f}{r['sample_visible_objects']:>9.2f}"
              f"{r.get('sample_image_objects', float('nan')):>9.2f}{r.get('scene_fd', float('nan')):>10.1f}")
    if data:
        print(f"  {'data':<12}{'':>7}{'':>8}{'':>9}{'':>10}{data['s_acc']:>7.2f}{data['visible_objects']:>9.2f}"
              f"{data.get('image_objects', float('nan')):>9.2f}")
    print(f"  bar: ARI-FG >= {BAR['ari_fg']}, MSE <= {BAR['mse_ratio']} x the mean training image's "
          f"(ordered = SRI's ordered masks; objects = visible objects per sample in the masks; img obj = "
          f"blocks counted from the image, closer to the eye on samples; S-Acc by "
          f"sri.metrics.judge_samples; scene FD of the samples to the held-out scenes)")


def demo_figure(models: dict[str, Any], steps: dict[str, int], path: Path, *, seed: int = 0, n: int = 8,
                recipe: str = "", object_scale: float = 1.0) -> Path:
    """Per model: samples, their slots coloured by generation order, test scenes and reconstructions."""
    import torch

    from sri.data import build_dataset
    from sri.report.figures import add_slot_legend, montage, pyplot, save_figure
    from sri.viz import colour_masks, to_hwc

    plt = pyplot()
    panels, k_max = [], 1
    for row, label in ROWS:
        if row not in models:
            continue
        m = models[row]
        te = build_dataset("blocks", None, "test", num=n, image_size=m.image_size, object_scale=object_scale)
        images = torch.stack([te[i]["image"] for i in range(len(te))])  # no training mean needed here
        with torch.no_grad():
            s = m.sample(n, generator=torch.Generator().manual_seed(seed))
            torch.manual_seed(seed)
            r = m(images)
        k_max = max(k_max, s.masks.shape[1])
        tile = montage([to_hwc(s.images), colour_masks(s.masks), to_hwc(images), to_hwc(r.recon),
                        colour_masks(r.masks)])
        panels.append((f"{label}, step {steps.get(row, '?')}: samples / their slots by generation order / "
                       f"test scenes / reconstructions / their slots", tile))
    if not panels:
        raise SystemExit("[demo] no completed demo runs with checkpoints found")
    h, w = panels[0][1].shape[:2]
    fig, axes = plt.subplots(1, len(panels), squeeze=False, layout="constrained",
                             figsize=(len(panels) * w / 40 + 0.5, h / 40 + 1.3))
    for ax, (title, img) in zip(axes[0], panels):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(title, fontsize=7)
        ax.axis("off")
    if recipe:
        fig.suptitle(recipe, fontsize=8)
    add_slot_legend(fig, k_max)
    return save_figure(fig, path)


def load_models(runs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, int]]:
    """The final model of each demo run and its step."""
    from sri.checkpoint import load_model

    models, steps = {}, {}
    for row, _ in ROWS:
        if row in runs:
            model, ckpt = load_model(runs[row].info["checkpoint"])
            models[row], steps[row] = model.eval(), int(ckpt["step"])
    return models, steps


def _recipe_line(runs: dict[str, Any]) -> str:
    r = next(iter(runs.values()), None)
    if r is None:
        return ""
    c = r.config
    mo = c.get("model_options", {})
    return (f"preset {c.get('preset')}: blocks {mo.get('image_size')}px, K={mo.get('num_slots')}, "
            f"slot_dim={mo.get('slot_dim')}, {mo.get('likelihood')} sigma={mo.get('pixel_std')}, "
            f"batch {c.get('batch_size')}, lr {c.get('lr')}, GECO goal {c.get('geco_goal')}, "
            f"object_scale {c.get('data_options', {}).get('object_scale', 1.0)}")


def main(argv: Sequence[str] | None = None) -> int:
    """Train both models, show what they learned, make tables and figures, print where everything went."""
    args = _parser().parse_args(argv)
    if args.make_checkpoints:
        target = checkpoint_target(args.checkpoint_dir, args.overwrite)
        if target != Path(args.checkpoint_dir):
            print(f"[demo-checkpoints] writing to {target}/ ({args.checkpoint_dir}/ is kept; --overwrite replaces it)")
        expected = expected_checkpoint_minutes(args.checkpoint_dir)
        if expected and args.checkpoint_steps is None:
            print("[demo-checkpoints] the recorded recipe took " + ", ".join(
                f"{row} {m:.0f} min" for row, m in expected.items()) + " of wall-clock time on the machine in "
                f"{Path(args.checkpoint_dir) / PROVENANCE} (stages 1-2 as one-thread processes); expect about "
                f"that much, longer on a slower CPU", flush=True)
        make_checkpoints(target, steps=args.checkpoint_steps, seed=args.seed,
                         rows=args.rows.split(",") if args.rows else None, start_stage=args.start_stage)
        return 0
    store, tables, figures = Path(args.store), Path(args.tables), Path(args.figures)
    t0 = time.time()
    started = train_runs(store, minutes=args.minutes, seed=args.seed, smoke=args.smoke,
                         from_scratch=args.from_scratch, checkpoint_dir=args.checkpoint_dir)
    runs = latest_runs(store)
    preset = "smoke" if args.smoke else "demo"
    notes = [] if args.skip_report else report(store, tables, figures, preset)
    models, steps = load_models(runs)
    scale = float(next(iter(runs.values())).config.get("data_options", {}).get("object_scale", 1.0)) if runs else 1.0
    summary = evaluate_models(models, eval_num=8 if args.smoke else args.eval_num,
                              num_samples=8 if args.smoke else args.num_samples, seed=args.seed,
                              object_scale=scale)
    for row, step in steps.items():
        summary["models"][row]["step"] = step
        summary["models"][row]["started"] = started.get(row, "smoke")
    summary["recipe"] = _recipe_line(runs)
    figures.mkdir(parents=True, exist_ok=True)
    (figures / "demo_summary.json").write_text(json.dumps(summary, indent=1))
    fig = demo_figure(models, steps, figures / "demo_sri_vs_genv2.png", seed=args.seed,
                      recipe=summary["recipe"], object_scale=scale)

    print("\n" + "=" * 72)
    print(f"sri demo finished in {(time.time() - t0) / 60:.1f} min")
    print(f"  runs (Sacred file store): {store}/")
    for row, label in ROWS:
        r = runs.get(row)
        if r is None:
            print(f"    {label}: no completed run")
            continue
        print(f"    {label}: run {r.id} ({started.get(row, 'smoke preset')}), checkpoint {r.info.get('checkpoint')}")
    print_summary(summary)
    if not args.skip_report:
        listed = sorted(str(p) for p in tables.glob("*")) if tables.is_dir() else []
        print(f"  tables: {tables}/ ({len(listed)} files" + (f", e.g. {listed[0]})" if listed else ")"))
        figs = sorted(str(p) for p in figures.glob("*.png")) if figures.is_dir() else []
        print(f"  figures: {figures}/ ({len(figs)} PNGs)")
    print(f"  samples, slots and reconstructions side by side: {fig}")
    print(f"  summary: {figures / 'demo_summary.json'}")
    for note in notes:
        print(f"  note: {note}")
    print("=" * 72)
    return 0


if __name__ == "__main__":
    sys.exit(main())
