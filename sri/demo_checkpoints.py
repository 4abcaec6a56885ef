"""`make demo-checkpoints`: retrain the demo's starting checkpoints from scratch, with provenance.

Each of the demo's rows is trained from scratch by the learning check (`python -m sri.bench learn
... --preset demo --steps N`, which also records its learning curve), then its final checkpoint is
exported compactly (weights fp16,
Adam moments bf16: bf16 keeps fp32's range, so tiny second moments do not underflow to zero)
into `demo_checkpoints/<row>.pt` with its curve `<row>_curve.{json,png}`, and
`demo_checkpoints/provenance.json` records the command, commit, steps, wall time, machine and the
metrics of each exported model.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

from sri import demo

# training steps per model of the recorded recipe (docs/LEARNING.md)
CHECKPOINT_STEPS = 15_000


def _commit() -> str:
    """HEAD, with "+dirty" when tracked files differ from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=demo.REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=demo.REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
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


def checkpoint_command(row: str, steps: int, seed: int) -> str:
    """The learning-check command that trains one demo row's starting checkpoint from scratch."""
    from sri.configs import row_spec

    return (f"python -m sri.bench learn --model {row_spec(2, row)['model']} --table 2 --row {row} "
            f"--dataset blocks --preset demo --steps {steps} --minutes 0 --seed {seed} --eval-every 1000")


def make_checkpoints(out_dir: Path, *, steps: int | None = None, seed: int = 0,
                     rows: Sequence[str] | None = None,
                     work: Path = Path("runs/demo-checkpoints")) -> dict[str, Any]:
    """Train each demo row from scratch for `steps` (a learning check: curve every 1,000 steps),
    export its final checkpoint and curve into `out_dir`, and record provenance."""
    from sri.configs import row_spec
    from sri.train.learn import learn

    steps = int(steps or CHECKPOINT_STEPS)
    rows = list(rows or [r for r, _ in demo.ROWS])
    out_dir.mkdir(parents=True, exist_ok=True)
    prov_path = out_dir / demo.PROVENANCE
    prov: dict[str, Any] = json.loads(prov_path.read_text()) if prov_path.is_file() else {"models": {}}
    prov["made_by"] = "make demo-checkpoints (python -m sri.demo --make-checkpoints)"
    labels = dict(demo.ROWS)
    commit = _commit()  # the code the runs start from
    for row in rows:
        model = row_spec(2, row)["model"]
        cmd = checkpoint_command(row, steps, seed)
        print(f"\n[demo-checkpoints] training {labels.get(row, row)} from scratch: {cmd}", flush=True)
        res = learn(model, "blocks", minutes=0, steps=steps, preset="demo", seed=seed, eval_every=1000,
                    out=work / row, command=cmd, table=2, row=row)
        dst = export_checkpoint(res["checkpoint"], out_dir / f"{row}.pt")
        for ext in ("json", "png"):
            src = work / row / f"curve.{ext}"
            if src.is_file():
                shutil.copyfile(src, out_dir / f"{row}_curve.{ext}")
        # re-read: another process may have written another row meanwhile
        prov = json.loads(prov_path.read_text()) if prov_path.is_file() else prov
        prov.setdefault("models", {})
        prov["made_by"] = "make demo-checkpoints (python -m sri.demo --make-checkpoints)"
        prov["models"][row] = {"label": labels.get(row, row), "file": dst.name, "command": cmd,
                               "commit": commit, "date": res["started"], "machine": res["machine"],
                               "steps": res["steps"], "wall_s": res["train_wall_s"],
                               "bytes": dst.stat().st_size, "metrics": res["final"],
                               "data_reference": res["data_reference"], "curve": f"{row}_curve.png"}
        prov_path.write_text(json.dumps(prov, indent=1))
        print(f"[demo-checkpoints] {row}: {dst} ({dst.stat().st_size / 1e6:.1f} MB, "
              f"{res['train_wall_s'] / 60:.1f} min)", flush=True)
    return prov


if __name__ == "__main__":
    sys.exit(demo.main(["--make-checkpoints", *sys.argv[1:]]))
