"""Logged runs → aggregated results (mean ± std over seeds) → tables/table{N}.csv and .md."""
from __future__ import annotations

import csv
import json
import math
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from sri.atomicio import atomic_open, atomic_write_text
from sri.report.paper import (
    DATASET_LABELS,
    EVAL_METRICS,
    METRICS,
    NON_AUTOREGRESSIVE,
    TABLES,
    PaperValue,
    load_paper_results,
    table_spec,
)

ORDER_CACHE = Path(".cache") / "order_consistency.json"
CSV_COLUMNS = ("table", "row", "paper_row", "dataset", "metric", "mean", "std", "n", "paper_mean",
               "paper_std", "seeds", "run_ids", "paper_note", "presets", "steps")
ALL_PRESETS = "all"  # `--preset all`: runs of every preset


@dataclass
class Cell:
    """Our values of one metric for one (table, row, dataset), one per selected run (seed)."""

    table: int
    row: str
    dataset: str
    metric: str
    values: list[float] = field(default_factory=list)
    seeds: list[Any] = field(default_factory=list)
    run_ids: list[Any] = field(default_factory=list)
    presets: list[str] = field(default_factory=list)
    steps: list[int | None] = field(default_factory=list)
    nonfinite: list[int] = field(default_factory=list)  # non-finite training steps of each run (flagged)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else float("nan")

    @property
    def std(self) -> float:
        """Population std (ddof=0), as the paper's Table 1 per-seed numbers show it used."""
        return float(np.std(self.values)) if self.values else float("nan")


Results = dict[tuple[int, str, str, str], Cell]


# -- selecting runs ---------------------------------------------------------------------------
from sri.tracking.frame import run_table  # noqa: E402  (re-exported: one implementation)

KEY_COLUMNS = ["table", "row", "dataset", "seed"]


def run_key(run: Any) -> tuple[int, str, str, Any] | None:
    """(table, row, dataset, seed) of a run, or None when its config lacks them."""
    table = run_table(run)
    row, dataset = run.config.get("row"), run.config.get("dataset")
    if table is None or row is None or dataset is None:
        return None
    return table, str(row), str(dataset), run.config.get("seed")


def run_preset(run: Any) -> str:
    """The preset a run was trained with (`paper`, `smoke`, `demo`; `custom` when not recorded)."""
    return str(run.config.get("preset") or "custom")


def run_steps(run: Any) -> int | None:
    """The training step of a run's final metrics (the last logged step), else its `steps`."""
    logged = [s for m in EVAL_METRICS for s, _ in run.metrics.get(m, [])]
    if logged:
        return int(max(logged))
    steps = run.config.get("steps")
    return int(steps) if isinstance(steps, (int, float)) else None


def has_final_metrics(run: Any) -> bool:
    """Whether the run logged at least one evaluation metric."""
    return any(run.final(m) is not None for m in EVAL_METRICS)


def select_frame(frame: Any, *, latest_only: bool = True, statuses: Sequence[str] = ("COMPLETED",),
                 preset: str = ALL_PRESETS, sweep: str | None = None) -> Any:
    """The rows of a `runs_frame` that tables use: status in `statuses`, of `preset` ("all": any)
    and `sweep` (None: any), with table/row/dataset and at least one evaluation metric; the
    latest per (table, row, dataset, seed) unless `latest_only` is False. Sorted by start time."""
    metrics = [m for m in EVAL_METRICS if m in frame.columns]
    keep = frame["status"].isin(list(statuses)) & frame[["table", "row", "dataset"]].notna().all(axis=1)
    keep &= frame[metrics].notna().any(axis=1) if metrics else False
    if preset != ALL_PRESETS:
        keep &= frame["preset"] == preset
    if sweep is not None:
        keep &= frame["sweep"] == sweep
    chosen = frame[keep]
    if latest_only:  # the frame is sorted by start time: the last of each key is the latest
        chosen = chosen.drop_duplicates(subset=KEY_COLUMNS, keep="last")
    return chosen


