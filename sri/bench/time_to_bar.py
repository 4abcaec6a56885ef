"""`python -m sri.bench time-to-bar`: wall-clock time from random weights to the demo bar.

Each (row, recipe, seed) is trained from scratch by the learning check (`sri.bench.learn`, in a
child process), evaluated every `--eval-every` steps on held-out scenes, and stopped at the first
evaluation that meets the bar (ARI-FG >= 0.75 and MSE <= 0.25 x the mean image's) or at
`--minutes` (in all: a run cut short, e.g. by the end of a working session, continues from its
checkpoint when the same command is given again, or with a larger `--minutes`, and its curve
chunks are joined). The recipes run side by side in one invocation on one machine, so their times are
comparable. Writes `time_to_bar.json` (with provenance), `time_to_bar.md` and `time_to_bar.png`
(ARI-FG and MSE ratio against wall-clock minutes).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

__all__ = ["RECIPES", "Job", "plan_jobs", "first_at_bar", "summarise", "time_to_bar", "plot", "main"]

# name -> (preset, --set overrides, what it is). "current" is the recipe of demo_checkpoints/ in
# one run (goal -1.6 for 15,000 steps, then -2.2); "new" is the `quick` preset.
RECIPES: dict[str, tuple[str, dict[str, Any], str]] = {
    "current": ("demo", {"geco_goal_schedule": [{"goal": -2.2, "at_step": 15_000}]},
                "demo preset: batch 16, goal -1.6 to step 15,000, then -2.2 (the demo checkpoints' stages)"),
    "new": ("quick", {}, "quick preset: batch 16, goal -1.6 until met, -2.2 from 1,000 steps later"),
    # the candidates measured on the way (docs/LEARNING.md)
    "b8-schedule": ("demo", {"batch_size": 8, "geco_goal_schedule": [{"goal": -2.2, "after_reached": 1000}]},
                    "batch 8, goal -1.6 until met, -2.2 from 1,000 steps later"),
    # the quick preset's recipe spelled out on the demo preset (how it was first measured)
    "schedule-b16": ("demo", {"geco_goal_schedule": [{"goal": -2.2, "after_reached": 1000}]},
                     "batch 16, goal -1.6 until met, -2.2 from 1,000 steps later"),
    "early-goal": ("demo", {"geco_goal": -1.45, "geco_goal_schedule": [{"goal": -2.2, "after_reached": 1000}]},
                   "batch 16, goal -1.45 (met sooner) until met, -2.2 from 1,000 steps later"),
    "scenes": ("scenes", {}, "scenes preset: quick, then goal -2.1 from step 12,000 (samples become towers)"),
}


class Job(dict):
    """One training of the comparison: row, model, recipe, seed, output folder and command."""


def plan_jobs(rows: Sequence[str], recipes: Sequence[str], seeds: Sequence[int], *, minutes: float,
              eval_every: int, out: Path, table: int = 2, num_samples: int = 128,
              sample_bar: tuple[float, float] | None = None) -> list[Job]:
    """The learning-check commands of every row x recipe x seed, interleaved by recipe."""
    from sri.configs import ConfigError, row_spec

    unknown = [r for r in recipes if r not in RECIPES]
    if unknown:
        raise ConfigError(f"unknown recipe(s) {unknown}; choose from {', '.join(RECIPES)}")
    jobs = []
    for seed in seeds:
        for row in rows:
            model = row_spec(table, row)["model"]
            for recipe in recipes:  # A B A B: recipes alternate, so drift hits both alike
                preset, overrides, _ = RECIPES[recipe]
                d = out / f"{row}-{recipe}-seed{seed}"
                cmd = [sys.executable, "-m", "sri.bench", "learn", "--model", model, "--table", str(table),
                       "--row", row, "--dataset", "blocks", "--preset", preset, "--minutes", f"{minutes:g}",
                       "--seed", str(seed), "--eval-every", str(eval_every), "--num-samples",
                       str(num_samples), "--stop-at-bar", "--out", str(d)]
                if sample_bar is not None:
                    cmd += ["--sample-bar", f"{sample_bar[0]:g},{sample_bar[1]:g}"]
                for k, v in overrides.items():
                    cmd += ["--set", f"{k}={json.dumps(v, separators=(',', ':'))}"]
                jobs.append(Job(row=row, model=model, recipe=recipe, seed=seed, out=str(d), cmd=cmd,
                                sample_bar=None if sample_bar is None else list(sample_bar)))
    return jobs


def first_at_bar(points: Sequence[dict[str, float]], *, ari: float = 0.75,
                 mse_ratio: float = 0.25, sample_bar: tuple[float, float] | None = None) -> dict[str, float] | None:
    """The first evaluation that meets the bar (and `sample_bar`'s S-Acc and scene FD, if given), or None."""
    from sri.bench.learn import meets_sample_bar
    from sri.metrics.learning import meets

    for p in points:
        if meets(p, ari=ari, mse_ratio=mse_ratio) and (sample_bar is None or meets_sample_bar(p, sample_bar)):
            return p
    return None


def _curve(job: Job) -> dict[str, Any] | None:
    """The job's curve so far (every chunk joined, `sri.bench.learn --resume`), or None."""
    from sri.bench.learn import earlier_curve

    return earlier_curve(job["out"])


def _job_result(job: Job) -> dict[str, Any]:
    curve = _curve(job)
    chunks = curve.get("chunks") or [curve]
    pts = curve["points"]
    hit = first_at_bar(pts)
    sample_bar = job.get("sample_bar")
    hit_s = first_at_bar(pts, sample_bar=tuple(sample_bar)) if sample_bar else None
    best = max(pts, key=lambda p: p.get("ari_fg", -1)) if pts else {}
    res = {"row": job["row"], "recipe": job["recipe"], "seed": job["seed"], "steps": curve["steps"],
           "batch_size": curve["config"]["batch_size"], "reached": hit is not None,
           "steps_to_bar": hit["step"] if hit else None,
           "minutes_to_bar": round(hit["wall_s"] / 60, 2) if hit else None,
           "train_minutes_to_bar": round((hit["wall_s"] - hit.get("eval_s", 0.0)) / 60, 2) if hit else None,
           "minutes": round(curve.get("total_train_wall_s", curve["train_wall_s"]) / 60, 2), "chunks": len(chunks),
           "chunk_commands": [c.get("command") for c in chunks],
           "chunk_commits": [c.get("commit") for c in chunks],
           "best_ari_fg": best.get("ari_fg"),
           "last": pts[-1] if pts else {}, "curve": str(Path(job["out"]) / "curve.json"),
           "sample_s_acc": curve["final"].get("sample_s_acc"),
           "sample_visible_objects": curve["final"].get("sample_visible_objects"),
           "points": [{k: p.get(k) for k in ("step", "wall_s", "eval_s", "ari_fg", "mse_ratio", "kl", "s_acc",
                                             "scene_fd") if k in p} for p in pts]}
    if sample_bar:
        res.update(sample_bar=list(sample_bar), reached_sample_bar=hit_s is not None,
                   steps_to_sample_bar=hit_s["step"] if hit_s else None,
                   minutes_to_sample_bar=round(hit_s["wall_s"] / 60, 2) if hit_s else None,
                   train_minutes_to_sample_bar=round((hit_s["wall_s"] - hit_s.get("eval_s", 0.0)) / 60, 2)
                   if hit_s else None)
    return res


def _next_command(job: Job, cap_minutes: float) -> list[str] | None:
    """The command still to run for `job`: None when it is finished (bar met, or `cap_minutes`
    used up); the whole command for a new run; a resuming chunk for the minutes left."""
    curve = _curve(job)
    if curve is None:
        return list(job["cmd"])
    used = curve.get("total_train_wall_s", curve["train_wall_s"]) / 60
    bar = tuple(job["sample_bar"]) if job.get("sample_bar") else None
    if first_at_bar(curve["points"], sample_bar=bar) is not None or used >= cap_minutes - 0.05:
        return None
    cmd = list(job["cmd"])
    cmd[cmd.index("--minutes") + 1] = f"{cap_minutes - used:.2f}"
    return cmd + ["--resume"]


def summarise(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per row and recipe: seeds that reached the bar and mean/max minutes and steps to it."""
    out = []
    keys = list(dict.fromkeys((r["row"], r["recipe"]) for r in results))
    for row, recipe in keys:
        rs = [r for r in results if r["row"] == row and r["recipe"] == recipe]
        hit = [r for r in rs if r["reached"]]
        entry = {"row": row, "recipe": recipe, "seeds": len(rs), "reached": len(hit)}
        for key in ("minutes_to_bar", "train_minutes_to_bar", "steps_to_bar"):
            vals = [r[key] for r in hit]
            entry[f"mean_{key}"] = round(statistics.fmean(vals), 2) if vals else None
            entry[f"max_{key}"] = max(vals) if vals else None
        if any("reached_sample_bar" in r for r in rs):
            hit_s = [r for r in rs if r.get("reached_sample_bar")]
            entry["reached_sample_bar"] = len(hit_s)
            for key in ("minutes_to_sample_bar", "train_minutes_to_sample_bar", "steps_to_sample_bar"):
                vals = [r[key] for r in hit_s]
                entry[f"mean_{key}"] = round(statistics.fmean(vals), 2) if vals else None
                entry[f"max_{key}"] = max(vals) if vals else None
        entry["best_ari_fg"] = max(r["best_ari_fg"] or 0 for r in rs)
        out.append(entry)
    return out


def _run_all(jobs: list[Job], parallel: int, log_dir: Path, cap_minutes: float, threads: int | None = None) -> None:
    """Run what is left of each job, `parallel` at a time (cores/parallel threads each). A job with
    curves from an earlier invocation continues from its checkpoint for the minutes left."""
    env = dict(os.environ)
    threads = threads or max(1, (os.cpu_count() or 1) // max(parallel, 1))
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    pending, running = list(jobs), []
    log_dir.mkdir(parents=True, exist_ok=True)
    while pending or running:
        while pending and len(running) < parallel:
            job = pending.pop(0)
            cmd = _next_command(job, cap_minutes)
            if cmd is None:
                print(f"[time-to-bar] reusing {job['out']} (bar met or {cap_minutes:g} min used)", file=sys.stderr)
                continue
            log = open(log_dir / f"{Path(job['out']).name}.log", "a")
            print(f"[time-to-bar] start {job['row']} {job['recipe']} seed {job['seed']} "
                  f"({threads} thread{'s' if threads > 1 else ''})", file=sys.stderr, flush=True)
            running.append((job, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log))
        time.sleep(2)
        for item in list(running):
            job, proc, log = item
            if proc.poll() is not None:
                log.close()
                running.remove(item)
                print(f"[time-to-bar] done {job['row']} {job['recipe']} seed {job['seed']} "
                      f"(exit {proc.returncode})", file=sys.stderr, flush=True)
                if proc.returncode:
                    raise RuntimeError(f"{shlex.join(job['cmd'])} failed (exit {proc.returncode}); "
                                       f"see {log.name}")


def time_to_bar(rows: Sequence[str], recipes: Sequence[str], seeds: Sequence[int], *, minutes: float,
                eval_every: int, out: Path, parallel: int = 2, command: str = "",
                threads: int | None = None, sample_bar: tuple[float, float] | None = None) -> dict[str, Any]:
    """Train every row x recipe x seed (or reuse finished ones), write the JSON, MD and PNG;
    `sample_bar` (S-Acc, scene FD) also times the samples' bar."""
    from sri.provenance import provenance

    prov = provenance(command)
    out.mkdir(parents=True, exist_ok=True)
    jobs = plan_jobs(rows, recipes, seeds, minutes=minutes, eval_every=eval_every, out=out, sample_bar=sample_bar)
    threads = threads or max(1, (os.cpu_count() or 1) // max(parallel, 1))
    _run_all(jobs, parallel, out / "logs", minutes, threads)
    results = [_job_result(j) for j in jobs]
    report = {**prov, "parallel": parallel,
              "threads_per_job": threads,
              "cap_minutes": minutes, "eval_every": eval_every,
              "bar": {"ari_fg": 0.75, "mse_ratio": 0.25},
              "sample_bar": None if sample_bar is None else {"s_acc": sample_bar[0], "scene_fd": sample_bar[1]},
              "recipes": {r: {"preset": RECIPES[r][0], "overrides": RECIPES[r][1], "what": RECIPES[r][2]}
                          for r in recipes},
              "summary": summarise(results), "runs": results}
    (out / "time_to_bar.json").write_text(json.dumps(report, indent=1))
    (out / "time_to_bar.md").write_text(markdown(report))
    plot(report, out / "time_to_bar.png")
    return report


def markdown(report: dict[str, Any]) -> str:
    """The per-run table of a report."""
    lines = ["| row | recipe | seed | reached | steps to bar | min to bar (train only) | best ARI-FG | "
             "steps run | min run |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in report["runs"]:
        to = f"{r['minutes_to_bar']} ({r['train_minutes_to_bar']})" if r["reached"] else "-"
        lines.append(f"| {r['row']} | {r['recipe']} | {r['seed']} | {'yes' if r['reached'] else 'no'} | "
                     f"{r['steps_to_bar'] or '-'} | {to} | {r['best_ari_fg']:.3f} | {r['steps']} | {r['minutes']} |")
    with_samples = [r for r in report["runs"] if "reached_sample_bar" in r]
    if with_samples:
        sb = with_samples[0]["sample_bar"]
        lines += ["", f"Sample bar (S-Acc >= {sb[0]:g} and scene FD <= {sb[1]:g} of 1,000 samples, with the bar "
                  f"above):",
                  "", "| row | recipe | seed | reached | steps | min (train only) | last S-Acc | last scene FD |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in with_samples:
            last = r["last"]
            to = (f"{r['minutes_to_sample_bar']} ({r['train_minutes_to_sample_bar']})" if r["reached_sample_bar"]
                  else "-")
            lines.append(f"| {r['row']} | {r['recipe']} | {r['seed']} | {'yes' if r['reached_sample_bar'] else 'no'} | "
                         f"{r['steps_to_sample_bar'] or '-'} | {to} | {last.get('s_acc', float('nan')):.3f} | "
                         f"{last.get('scene_fd', float('nan')):.2f} |")
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> Path:
    """ARI-FG and MSE ratio against wall-clock minutes, one column per row, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(dict.fromkeys(r["row"] for r in report["runs"]))
    recipes = list(report["recipes"])
    colours = {r: f"C{i}" for i, r in enumerate(recipes)}
    fig, ax = plt.subplots(2, len(rows), figsize=(5.5 * len(rows), 6.5), squeeze=False)
    for j, row in enumerate(rows):
        for r in (x for x in report["runs"] if x["row"] == row):
            mins = [p["wall_s"] / 60 for p in r["points"]]
            lab = f"{r['recipe']} seed {r['seed']}"
            ax[0, j].plot(mins, [p["ari_fg"] for p in r["points"]], "o-", ms=3, color=colours[r["recipe"]],
                          label=lab, alpha=0.85)
            ax[1, j].semilogy(mins, [p["mse_ratio"] for p in r["points"]], "o-", ms=3,
                              color=colours[r["recipe"]], label=lab, alpha=0.85)
        ax[0, j].axhline(0.75, color="grey", ls=":", label="bar 0.75")
        ax[1, j].axhline(0.25, color="grey", ls=":", label="bar 0.25")
        ax[0, j].set(title=f"{row}: ARI-FG (held-out)", xlabel="wall-clock minutes", ylim=(-0.05, 1))
        ax[1, j].set(title=f"{row}: MSE / mean-image MSE", xlabel="wall-clock minutes")
        ax[0, j].legend(fontsize=7)
    m = report["machine"]
    fig.suptitle(f"time to the demo bar: {m.get('cpu')} ({m.get('cpu_count')} cores), {report['parallel']} "
                 f"job(s) at a time x {report['threads_per_job']} thread(s), commit "
                 f"{(report.get('commit') or '?')[:7]}{' (dirty)' if report.get('dirty') else ''}, "
                 f"{report['date'][:10]}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sri.bench time-to-bar",
                                description="Wall-clock time from scratch to the demo bar (ARI-FG >= 0.75, "
                                            "MSE <= 0.25 x the mean image's), recipes side by side.")
    p.add_argument("--rows", default="sri_g,genv2_g", help="Table 2 rows (default sri_g,genv2_g)")
    p.add_argument("--recipes", default="current,new", help=f"comma-separated, of: {', '.join(RECIPES)} "
                   "(default current,new)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    p.add_argument("--minutes", type=float, default=20.0, help="cap per run in wall-clock minutes (default 20)")
    p.add_argument("--eval-every", type=int, default=500, help="steps between evaluations (default 500)")
    p.add_argument("--parallel", type=int, default=2,
                   help="runs at a time; each gets cores/parallel threads (default 2: one thread each on 2 cores)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per run (default: cores / --parallel); 1 when two invocations share 2 cores")
    p.add_argument("--out", default="runs/time_to_bar", help="output folder (default runs/time_to_bar)")
    p.add_argument("--sample-bar", nargs="?", const="0.5,10", default=None, metavar="S_ACC,FD",
                   help="also measure the time until 1,000 samples reach S-Acc >= S_ACC and scene FD <= FD "
                        "(default 0.5,10: the generation issue's bar); runs continue past the demo bar until then")
    p.add_argument("--dry-run", action="store_true", help="print the commands and exit")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point."""
    from sri.configs import ConfigError

    argv = list(sys.argv[1:] if argv is None else argv)
    a = _parser().parse_args(argv)
    split = [s.strip() for s in a.rows.split(",") if s.strip()]
    recipes = [s.strip() for s in a.recipes.split(",") if s.strip()]
    try:
        seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(f"sri.bench time-to-bar: --seeds must be integers, got {a.seeds!r}") from None
    if a.parallel < 1 or a.minutes <= 0 or a.eval_every < 1:
        raise SystemExit("sri.bench time-to-bar: --parallel, --minutes and --eval-every must be positive")
    from sri.bench.learn import parse_bar

    sample_bar = parse_bar(a.sample_bar, "--sample-bar")
    try:
        if a.dry_run:
            for j in plan_jobs(split, recipes, seeds, minutes=a.minutes, eval_every=a.eval_every, out=Path(a.out),
                               sample_bar=sample_bar):
                print(shlex.join(j["cmd"]))
            return 0
        rep = time_to_bar(split, recipes, seeds, minutes=a.minutes, eval_every=a.eval_every, out=Path(a.out),
                          parallel=a.parallel, command="python -m sri.bench time-to-bar " + shlex.join(argv),
                          threads=a.threads, sample_bar=sample_bar)
    except ConfigError as e:
        raise SystemExit(f"sri.bench time-to-bar: {e}") from None
    print(markdown(rep))
    for s in rep["summary"]:
        print(f"{s['row']:8} {s['recipe']:13} reached {s['reached']}/{s['seeds']}: mean "
              f"{s['mean_minutes_to_bar']} min (train only {s['mean_train_minutes_to_bar']}), "
              f"{s['mean_steps_to_bar']} steps; best ARI-FG {s['best_ari_fg']:.3f}")
    print(f"written: {Path(a.out) / 'time_to_bar.json'}, .md, .png")
    return 0
