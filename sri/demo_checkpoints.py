"""`make demo-checkpoints`: retrain the demo's starting checkpoints from scratch, with provenance.

Each of the demo's rows is trained as a normal Sacred run (`experiments/table2_main.py with demo
row=... steps=N time_limit=0`), then its final checkpoint is exported compactly (weights fp16,
Adam moments bf16: bf16 keeps fp32's range, so tiny second moments do not underflow to zero)
into `demo_checkpoints/<row>.pt`, and `demo_checkpoints/provenance.json` records the command,
commit, steps, wall time, machine and the metrics of each exported model.
"""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from sri import demo

# training steps per model of the recorded recipe (docs/LEARNING.md)
CHECKPOINT_STEPS = 12_000


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=demo.REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cast(obj: Any, dtype: torch.dtype) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(dtype) if obj.is_floating_point() and obj.dim() > 0 else obj
    if isinstance(obj, dict):
        return {k: _cast(v, dtype) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cast(v, dtype) for v in obj)
    return obj


def export_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """A trainer checkpoint -> a compact starting checkpoint (fp16 weights, bf16 Adam moments)."""
    from sri.checkpoint import load_checkpoint, save_checkpoint

    ck = load_checkpoint(src)
    opt = ck.get("optimizer_state")
    out = {"step": int(ck["step"]), "model_name": ck["model_name"], "model_options": ck["model_options"],
           "model_state": _cast(ck["model_state"], torch.float16),
           "optimizer_state": None if opt is None else {"state": _cast(opt["state"], torch.bfloat16),
                                                        "param_groups": opt["param_groups"]},
           "gecos": ck.get("gecos", {}), "config": ck.get("config", {})}
    return save_checkpoint(dst, out)


def make_checkpoints(out_dir: Path, *, steps: int | None = None, seed: int = 0,
                     store: Path = Path("runs/demo-checkpoints")) -> dict[str, Any]:
    """Train every demo row from scratch for `steps`, export its checkpoint, write provenance."""
    from sri.checkpoint import load_model
    from sri.train.runtime import machine_info

    steps = int(steps or CHECKPOINT_STEPS)
    out_dir.mkdir(parents=True, exist_ok=True)
    prov: dict[str, Any] = {"made_by": "make demo-checkpoints (python -m sri.demo --make-checkpoints)",
                            "commit": _commit(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                            "machine": machine_info(), "steps": steps, "seed": seed, "models": {}}
    for row, label in demo.ROWS:
        cmd = demo.run_command(row, store, seed=seed, smoke=False,
                               extra=[f"steps={steps}", "time_limit=0", "resume=False"])
        print(f"\n[demo-checkpoints] training {label} from scratch: {shlex.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        res = subprocess.run(cmd, env=demo._env())
        wall = time.perf_counter() - t0
        if res.returncode != 0:
            raise SystemExit(f"[demo-checkpoints] the {label} run failed (exit {res.returncode})")
        run = demo.latest_runs(store)[row]
        dst = export_checkpoint(run.info["checkpoint"], out_dir / f"{row}.pt")
        model, ck = load_model(dst)
        metrics = demo.evaluate_models({row: model.eval()}, eval_num=320, num_samples=256, seed=seed)
        prov["models"][row] = {"label": label, "file": dst.name, "command": shlex.join(["python", *cmd[1:]]),
                               "steps": int(ck["step"]), "wall_s": round(wall, 1),
                               "bytes": dst.stat().st_size, "metrics": metrics["models"][row],
                               "data_reference": metrics["data"]}
        (out_dir / demo.PROVENANCE).write_text(json.dumps(prov, indent=1))
        print(f"[demo-checkpoints] {label}: {dst} ({dst.stat().st_size / 1e6:.1f} MB, {wall / 60:.1f} min)")
    demo.print_summary({"models": {r: dict(v["metrics"], step=v["steps"]) for r, v in prov["models"].items()},
                        "data": next(iter(prov["models"].values()))["data_reference"],
                        "eval_num": 320, "num_samples": 256})
    return prov


if __name__ == "__main__":
    sys.exit(demo.main(["--make-checkpoints", *sys.argv[1:]]))
