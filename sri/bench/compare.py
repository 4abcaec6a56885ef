"""`python -m sri.bench compare`: the paper's claim at small scale, SRI vs GENv2 on `blocks`.

Every row is trained from scratch with the same recipe (a preset), the same number of steps and
the same seeds, by the learning check (`sri.bench.learn`), then its generation is measured without
Inception weights: S-Acc and visible objects of samples, the Frechet distance of samples to test
scenes in the blocks scene-feature space (`sri.metrics.scene_features`), plus ARI-FG and
slot-order consistency (and S-Acc by eye where the exported models' samples were labelled).
Results per run and mean +- std per row go to `results.json` and `results.md`. A run whose folder
already holds a finished curve of the same config is reused; one cut short (`--minutes`, the end
of a working session) continues from its checkpoint.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

__all__ = ["generation_metrics", "eye_labels", "compare", "main"]


@torch.no_grad()
def generation_metrics(model: torch.nn.Module, *, data_options: dict[str, Any], num: int = 1000,
                       seed: int = 0, batch_size: int = 100, temperature: float = 1.0) -> dict[str, float]:
    """S-Acc, visible (and coloured) objects and scene-feature FD of `num` samples (vs `num` test
    scenes), -ELBO and the SRI loss on those test scenes, and the slot-order consistency of 256 samples."""
    from sri.data import build_dataset
    from sri.metrics.learning import sample_metrics
    from sri.metrics.order import order_consistency_from_model
    from sri.metrics.scene_features import load_scene_features, scene_frechet_distance

    model.eval()
    res = {f"sample_{k}": v for k, v in sample_metrics(model, num, seed=seed, batch_size=batch_size,
                                                       temperature=temperature).items()}
    net = load_scene_features(model.image_size)
    kw = {k: v for k, v in data_options.items() if k != "num"}
    te = build_dataset("blocks", None, "test", num=num, image_size=model.image_size, **kw)
    real = torch.stack([te[i]["image"] for i in range(len(te))])
    gen = torch.Generator().manual_seed(seed + 1)
    fake = torch.cat([model.sample(min(batch_size, num - i), temperature=temperature, generator=gen).images.clamp(0, 1)
                      for i in range(0, num, batch_size)])
    res["scene_fd"] = scene_frechet_distance(net, fake, real)
    res.update(_test_bpd(model, real, batch_size))
    res["order_consistency"] = order_consistency_from_model(model, num_samples=256, seed=seed)["order_consistency"]
    return res


@torch.no_grad()
def _test_bpd(model: torch.nn.Module, images: torch.Tensor, batch_size: int) -> dict[str, float]:
    """-ELBO and Table 3's SRI loss (-ELBO + crossOrderKL) in bits/dim on `images`, normalised likelihood."""
    from sri.metrics.bpd import bits_per_dim, nelbo_nats, sri_loss_nats

    nelbo = sri = 0.0
    for i in range(0, len(images), batch_size):
        terms = model.elbo_terms(images[i:i + batch_size], normalized=True)
        nelbo += float(nelbo_nats(terms).double().sum())
        sri += float(sri_loss_nats(terms).double().sum())
    dims = images[0].numel()
    return {"nelbo_bpd": float(bits_per_dim(nelbo / len(images), dims)),
            "sri_loss_bpd": float(bits_per_dim(sri / len(images), dims))}


def _summary(values: list[float]) -> tuple[float, float]:
    return (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0)


def _state(d: Path, steps: int, preset: str) -> tuple[str, dict[str, Any] | None]:
    """('done', curve) for a finished run of this config; ('continue', curve) for one cut short
    (time limit, Ctrl-C, kill) that can go on from its checkpoint; ('new', None) otherwise."""
    from sri.bench.learn import earlier_curve
    from sri.train.rundir import list_checkpoints

    curve = earlier_curve(d)
    if curve is None:
        return "new", None
    if (curve.get("preset") or (curve.get("config") or {}).get("preset")) != preset:
        return "new", None
    if curve["steps"] == steps and not curve.get("interrupted"):
        return "done", curve
    if curve["steps"] < steps and list_checkpoints(d / "run"):
        return "continue", curve
    return "new", None