def select_runs(runs: Iterable[Any], *, latest_only: bool = True,
                statuses: Sequence[str] = ("COMPLETED",), preset: str = ALL_PRESETS,
                sweep: str | None = None) -> list[Any]:
    """COMPLETED runs of `preset` ("all": any) with a table/row/dataset config and final metrics;
    the latest per (table, row, dataset, seed) unless `latest_only` is False (see `select_frame`)."""
    from sri.tracking.frame import runs_frame

    runs = list(runs)
    chosen = select_frame(runs_frame(runs), latest_only=latest_only, statuses=statuses,
                          preset=preset, sweep=sweep)
    by_id = {str(r.id): r for r in runs}
    return [by_id[str(i)] for i in chosen["id"]]


def run_recency(run: Any) -> tuple:
    """Sort key of a run: later start (then larger id) = more recent."""
    import datetime as dt

    start = run.start_time or dt.datetime.min
    rid = run.id if isinstance(run.id, (int, float)) else -1
    return (start, rid, str(run.id))


# -- order consistency from checkpoints ---------------------------------------------------------
def is_autoregressive(run: Any) -> bool:
    """Whether the run's model has an autoregressive prior (every model but EMORL)."""
    return str(run.config.get("model", "")) not in NON_AUTOREGRESSIVE


def _load_cache(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def order_from_checkpoint(checkpoint: str | os.PathLike, *, num_samples: int = 256, seed: int = 0,
                          device: str | None = None, cache: Path | None = ORDER_CACHE,
                          trust_checkpoint: bool = False) -> float:
    """Order consistency of the model in `checkpoint` (cached by path, mtime, size, settings)."""
    from sri.metrics.order import order_consistency_from_model

    path = Path(checkpoint).resolve()
    stat = path.stat()
    key = f"{path}|{stat.st_mtime_ns}|{stat.st_size}|{num_samples}|{seed}"
    if cache is not None:
        stored = _load_cache(cache)
        if key in stored:
            return float(stored[key]["order_consistency"])
    from sri.checkpoint import load_model

    model, _ = load_model(path, map_location=device or "cpu", trust=trust_checkpoint)
    result = order_consistency_from_model(model, num_samples=num_samples, seed=seed, device=device)
    if cache is not None:
        stored = _load_cache(cache)
        stored[key] = result
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(stored, indent=1, sort_keys=True))
        os.replace(tmp, cache)
    return float(result["order_consistency"])


def run_metrics(run: Any, *, order: str = "auto", order_samples: int = 256, order_seed: int = 0,
                device: str | None = None, cache: Path | None = ORDER_CACHE,
                trust_checkpoint: bool = False) -> dict[str, float]:
    """A run's final evaluation metrics; S-Acc as a percentage; order consistency added from the
    checkpoint when `order="auto"`, the model is autoregressive and it was not logged."""
    if order not in ("auto", "logged", "off"):
        raise ValueError(f"order must be 'auto', 'logged' or 'off', not {order!r}")
    values = run.final_metrics(EVAL_METRICS)
    if "s_acc" in values and values["s_acc"] <= 1.0:
        values["s_acc"] *= 100.0  # a fraction; the paper reports a percentage
    if order == "off":
        values.pop("order_consistency", None)
    elif (order == "auto" and "order_consistency" not in values and is_autoregressive(run)
          and run.checkpoint_path() is not None):
        try:
            values["order_consistency"] = order_from_checkpoint(
                run.checkpoint_path(), num_samples=order_samples, seed=order_seed, device=device, cache=cache,
                trust_checkpoint=trust_checkpoint)
        except Exception as e:  # a broken checkpoint must not stop the tables
            warnings.warn(f"run {run.id}: order consistency from {run.checkpoint} failed "
                          f"({type(e).__name__}: {e}); left out")
    return values


