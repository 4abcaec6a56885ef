"""Runs as a table: `runs_frame(store)` is a pandas DataFrame with one row per run.

Columns: `id`, `experiment`, `status`, `table`, `row`, `dataset`, `seed`, `preset`, `sweep`,
`step` (the largest step any metric was logged at), `start_time`, `stop_time`, `checkpoint`,
`config_key` (see `config_fingerprint`), then the final value of every logged metric, one column
each. Reports (`make tables`, `make check-paper`, `sri sweep status`) filter and group this frame.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any, Iterable

ID_COLUMNS = ("id", "experiment", "status", "table", "row", "dataset", "seed", "preset", "sweep",
              "step", "start_time", "stop_time", "checkpoint", "config_key")
# Config entries that label a run rather than change what it computes: two runs that differ
# only in these have the same `config_key`.
LABEL_KEYS = ("sweep", "progress")


def config_fingerprint(config: dict[str, Any]) -> str:
    """A short hash of a run's training options (the keys of `sri.configs.TRAIN_DEFAULTS`) without
    its labels (`sweep`, `progress`); script-only entries such as `inception_weights` do not count.

    Equal for a planned config and the config Sacred stored for that run (JSON-normalised: tuples
    and lists compare equal)."""
    from sri.configs import TRAIN_DEFAULTS

    body = {k: v for k, v in config.items() if k in TRAIN_DEFAULTS and k not in LABEL_KEYS}
    text = json.dumps(body, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


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


def _last_step(run: Any) -> int | None:
    steps = [s for series in run.metrics.values() for s, _ in series]
    return int(max(steps)) if steps else None


def run_row(run: Any) -> dict[str, Any]:
    """The frame's row of one run (ids, labels, progress, then every final metric)."""
    cfg = run.config
    seed = cfg.get("seed")
    out: dict[str, Any] = {
        "id": run.id, "experiment": run.experiment, "status": run.status, "table": run_table(run),
        "row": None if cfg.get("row") is None else str(cfg.get("row")),
        "dataset": None if cfg.get("dataset") is None else str(cfg.get("dataset")),
        "seed": int(seed) if isinstance(seed, (int, float)) and not isinstance(seed, bool) else None,
        "preset": str(cfg.get("preset") or "custom"),
        "sweep": cfg.get("sweep") or run.info.get("sweep"),
        "step": _last_step(run), "start_time": run.start_time, "stop_time": run.stop_time,
        "checkpoint": run.checkpoint, "config_key": config_fingerprint(cfg) if cfg else None,
    }
    for name, value in run.final_metrics().items():
        if name not in ID_COLUMNS:
            out[name] = value
    return out


def runs_frame(store: str | os.PathLike | Iterable[Any] | None = None) -> Any:
    """Every run of `store` (a directory, a MongoDB URL, None for the default store, or already
    loaded `RunRecord`s) as a pandas DataFrame, one row per run, sorted by start time."""
    import pandas as pd

    from sri.tracking.store import StoreSpec, load_runs

    if store is None or isinstance(store, (str, os.PathLike, StoreSpec)):
        runs = load_runs(store, final_only=True)
    else:
        runs = list(store)
    rows = [run_row(r) for r in runs]
    frame = pd.DataFrame(rows, columns=list(dict.fromkeys([*ID_COLUMNS, *(k for r in rows for k in r)])))
    for col in ("table", "seed", "step"):
        frame[col] = frame[col].astype("Int64")
    for col in ("start_time", "stop_time"):
        frame[col] = pd.to_datetime(frame[col])
    if len(frame):
        order = frame["start_time"].fillna(pd.Timestamp.min)
        ids = frame["id"].map(lambda i: i if isinstance(i, (int, float)) else -1)
        frame = (frame.assign(_t=order, _i=ids, _s=frame["id"].astype(str))
                 .sort_values(["_t", "_i", "_s"], kind="stable")
                 .drop(columns=["_t", "_i", "_s"]).reset_index(drop=True))
    return frame


def metric_columns(frame: Any) -> list[str]:
    """The metric columns of a `runs_frame` (everything after the id columns)."""
    return [c for c in frame.columns if c not in ID_COLUMNS]
