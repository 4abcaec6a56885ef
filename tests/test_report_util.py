"""Helpers for the report tests: hand-made runs in Sacred's file-store layout, tiny checkpoints."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any


def write_run(store: Path, run_id: int, *, table: int, row: str, dataset: str, seed: int,
              metrics: dict[str, float | list[tuple[int, float]]], status: str = "COMPLETED",
              model: str = "sri", experiment: str | None = None, start: dt.datetime | None = None,
              info: dict[str, Any] | None = None, config_extra: dict[str, Any] | None = None) -> Path:
    """Write `store/<run_id>/{run,config,metrics,info}.json` as Sacred's FileStorageObserver does."""
    d = Path(store) / str(run_id)
    d.mkdir(parents=True, exist_ok=True)
    start = start or dt.datetime(2024, 1, 1, 0, 0, 0) + dt.timedelta(minutes=run_id)
    run = {"experiment": {"name": experiment or f"table{table}", "base_dir": str(store),
                          "sources": [], "dependencies": [], "repositories": [], "mainfile": "x.py"},
           "command": "main", "host": {"hostname": "test"}, "start_time": start.isoformat(),
           "meta": {}, "status": status, "resources": [], "artifacts": [],
           "heartbeat": (start + dt.timedelta(minutes=1)).isoformat(), "result": None}
    if status != "RUNNING":
        run["stop_time"] = (start + dt.timedelta(minutes=1)).isoformat()
    # hand-made runs stand for paper runs (reports use only preset=paper runs by default)
    config = {"table": table, "row": row, "dataset": dataset, "seed": seed, "model": model,
              "preset": "paper", "model_options": {}, **(config_extra or {})}
    mets: dict[str, Any] = {}
    for name, value in metrics.items():
        series = value if isinstance(value, list) else [(0, value)]
        mets[name] = {"steps": [s for s, _ in series], "values": [v for _, v in series],
                      "timestamps": [start.isoformat()] * len(series)}
    (d / "run.json").write_text(json.dumps(run, indent=2))
    (d / "config.json").write_text(json.dumps(config, indent=2))
    (d / "metrics.json").write_text(json.dumps(mets, indent=2))
    (d / "info.json").write_text(json.dumps(info or {}, indent=2))
    return d


def tiny_model(name: str = "sri", **options: Any):
    """A very small model from `build_model` (32x32, 4 slots)."""
    from sri.models import build_model

    opts = dict(image_size=32, num_slots=4, slot_dim=8, scene_dim=16, relation_layers=1)
    opts.update(options)
    try:
        return build_model(name, **opts)
    except TypeError:
        opts = {k: v for k, v in opts.items() if k in ("image_size", "num_slots")}
        return build_model(name, **opts)


def save_tiny_checkpoint(path: Path, model) -> Path:
    """Save `model` with `sri.checkpoint.save_checkpoint` in the checkpoint contract's layout."""
    from sri.checkpoint import save_checkpoint

    return save_checkpoint(path, {"model_name": model.name, "model_options": model.options,
                                  "model_state": model.state_dict(), "optimizer_state": {},
                                  "gecos": {}, "step": 0, "rng": None, "data_position": 0,
                                  "config": {}})


def test_write_run_layout(tmp_path):
    d = write_run(tmp_path, 3, table=2, row="sri_g", dataset="blocks", seed=1, metrics={"fid": 5.0})
    assert sorted(p.name for p in d.iterdir()) == ["config.json", "info.json", "metrics.json",
                                                    "run.json"]
    assert json.loads((d / "metrics.json").read_text())["fid"]["values"] == [5.0]