def eye_labels(folder: Path, labels_file: str = "labels.csv") -> dict[tuple[str, int], dict[str, list[int]]]:
    """(checkpoint file name, step) -> {"labels": eye labels (1 / 0; ambiguous left out), "blocks":
    blocks counted by eye} of its samples in the judge-check pools of `folder`
    (`python -m sri.bench judge-check make-pool`), labels read from `folder/labels_file`."""
    from sri.bench.judge_check import load_pool, read_counts, read_labels

    pool = load_pool(folder)
    if not (folder / labels_file).is_file():
        raise FileNotFoundError(f"no {labels_file} in {folder}: give a CSV of id,label there (--labels-file)")
    lab = read_labels(folder / labels_file)
    counts = read_counts(folder / labels_file)
    out: dict[tuple[str, int], dict[str, list[int]]] = {}
    for sid, src in zip(pool["ids"], pool["sources"]):
        name, _, step = str(src).rpartition("@")
        if not step.isdigit():
            continue
        entry = out.setdefault((Path(name).name, int(step)), {"labels": [], "blocks": []})
        if lab.get(int(sid), -1) >= 0:
            entry["labels"].append(lab[int(sid)])
        if int(sid) in counts:
            entry["blocks"].append(counts[int(sid)])
    return out


def _with_eye(entry: dict[str, Any], eye: dict[tuple[str, int], dict[str, list[int]]]) -> dict[str, Any]:
    """`entry` with S-Acc and blocks by eye from the labels of its model's pooled samples (none: dropped)."""
    entry = {k: v for k, v in entry.items() if k not in ("s_acc_eye", "n_eye", "blocks_eye", "n_blocks_eye")}
    seen = eye.get((Path(entry["model_file"]).name, entry["steps"]), {"labels": [], "blocks": []})
    if seen["labels"]:
        entry["s_acc_eye"], entry["n_eye"] = sum(seen["labels"]) / len(seen["labels"]), len(seen["labels"])
    if seen["blocks"]:
        entry["blocks_eye"] = sum(seen["blocks"]) / len(seen["blocks"])
        entry["n_blocks_eye"] = len(seen["blocks"])
    return entry


class ResultsFileError(ValueError):
    """An --add-results file that cannot be added (wrong recipe, bad renaming)."""


def recorded_runs(spec: str, rows: Sequence[str], steps: int, preset: str,
                  eye: dict[tuple[str, int], dict[str, list[int]]] | None) -> list[dict[str, Any]]:
    """The runs measured earlier in a compare results.json, `spec` = FILE or FILE:FROM=TO (rename row
    FROM to TO, e.g. Table 2's sri_g as Table 3's d), kept where the row is in `rows` and steps and
    preset match; eye labels re-read from `eye` when given (a missing model file does not matter); an
    S-Acc measured with other judge settings than today's moves to `sample_s_acc_other_judge`."""
    path, _, rename = spec.partition(":")
    mapping = dict(part.split("=", 1) for part in rename.split(",") if "=" in part)
    if rename and not mapping:
        raise ResultsFileError(f"--add-results {spec}: write the renaming as FILE:FROM=TO (e.g. results.json:sri_g=d)")
    if not Path(path).is_file():
        raise FileNotFoundError(f"--add-results: no results file {path} (a compare results.json)")
    rec = json.loads(Path(path).read_text())
    if rec.get("steps") != steps or rec.get("preset") != preset:
        raise ResultsFileError(f"--add-results {path}: its runs are {rec.get('steps')} steps of preset "
                               f"{rec.get('preset')!r}, this comparison {steps} of {preset!r}; give a file "
                               f"of the same recipe")
    from sri.configs import experiment_config
    from sri.metrics.judge import judge_identity

    # files without it predate the strict rules; rule-threshold dicts predate the learned judge
    same_judge = rec.get("judge") == judge_identity(experiment_config(2, "sri_g", "blocks", preset)["image_size"])
    out = []
    for r in rec.get("runs", []):
        row = mapping.get(r["row"], r["row"])
        if row in rows:
            entry = {**r, "row": row, "recorded_in": path, "measured_at": rec.get("commit")}
            if not same_judge and "sample_s_acc" in entry:  # another judge's S-Acc is kept apart
                entry["sample_s_acc_other_judge"] = entry.pop("sample_s_acc")
            if row != r["row"]:
                entry["recorded_as"] = r["row"]
            out.append(_with_eye(entry, eye) if eye is not None else entry)
    return out


