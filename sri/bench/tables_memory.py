"""`python -m sri.bench tables-memory`: peak memory and time of `make tables` over many logged runs.

Writes a Sacred file store of `--runs` COMPLETED paper runs (Table 3 rows and seeds), each with
`--metrics` metric series of `--points` logged points (the paper's evaluation metrics among them),
then runs `python -m sri.report tables` on it in a child process and reads the child's peak
resident memory (`ru_maxrss`). With `--compare-full-series` it then runs the same command with the
reports reading every logged point (as they did before they kept only final values). Each child
reports its own peak. Result: JSON with provenance.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Sequence

__all__ = ["write_store", "measure", "main"]

# `python -m sri.report ARGS` in a child that writes its own peak resident memory (ru_maxrss, KiB on
# Linux) to the file named by argv[1]; argv[2] == "full" keeps every logged point (the reports'
# memory before they read final values only)
_CHILD = """
import atexit, resource, runpy, sys
out, mode = sys.argv[1], sys.argv[2]
atexit.register(lambda: open(out, "w").write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)))
if mode == "full":
    import sri.tracking as t, sri.tracking.store as s
    t.load_runs = lambda *a, **k: s.load_runs(*a, **{**k, "final_only": False})
sys.argv = ["sri.report", *sys.argv[3:]]
runpy.run_module("sri.report", run_name="__main__")
"""


def write_store(root: Path, runs: int, metrics: int, points: int) -> Path:
    """A file store of `runs` paper runs of Table 3 with `metrics` series of `points` points each."""
    from sri.metrics.names import METRICS

    names = list(METRICS) + [f"train_metric_{i}" for i in range(max(0, metrics - len(METRICS)))]
    names = names[:metrics]
    start = datetime(2026, 1, 1)
    rows = ["a", "b", "c", "d"]
    steps = list(range(0, points * 10, 10))
    stamps = [(start + timedelta(seconds=i)).isoformat() for i in range(points)]
    for i in range(1, runs + 1):
        d = root / str(i)
        d.mkdir(parents=True, exist_ok=True)
        t0 = start + timedelta(minutes=i)
        (d / "run.json").write_text(json.dumps({
            "experiment": {"name": "table3_ablation", "sources": []}, "command": "main", "host": {},
            "start_time": t0.isoformat(), "stop_time": (t0 + timedelta(minutes=1)).isoformat(),
            "heartbeat": t0.isoformat(), "status": "COMPLETED", "meta": {}, "resources": [],
            "artifacts": [], "result": None}))
        (d / "config.json").write_text(json.dumps({
            "table": 3, "row": rows[i % 4], "dataset": "shapestacks", "seed": i // 4, "model": "sri",
            "preset": "paper", "model_options": {}}))
        (d / "info.json").write_text("{}")
        series = {n: {"steps": steps, "values": [float(k % 97) / 97 + j for k in range(points)],
                      "timestamps": stamps} for j, n in enumerate(names)}
        (d / "metrics.json").write_text(json.dumps(series))
    return root


def measure(args: list[str], *, full_series: bool, work: Path) -> dict[str, float]:
    """`python -m sri.report ARGS` in a child: its wall time and peak resident memory (MB)."""
    peak_file = work / "peak.txt"
    peak_file.unlink(missing_ok=True)
    cmd = [sys.executable, "-c", _CHILD, str(peak_file), "full" if full_series else "final", *args]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0 or not peak_file.is_file():
        raise RuntimeError(f"python -m sri.report {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-2000:]}")
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(int(peak_file.read_text()) / 1024, 1)}


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(prog="python -m sri.bench tables-memory", description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=500)
    p.add_argument("--metrics", type=int, default=16, help="metric series per run (default 16)")
    p.add_argument("--points", type=int, default=2000, help="logged points per series (default 2000)")
    p.add_argument("--compare-full-series", action="store_true",
                   help="also measure the reports reading every logged point (the old behaviour)")
    p.add_argument("--out", default=None, help="JSON result (default: print only)")
    p.add_argument("--workdir", default=None, help="where the store is written (default: a temporary folder)")
    a = p.parse_args(argv)
    from sri.provenance import bench_command, provenance

    work = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="sri-tables-memory-"))
    try:
        marker = work / "store" / "_sizes.json"  # a store of the same sizes written before is reused
        sizes = {"runs": a.runs, "metrics": a.metrics, "points": a.points}
        if marker.is_file() and json.loads(marker.read_text()) == sizes:
            store = work / "store"
        else:
            shutil.rmtree(work / "store", ignore_errors=True)
            store = write_store(work / "store", a.runs, a.metrics, a.points)
            marker.write_text(json.dumps(sizes))
        size_mb = sum(f.stat().st_size for f in store.rglob("*.json")) / 2 ** 20
        print(f"store: {a.runs} runs x {a.metrics} metrics x {a.points} points ({size_mb:.0f} MB of JSON)",
              flush=True)
        args = ["tables", "--store", str(store), "--preset", "all", "--order", "off", "--out", str(work / "t")]
        res: dict[str, Any] = {}
        modes = [False, True] if a.compare_full_series else [False]
        for full in modes:
            key = "full_series" if full else "final_only"
            res[key] = measure(args, full_series=full, work=work)
            print(f"make tables ({'every logged point' if full else 'final values only'}): {res[key]}", flush=True)
        out = {**provenance(bench_command("tables-memory", list(argv or sys.argv[2:]))),
               "runs": a.runs, "metrics": a.metrics, "points": a.points, "store_json_mb": round(size_mb, 1),
               **res, "target": "peak < 500 MB for 500 runs x 16 metrics x 2,000 points (issue: reliability round 2)"}
        if a.out:
            from sri.atomicio import atomic_write_text

            Path(a.out).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(Path(a.out), json.dumps(out, indent=1))
            print(f"wrote {a.out}")
    finally:
        if not a.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
