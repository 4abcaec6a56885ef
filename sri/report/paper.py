"""The paper's tables as data: layouts, our row names → the paper's labels, reported values."""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from sri.data import REAL
from sri.models.registry import REGISTRY

PAPER_RESULTS = Path(__file__).resolve().parents[2] / "tables" / "paper_results.csv"
PAPER_DATASETS = REAL  # the datasets of the paper's tables (sri.data's list)
DATASET_LABELS = {"clevr6": "CLEVR6", "objects_room": "Objects Room", "shapestacks": "ShapeStacks",
                  "blocks": "Blocks (synthetic)", "shapes": "Shapes (synthetic)"}
# Models whose prior is not autoregressive (no generation order to score), and SRI-like models
# (an order-aligned posterior: imagine, ordered slots); both from the model registry.
NON_AUTOREGRESSIVE = frozenset(n for n, s in REGISTRY.items() if not s.autoregressive)
ORDERED_POSTERIOR = frozenset(n for n, s in REGISTRY.items() if s.ordered_posterior)


@dataclass(frozen=True)
class MetricSpec:
    """Display name, direction and format of one metric."""

    label: str
    lower_is_better: bool
    fmt: str

    @property
    def arrow(self) -> str:
        return "↓" if self.lower_is_better else "↑"


METRICS: dict[str, MetricSpec] = {
    "fid": MetricSpec("FID", True, "{:.1f}"),
    "ari_fg": MetricSpec("ARI-FG", False, "{:.3f}"),
    "nelbo_bpd": MetricSpec("-ELBO (bpd)", True, "{:.3f}"),
    "sri_loss_bpd": MetricSpec("L_SRI (bpd)", True, "{:.3f}"),
    "s_acc": MetricSpec("S-Acc (%)", False, "{:.1f}"),
    "order_consistency": MetricSpec("Order consistency", False, "{:.2f}"),
}
EVAL_METRICS = tuple(METRICS)


@dataclass(frozen=True)
class TableSpec:
    """One paper table: our row names in display order → paper labels, and its column layout."""

    number: int
    title: str
    rows: dict[str, str]
    layout: tuple[tuple[str, tuple[str, ...]], ...]  # (dataset, metrics) in column order
    row_labels: dict[str, str] = field(default_factory=dict)

    def paper_row(self, row: str) -> str:
        """The paper's label for our row name (the row name itself when the paper has none)."""
        return self.rows.get(row, row)

    @property
    def metrics(self) -> tuple[str, ...]:
        seen: list[str] = []
        for _, ms in self.layout:
            seen += [m for m in ms if m not in seen]
        return tuple(seen)


# Column layouts (dataset, metrics) of the paper's tables; titles. Rows and their labels come from
# `sri.configs.TABLES`, the one list of tables and rows.
_LAYOUTS: dict[int, tuple[str, tuple[tuple[str, tuple[str, ...]], ...]]] = {
    1: ("SRI-SA* results (ShapeStacks)", (("shapestacks", ("fid", "ari_fg", "nelbo_bpd")),)),
    2: ("Main quantitative results",
        (("clevr6", ("fid", "ari_fg")), ("objects_room", ("fid", "ari_fg")),
         ("shapestacks", ("fid", "ari_fg", "s_acc")))),
    3: ("SRI ablations (SRI-G on ShapeStacks)", (("shapestacks", ("fid", "sri_loss_bpd", "s_acc")),)),
    4: ("Scene variable ablation (ShapeStacks)", (("shapestacks", ("fid", "nelbo_bpd", "s_acc")),)),
}


def _table(number: int) -> TableSpec:
    from sri.configs import TABLES as CONFIG_TABLES

    rows = CONFIG_TABLES[number]["rows"]
    title, layout = _LAYOUTS[number]
    return TableSpec(number, title, {r: spec.get("paper", spec["label"]) for r, spec in rows.items()},
                     layout, row_labels={r: spec["label"] for r, spec in rows.items()
                                         if spec["label"] != spec.get("paper", spec["label"])})


TABLES: dict[int, TableSpec] = {n: _table(n) for n in _LAYOUTS}


def table_spec(number: int) -> TableSpec:
    """The spec of paper table `number` (1..4)."""
    if number not in TABLES:
        raise ValueError(f"unknown table {number!r}: the paper has tables {sorted(TABLES)}")
    return TABLES[number]


@dataclass(frozen=True)
class PaperValue:
    """One reported number; `std` is None where the paper gives none."""

    mean: float
    std: float | None
    note: str = ""


def _float_or_none(text: str) -> float | None:
    text = (text or "").strip()
    if not text:
        return None
    value = float(text)
    return None if math.isnan(value) else value


def load_paper_results(path: str | Path | None = None) -> dict[tuple[int, str, str, str], PaperValue]:
    """`tables/paper_results.csv` as {(table, our_row, dataset, metric): PaperValue}."""
    path = Path(path) if path is not None else PAPER_RESULTS
    if not path.is_file():
        raise FileNotFoundError(f"paper results file {path} is missing (it is part of the repository: "
                                f"restore it with `git checkout -- tables/paper_results.csv`)")
    inverse = {t: {label: row for row, label in spec.rows.items()} for t, spec in TABLES.items()}
    out: dict[tuple[int, str, str, str], PaperValue] = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"table", "row", "dataset", "metric", "mean", "std"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path} lacks columns {sorted(missing)}")
        for line in reader:
            table = int(line["table"])
            label = line["row"].strip()
            row = inverse.get(table, {}).get(label)
            if row is None:
                raise ValueError(f"{path}: table {table} row label {label!r} is not mapped to one of "
                                 f"our row names; add it to sri.report.paper.TABLES")
            mean = _float_or_none(line["mean"])
            if mean is None:
                continue
            out[(table, row, line["dataset"].strip(), line["metric"].strip())] = PaperValue(
                mean, _float_or_none(line["std"]), (line.get("note") or "").strip())
    return out