def compare(rows: Sequence[str], seeds: Sequence[int], *, steps: int, preset: str = "demo",
            out: Path = Path("runs/compare"), num: int = 1000, table: int = 2,
            command: str = "", minutes: float = 0.0, labels: Path | None = None,
            labels_file: str = "labels.csv", add_results: Sequence[str] = ()) -> dict[str, Any]:
    """Train (or reuse, or continue) every row x seed, measure the finished ones, export each as
    `out/models/<row>_seed<seed>.pt` (fp16 weights) and write results.json and results.md.

    `minutes` > 0 caps each run's training in this call (a run cut there continues from its
    checkpoint when the command is given again); `labels` is a judge-check folder whose eye labels
    (`labels_file` in it) of the exported models' samples give S-Acc by eye; `add_results` adds runs
    measured in earlier results files (`recorded_runs`) to the summary: they stand in for any row and
    seed not finished in `out` (nothing is trained for them)."""
    from sri.bench.learn import learn
    from sri.bench.time_to_bar import first_at_bar
    from sri.checkpoint import export_checkpoint, load_model
    from sri.configs import row_spec

    eye = eye_labels(labels, labels_file) if labels is not None else {}  # a bad labels file fails first
    recorded = [r for spec in add_results
                for r in recorded_runs(spec, rows, steps, preset, eye if labels is not None else None)]
    recorded_keys = {(r["row"], r["seed"]) for r in recorded}
    out.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    unfinished: list[dict[str, Any]] = []
    for row in rows:
        model_name = row_spec(table, row)["model"]
        for seed in seeds:
            d = out / row / f"seed{seed}"
            state, res = _state(d, steps, preset)
            if state != "done" and (row, seed) in recorded_keys:
                continue  # measured earlier (--add-results): not trained again here
            if state != "done":
                cmd = (f"python -m sri.bench compare --table {table} --rows {row} --seeds {seed} --steps {steps} "
                       f"--preset {preset}"
                       + (f" --minutes {minutes:g}" if minutes else ""))
                print(f"[compare] {row} seed {seed}: " + ("continuing from step " + str(res["steps"])
                                                          if state == "continue" else "training from scratch"),
                      file=sys.stderr, flush=True)
                res = learn(model_name, "blocks", minutes=minutes, steps=steps, preset=preset, seed=seed,
                            eval_every=1000, out=d, table=table, row=row, resume=state == "continue",
                            command=cmd)
            if res["steps"] < steps:
                unfinished.append({"row": row, "seed": seed, "steps": res["steps"],
                                   "train_wall_s": res.get("total_train_wall_s", res["train_wall_s"])})
                print(f"[compare] {row} seed {seed}: {res['steps']} of {steps} steps so far; give the same "
                      f"command again to continue it", file=sys.stderr, flush=True)
                continue
            model_file = out / "models" / f"{row}_seed{seed}.pt"
            if not model_file.is_file():
                export_checkpoint(res["checkpoint"], model_file, keep_optimizer=False)
            model, _ = load_model(model_file)
            gm = generation_metrics(model, data_options=res["config"]["data_options"], num=num, seed=seed)
            last = res["points"][-1]
            entry = {"row": row, "seed": seed, "steps": res["steps"],
                     "train_wall_s": res.get("total_train_wall_s", res["train_wall_s"]),
                     "chunks": len(res.get("chunks") or [res]), "model_file": str(model_file),
                     "ari_fg": last["ari_fg"], "mse_ratio": last["mse_ratio"], "kl": last.get("kl"), **gm}
            if "ari_fg_ordered" in last:
                entry["ari_fg_ordered"] = last["ari_fg_ordered"]
            hit = first_at_bar(res["points"])  # the demo bar on the way (time to a learned model)
            entry["steps_to_bar"] = hit["step"] if hit else None
            entry["minutes_to_bar"] = round(hit["wall_s"] / 60, 2) if hit else None
            entry = _with_eye(entry, eye)
            runs.append(entry)
            print(f"[compare] {row} seed {seed}: " + ", ".join(f"{k} {v:.4g}" for k, v in entry.items()
                                                              if isinstance(v, float)), flush=True)
    here = {(r["row"], r["seed"]) for r in runs}
    runs += [r for r in recorded if (r["row"], r["seed"]) not in here]
    runs.sort(key=lambda r: (list(rows).index(r["row"]), r["seed"]))
    keys = ["sample_s_acc", "s_acc_eye", "scene_fd", "blocks_eye", "sample_image_objects", "sample_visible_objects",
            "sample_coloured_objects",
            "ari_fg", "order_consistency", "mse_ratio", "sri_loss_bpd"]
    keys = [k for k in keys if any(k in r for r in runs)]
    table_rows = {}
    for row in rows:
        mine = [r for r in runs if r["row"] == row]
        if mine:
            table_rows[row] = {k: _summary([r[k] for r in mine if k in r]) for k in keys
                               if any(k in r for r in mine)}
    from sri.configs import experiment_config
    from sri.metrics.judge import judge_identity

    size = experiment_config(2, "sri_g", "blocks", preset)["image_size"]
    result = {"judge": judge_identity(size), "rows": list(rows),
              "seeds": sorted({r["seed"] for r in runs} | set(seeds)),
              "steps": steps, "preset": preset, "num": num,
              "runs": runs, "unfinished": unfinished,
              "summary": {r: {k: list(v) for k, v in t.items()} for r, t in table_rows.items()}}
    from sri.provenance import provenance

    result = {**provenance(command), **result}
    (out / "results.json").write_text(json.dumps(result, indent=1))
    lines = ["| row | seeds | " + " | ".join(keys) + " |", "| --- | --- |" + " --- |" * len(keys)]
    for row, t in table_rows.items():
        n = sum(1 for r in runs if r["row"] == row)
        lines.append(f"| {row} | {n} | " + " | ".join(f"{t[k][0]:.3f} ± {t[k][1]:.3f}" if k in t else "-"
                                                    for k in keys) + " |")
    for u in unfinished:
        lines.append(f"\n{u['row']} seed {u['seed']}: unfinished ({u['steps']} of {steps} steps)")
    per_run = ["", "Per run (* measured earlier, from --add-results):", "",
               "| row | seed | " + " | ".join(keys) + " |", "| --- | --- |" + " --- |" * len(keys)]
    for r in runs:
        per_run.append(f"| {r['row']} | {r['seed']}{'*' if 'recorded_in' in r else ''} | "
                       + " | ".join(f"{r[k]:.3f}" if r.get(k) is not None else "-" for k in keys) + " |")
    (out / "results.md").write_text("\n".join(lines + per_run) + "\n")
    print("\n".join(lines))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(prog="python -m sri.bench compare", description=__doc__.split("\n")[0])
    p.add_argument("--table", type=int, default=2, help="the paper table whose rows are compared (default 2; "
                   "3: the ablations a-d)")
    p.add_argument("--rows", default=None, help="rows of --table (default: sri_g,genv2_g for Table 2, a,b,c,d "
                   "for Table 3)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=15_000, help="training steps per run (default 15000)")
    p.add_argument("--preset", default="demo")
    p.add_argument("--num", type=int, default=1000, help="samples and test scenes per measure (default 1000)")
    p.add_argument("--out", default="runs/compare")
    p.add_argument("--minutes", type=float, default=0.0,
                   help="cap each run's training in this call at this many minutes (0: none); a run cut "
                        "there continues from its checkpoint when the command is given again")
    p.add_argument("--labels", default=None,
                   help="a judge-check folder (pools + labels.csv) whose eye labels of the exported "
                        "models' samples give S-Acc by eye (e.g. docs/judge)")
    p.add_argument("--add-results", action="append", default=[], metavar="FILE[:FROM=TO]",
                   help="add the runs measured in an earlier compare results.json to the summary; they stand in for "
                        "rows and seeds not finished in --out, which are then not trained (eye labels re-read "
                        "from --labels); FROM=TO renames a row, e.g. "
                        "docs/results_scenes.json:sri_g=d for Table 3. Repeatable")
    p.add_argument("--labels-file", default="labels.csv",
                   help="which CSV of id,label in --labels to read (default labels.csv; docs/judge/labels_strict.csv "
                        "holds the strict reading of the rules)")
    a = p.parse_args(argv)
    from sri.provenance import bench_command

    rows = a.rows or ("a,b,c,d" if a.table == 3 else "sri_g,genv2_g")
    from sri.configs import ConfigError, row_spec

    try:
        for r in rows.split(","):
            if r:
                row_spec(a.table, r)
    except ConfigError as e:
        raise SystemExit(f"sri.bench compare: {e}") from None
    from sri.train.trainer import TrainingInterrupted

    try:
        compare([r for r in rows.split(",") if r], [int(s) for s in a.seeds.split(",") if s != ""],
                steps=a.steps, preset=a.preset, out=Path(a.out), num=a.num, command=bench_command("compare", argv),
                minutes=a.minutes, labels=Path(a.labels) if a.labels else None, table=a.table,
                labels_file=a.labels_file, add_results=a.add_results)
    except (FileNotFoundError, ResultsFileError) as e:  # a missing/bad --labels or --add-results file, named
        raise SystemExit(f"sri.bench compare: {e}") from None
    except TrainingInterrupted as e:
        print(f"[compare] {e}: the run's checkpoint and curve are kept; give the same command again to "
              f"continue it", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