# -- aggregating --------------------------------------------------------------------------------
def long_results(runs: Iterable[Any], *, latest_only: bool = True, order: str = "auto",
                 order_samples: int = 256, order_seed: int = 0, device: str | None = None,
                 cache: Path | None = ORDER_CACHE, preset: str = ALL_PRESETS,
                 sweep: str | None = None, trust_checkpoint: bool = False) -> Any:
    """One row per selected run and evaluation metric (table, row, dataset, metric, value, seed,
    run id, preset, steps), as a pandas DataFrame in run order."""
    import pandas as pd

    from sri.tracking.frame import runs_frame

    runs = list(runs)
    by_id = {str(r.id): r for r in runs}
    chosen = select_frame(runs_frame(runs), latest_only=latest_only, preset=preset, sweep=sweep)
    records = []
    for rid in chosen["id"]:
        run = by_id[str(rid)]
        metrics = run_metrics(run, order=order, order_samples=order_samples, order_seed=order_seed,
                              device=device, cache=cache, trust_checkpoint=trust_checkpoint)
        table, row, dataset, seed = run_key(run)
        for metric, value in metrics.items():
            records.append({"table": table, "row": row, "dataset": dataset, "metric": metric,
                            "value": value, "seed": seed, "run_id": run.id,
                            "preset": run_preset(run), "steps": run_steps(run),
                            "nonfinite": int(run.info.get("nonfinite_steps") or 0)})
    frame = pd.DataFrame(records, columns=["table", "row", "dataset", "metric", "value", "seed",
                                           "run_id", "preset", "steps", "nonfinite"])
    return frame[frame["value"].map(lambda v: math.isfinite(v))] if len(frame) else frame


def summarize(long: Any) -> Any:
    """Mean, population std (ddof=0, as the paper) and count of `long_results` per
    (table, row, dataset, metric), with the seeds, run ids, presets and steps behind each."""
    keys = ["table", "row", "dataset", "metric"]
    return long.groupby(keys, sort=False, dropna=False).agg(
        mean=("value", "mean"), std=("value", lambda v: float(v.std(ddof=0))), n=("value", "size"),
        values=("value", list), seeds=("seed", list), run_ids=("run_id", list),
        presets=("preset", list), steps=("steps", list), nonfinite=("nonfinite", list)).reset_index()


def collect_results(runs: Iterable[Any], *, latest_only: bool = True, order: str = "auto",
                    order_samples: int = 256, order_seed: int = 0, device: str | None = None,
                    cache: Path | None = ORDER_CACHE, preset: str = ALL_PRESETS,
                    sweep: str | None = None, trust_checkpoint: bool = False) -> Results:
    """Aggregate the selected runs (of `preset`, "all": any; of `sweep`, None: any) into cells
    keyed by (table, row, dataset, metric)."""
    long = long_results(runs, latest_only=latest_only, order=order, order_samples=order_samples,
                        order_seed=order_seed, device=device, cache=cache, preset=preset,
                        sweep=sweep, trust_checkpoint=trust_checkpoint)
    results: Results = {}
    for g in summarize(long).itertuples(index=False):
        results[(int(g.table), g.row, g.dataset, g.metric)] = Cell(
            int(g.table), g.row, g.dataset, g.metric, values=list(g.values), seeds=list(g.seeds),
            run_ids=list(g.run_ids), presets=list(g.presets),
            steps=[None if s is None or s != s else int(s) for s in g.steps],
            nonfinite=[int(n) for n in g.nonfinite])
    return results


def _rows(number: int, results: Results) -> list[str]:
    spec = table_spec(number)
    ours = sorted({k[1] for k in results if k[0] == number} - set(spec.rows))
    return list(spec.rows) + ours


