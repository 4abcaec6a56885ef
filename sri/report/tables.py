"""Logged runs → aggregated results (mean ± std over seeds) → tables/table{N}.csv and .md."""
from __future__ import annotations

import csv
import json
import math
import os
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from sri.report.paper import (DATASET_LABELS, EVAL_METRICS, METRICS, NON_AUTOREGRESSIVE, TABLES,
                              PaperValue, load_paper_results, table_spec)

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


# -- selecting runs -----------------------------------------------------------------------------
def run_table(run: Any) -> int | None:
    """The paper table of a run: `config["table"]`, else a `tableN` in the experiment name."""
    table = run.config.get("table")
    if table is not None:
        try:
            return int(table)
        except (TypeError, ValueError):
            return None
    m = re.search(r"table\s*_?(\d+)", run.experiment or "")
    return int(m.group(1)) if m else None


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


def select_runs(runs: Iterable[Any], *, latest_only: bool = True,
                statuses: Sequence[str] = ("COMPLETED",), preset: str = ALL_PRESETS) -> list[Any]:
    """COMPLETED runs of `preset` ("all": any) with a table/row/dataset config and final metrics;
    the latest per (table, row, dataset, seed) unless `latest_only` is False."""
    chosen: dict[Any, Any] = {}
    kept = []
    for run in runs:
        if run.status not in statuses or not has_final_metrics(run):
            continue
        if preset != ALL_PRESETS and run_preset(run) != preset:
            continue
        key = run_key(run)
        if key is None:
            continue
        if not latest_only:
            kept.append(run)
            continue
        old = chosen.get(key)
        if old is None or _recency(run) > _recency(old):
            chosen[key] = run
    return kept if not latest_only else sorted(chosen.values(), key=_recency)


def _recency(run: Any) -> tuple:
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
def collect_results(runs: Iterable[Any], *, latest_only: bool = True, order: str = "auto",
                    order_samples: int = 256, order_seed: int = 0, device: str | None = None,
                    cache: Path | None = ORDER_CACHE, preset: str = ALL_PRESETS,
                    trust_checkpoint: bool = False) -> Results:
    """Aggregate the selected runs (of `preset`, "all": any) into cells keyed by
    (table, row, dataset, metric)."""
    results: Results = {}
    for run in select_runs(runs, latest_only=latest_only, preset=preset):
        table, row, dataset, seed = run_key(run)
        metrics = run_metrics(run, order=order, order_samples=order_samples, order_seed=order_seed,
                              device=device, cache=cache, trust_checkpoint=trust_checkpoint)
        for metric, value in metrics.items():
            if not math.isfinite(value):
                continue
            cell = results.setdefault((table, row, dataset, metric), Cell(table, row, dataset, metric))
            cell.values.append(value)
            cell.seeds.append(seed)
            cell.run_ids.append(run.id)
            cell.presets.append(run_preset(run))
            cell.steps.append(run_steps(run))
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


def _fmt(metric: str, value: float | None) -> str:
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
    with open(path, "w", newline="") as f:
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
    text = _fmt(metric, mean)
    if std is not None:
        text += f" ± {_fmt(metric, std)}"
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
        runs = sorted(zip(cell.seeds, cell.presets, cell.steps, cell.run_ids), key=lambda r: str(r[0]))
        parts = [f"seed {seed}: preset {preset}, {steps if steps is not None else '?'} steps (run {rid})"
                 for seed, preset, steps, rid in runs]
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
        md.write_text(render_markdown(number, results, paper))
        written.append(md)
    return written


def build_tables(store: str | os.PathLike | None = None, out_dir: str | os.PathLike = "tables",
                 *, latest_only: bool = True, order: str = "auto", order_samples: int = 256,
                 order_seed: int = 0, device: str | None = None,
                 cache: Path | None = ORDER_CACHE, preset: str = ALL_PRESETS,
                 trust_checkpoint: bool = False) -> tuple[Results, list[Path]]:
    """`make tables`: read the runs in `store` and write every table; returns (results, paths).

    Only runs of `preset` are used ("all": every preset); the command line defaults to "paper"."""
    from sri.tracking import load_runs

    runs = load_runs(store)
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
                              cache=cache, preset=preset, trust_checkpoint=trust_checkpoint)
    unknown = sorted({k[0] for k in results} - set(TABLES))
    if unknown:
        print(f"warning: runs for tables {unknown} are not part of the paper; ignored", file=sys.stderr)
    return results, write_tables(results, out_dir)
