"""Plan a sweep: every (row, dataset, seed) run of a paper table with its full config and key."""
from __future__ import annotations

import ast
import copy
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import sri.configs as C
from sri.tracking.frame import config_fingerprint

DEFAULT_SEEDS = (0, 1, 2)
# chosen with their own flags, never through `with`
AXES = {"table": "TABLE", "row": "--rows", "dataset": "--datasets", "seed": "--seeds",
        "preset": "--preset", "sweep": "--sweep"}


@dataclass(frozen=True)
class PlannedRun:
    """One run of a sweep: where it sits in the table, its `with` updates, its config and key."""

    table: int
    row: str
    dataset: str
    seed: int
    preset: str
    updates: tuple[tuple[str, Any], ...] = ()
    config: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)
    key: str = ""  # config_fingerprint(config): equal to that of the run Sacred records

    @property
    def name(self) -> str:
        """`table3/d/blocks/smoke/seed0`: for messages and log files."""
        return f"table{self.table}/{self.row}/{self.dataset}/{self.preset}/seed{self.seed}"

    def with_args(self, sweep: str | None) -> list[str]:
        """The `with KEY=VALUE ...` arguments of the Sacred script for this run."""
        args = [f"row={self.row!r}", f"dataset={self.dataset!r}", f"seed={self.seed!r}",
                f"preset={self.preset!r}"]
        args += [f"{k}={v!r}" for k, v in self.updates]
        if sweep is not None:
            args.append(f"sweep={sweep!r}")
        return ["with", *args]


def parse_value(text: str) -> Any:
    """A `with` value as Sacred reads it: a Python literal, else the text as a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_updates(items: Sequence[str]) -> dict[str, Any]:
    """`["steps=8", "model_options.pixel_std=0.1"]` -> `{"steps": 8, "model_options.pixel_std": 0.1}`."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise C.ConfigError(f"expected KEY=VALUE after `with`, got {item!r} (e.g. `with steps=8`)")
        key, value = item.split("=", 1)
        key = key.strip()
        top = key.split(".")[0]
        if top in AXES:
            raise C.ConfigError(f"{key} is chosen by the sweep: use {AXES[top]} instead of "
                                f"`with {key}=...`")
        if top not in C.TRAIN_DEFAULTS:
            import difflib

            close = difflib.get_close_matches(top, list(C.TRAIN_DEFAULTS), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise C.ConfigError(f"unknown config option {top!r} in `with {item}`{hint}; see "
                                f"`python experiments/<table script>.py print_config`")
        out[key] = parse_value(value)
    return out


def run_config(table: int, row: str, dataset: str, preset: str, seed: int,
               updates: dict[str, Any]) -> dict[str, Any]:
    """The config the table script builds for these named values and `with` updates."""
    cfg = C.experiment_config(table, row, dataset, preset, seed, image_size=updates.get("image_size"),
                              num_slots=updates.get("num_slots"))
    for key, value in updates.items():
        *parents, leaf = key.split(".")
        node = cfg
        for p in parents:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        node[leaf] = copy.deepcopy(value)
    C.validate_config(cfg)  # a clear error now rather than in every job
    return cfg


def default_rows(table: int) -> list[str]:
    """The rows of `table` whose models are implemented (the paper's baselines are not)."""
    spec = C.table_spec(table)
    return [r for r, rs in spec["rows"].items() if rs["model"] in C.IMPLEMENTED_MODELS]


def default_datasets(table: int, preset: str) -> list[str]:
    """The preset's dataset (smoke/demo: synthetic blocks), else the table's paper datasets."""
    C.check_preset(preset)
    if "dataset" in C.PRESETS[preset]:
        return [C.PRESETS[preset]["dataset"]]
    return list(C.table_spec(table)["datasets"])


def plan_sweep(table: int, rows: Sequence[str] | None = None, datasets: Sequence[str] | None = None,
               seeds: Sequence[int] = DEFAULT_SEEDS, preset: str = "paper",
               updates: dict[str, Any] | None = None) -> list[PlannedRun]:
    """Every run of the sweep, rows x datasets x seeds, in that order."""
    C.table_spec(table)
    table = int(table)
    C.check_preset(preset)
    updates = dict(updates or {})
    rows = list(rows) if rows else default_rows(table)
    for row in rows:
        rs = C.row_spec(table, row)
        if rs["model"] not in C.IMPLEMENTED_MODELS:
            raise C.ConfigError(f"row {row!r} of table {table} uses model {rs['model']!r}, which is "
                                f"not implemented; implemented rows: {', '.join(default_rows(table))}")
    datasets = list(datasets) if datasets else default_datasets(table, preset)
    for ds in datasets:
        C.check_dataset(ds)
    if not seeds:
        raise C.ConfigError("no seeds given; e.g. --seeds 0,1,2")
    planned = []
    for row in rows:
        for ds in datasets:
            for seed in seeds:
                cfg = run_config(table, row, ds, preset, int(seed), updates)
                planned.append(PlannedRun(table, row, ds, int(seed), preset,
                                          tuple(sorted(updates.items())), cfg, config_fingerprint(cfg)))
    return planned


def sweep_id(planned: Sequence[PlannedRun]) -> str:
    """A default sweep id, the same for the same plan: `table3-smoke-<hash of the run keys>`."""
    if not planned:
        raise ValueError("empty plan")
    digest = hashlib.sha1(" ".join(sorted(p.key for p in planned)).encode()).hexdigest()[:8]
    return f"table{planned[0].table}-{planned[0].preset}-{digest}"


def table_script(table: int) -> Path:
    """`experiments/<table name>.py` of this checkout."""
    root = Path(__file__).resolve().parents[2]
    path = root / "experiments" / f"{C.table_spec(table)['name']}.py"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: `sri sweep` runs the table scripts of a source "
                                f"checkout (pip install -e .)")
    return path