def _columns(number: int, results: Results, every_metric: bool = False) -> list[tuple[str, str]]:
    """(dataset, metric) columns: the paper's layout, order consistency where we have it, then
    the table's metrics on datasets the paper does not have (e.g. synthetic ones). With
    `every_metric`, also any other evaluation metric we logged (for the CSV)."""
    spec = table_spec(number)
    ours = {(k[2], k[3]) for k in results if k[0] == number}
    cols: list[tuple[str, str]] = []

    def add(dataset: str, metrics: Sequence[str]) -> None:
        cols.extend((dataset, m) for m in metrics)
        rest = [m for m in EVAL_METRICS if m not in metrics and (dataset, m) in ours
                and (every_metric or m == "order_consistency")]
        cols.extend((dataset, m) for m in rest)

    for dataset, metrics in spec.layout:
        add(dataset, metrics)
    paper_datasets = [d for d, _ in spec.layout]
    for dataset in sorted({d for d, _ in ours} - set(paper_datasets)):
        add(dataset, [m for m in spec.metrics if (dataset, m) in ours])
    return cols


def format_value(metric: str, value: float | None) -> str:
    """`value` as a table cell in `metric`'s display format; empty for None/NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return METRICS[metric].fmt.format(value) if metric in METRICS else f"{value:.4g}"


def table_lines(number: int, results: Results,
                paper: dict[tuple[int, str, str, str], PaperValue]) -> list[dict[str, Any]]:
    """One dict per row × dataset × metric (ours and/or the paper's), in display order."""
    spec = table_spec(number)
    lines = []
    for row in _rows(number, results):
        for dataset, metric in _columns(number, results, every_metric=True):
            cell = results.get((number, row, dataset, metric))
            pv = paper.get((number, row, dataset, metric))
            if cell is None and pv is None:
                continue
            lines.append({
                "table": number, "row": row, "paper_row": spec.paper_row(row), "dataset": dataset,
                "metric": metric,
                "mean": cell.mean if cell else None, "std": cell.std if cell else None,
                "n": cell.n if cell else 0,
                "paper_mean": pv.mean if pv else None, "paper_std": pv.std if pv else None,
                "seeds": " ".join(str(s) for s in cell.seeds) if cell else "",
                "run_ids": " ".join(str(r) for r in cell.run_ids) if cell else "",
                "paper_note": pv.note if pv else "",
                "presets": " ".join(cell.presets) if cell else "",
                "steps": " ".join(str(s) for s in cell.steps) if cell else "",
            })
    return lines


def write_csv(path: Path, lines: list[dict[str, Any]]) -> Path:
    """Write table lines as CSV (floats with full precision, empty for missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for line in lines:
            writer.writerow({k: ("" if line[k] is None else
                                 repr(float(line[k])) if isinstance(line[k], float) else line[k])
                             for k in CSV_COLUMNS})
    return path


def _mean_std(metric: str, mean: float | None, std: float | None, n: int | None = None) -> str:
    if mean is None:
        return "–"
    text = format_value(metric, mean)
    if std is not None:
        text += f" ± {format_value(metric, std)}"
    if n is not None:
        text += f" (n={n})"
    return text


def _runs_used(number: int, results: Results) -> list[str]:
    """One line per (row, dataset) with results: preset(s), training steps, seeds, run ids."""
    first: dict[tuple[str, str], Cell] = {}
    for (t, row, dataset, _), cell in results.items():
        if t == number and (row, dataset) not in first:
            first[(row, dataset)] = cell
    lines = []
    for (row, dataset), cell in sorted(first.items(), key=lambda kv: (_rows(number, results).index(kv[0][0]),
                                                                        kv[0][1])):
        bad = cell.nonfinite or [0] * len(cell.seeds)
        runs = sorted(zip(cell.seeds, cell.presets, cell.steps, cell.run_ids, bad), key=lambda r: str(r[0]))
        parts = [f"seed {seed}: preset {preset}, {steps if steps is not None else '?'} steps (run {rid})"
                 + (f" **{n} non-finite steps**" if n else "")
                 for seed, preset, steps, rid, n in runs]
        lines.append(f"- `{row}` on {DATASET_LABELS.get(dataset, dataset)}: " + "; ".join(parts))
    return lines


def render_markdown(number: int, results: Results,
                    paper: dict[tuple[int, str, str, str], PaperValue]) -> str:
    """Table `number` laid out like the paper's: ours (mean ± std, n seeds), then the paper's."""
    spec = table_spec(number)
    rows, cols = _rows(number, results), _columns(number, results)
    header = ["Model"] + [f"{DATASET_LABELS.get(d, d)} {METRICS[m].label} {METRICS[m].arrow}"
                          for d, m in cols]
    sep = ["---"] + ["---:"] * len(cols)

    def label(row: str) -> str:
        name = spec.row_labels.get(row, spec.paper_row(row))
        return f"{name} (`{row}`)"

    out = [f"# Table {number}: {spec.title}", "",
           "Ours: mean ± std (population std, as in the paper) over n seeds; the latest "
           "completed run per seed. S-Acc in percent. The runs used (preset, training steps) "
           "are listed below the table.", "",
           "| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    for row in rows:
        cells = []
        for d, m in cols:
            c = results.get((number, row, d, m))
            cells.append(_mean_std(m, c.mean, c.std, c.n) if c else "–")
        out.append("| " + " | ".join([label(row)] + cells) + " |")
    out += ["", "Runs used:", ""] + (_runs_used(number, results) or ["- none"])
    out += ["", f"Paper (Table {number}):", "",
            "| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    for row in spec.rows:
        cells = []
        for d, m in cols:
            pv = paper.get((number, row, d, m))
            cells.append(_mean_std(m, pv.mean, pv.std) if pv else "–")
        out.append("| " + " | ".join([label(row)] + cells) + " |")
    return "\n".join(out) + "\n"


def write_tables(results: Results, out_dir: str | os.PathLike = "tables",
                 paper: dict[tuple[int, str, str, str], PaperValue] | None = None,
                 tables: Sequence[int] = tuple(TABLES)) -> list[Path]:
    """Write `table{N}.csv` and `table{N}.md` for each table; returns the paths written."""
    paper = load_paper_results() if paper is None else paper
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for number in tables:
        written.append(write_csv(out / f"table{number}.csv", table_lines(number, results, paper)))
        md = out / f"table{number}.md"
        atomic_write_text(md, render_markdown(number, results, paper))
        written.append(md)
    return written


def build_tables(store: str | os.PathLike | None = None, out_dir: str | os.PathLike = "tables",
                 *, latest_only: bool = True, order: str = "auto", order_samples: int = 256,
                 order_seed: int = 0, device: str | None = None,
                 cache: Path | None = ORDER_CACHE, preset: str = ALL_PRESETS,
                 sweep: str | None = None,
                 trust_checkpoint: bool = False) -> tuple[Results, list[Path]]:
    """`make tables`: read the runs in `store` and write every table; returns (results, paths).

    Only runs of `preset` are used ("all": every preset; the command line defaults to "paper"),
    and of `sweep` when given."""
    from sri.tracking import load_runs

    runs = load_runs(store, final_only=True)
    if preset != ALL_PRESETS:
        other: dict[str, int] = {}
        for run in select_runs(runs, latest_only=False):
            if run_preset(run) != preset:
                other[run_preset(run)] = other.get(run_preset(run), 0) + 1
        if other:
            counts = ", ".join(f"{n} {p}" for p, n in sorted(other.items()))
            print(f"note: using only preset={preset} runs; ignored completed runs of other presets "
                  f"({counts}); pass --preset {'|'.join(sorted(other))}|all to use them",
                  file=sys.stderr)
    results = collect_results(runs, latest_only=latest_only, order=order,
                              order_samples=order_samples, order_seed=order_seed, device=device,
                              cache=cache, preset=preset, sweep=sweep,
                              trust_checkpoint=trust_checkpoint)
    unknown = sorted({k[0] for k in results} - set(TABLES))
    if unknown:
        print(f"warning: runs for tables {unknown} are not part of the paper; ignored", file=sys.stderr)
    return results, write_tables(results, out_dir)
