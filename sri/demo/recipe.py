"""`make demo-checkpoints`: retrain the demo's starting checkpoints from scratch, with provenance.

Each of the demo's rows is trained from scratch by the learning check in four stages (a GECO goal
schedule, docs/LEARNING.md): stage 1 with the demo preset's goal (-1.6 per element, reachable
from scratch) to 15,000 steps, then stage 2 from stage 1's exported checkpoint with a tighter goal
(-2.2) to 20,000 steps, stage 3 from stage 2's export at the same goal to 30,000 steps (the
cut at 20,000 is where the recipe first ended; kept so that the record is what ran), and stage 4
to 33,000 steps at -2.1, a goal the model reaches, so that beta rises again and squeezes the KL
(from about 5,000 to 200 nats for SRI): the samples become towers (docs/RESULTS.md)
(`python -m sri.bench learn ... --preset demo --steps N [--set
init_checkpoint=... --set geco_goal=...]`, which also records the learning curves). The final
checkpoint is exported compactly (weights fp16,
Adam moments bf16: bf16 keeps fp32's range, so tiny second moments do not underflow to zero)
into `demo_checkpoints/<row>.pt` with its curve `<row>_curve.{json,png}`, and
`demo_checkpoints/provenance.json` records the command, commit, steps, wall time, machine and the
metrics of each exported model.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Sequence

from sri.checkpoint import export_checkpoint
from sri.provenance import REPO, git_state

# the demo's two rows (Table 2) and where their starting checkpoints and provenance live
ROWS = (("sri_g", "SRI-G"), ("genv2_g", "GENv2-G"))
CHECKPOINTS = REPO / "demo_checkpoints"
PROVENANCE = "provenance.json"

# the recorded recipe (docs/LEARNING.md): (train until this step, GECO goal per element or None
# for the preset's); stage 2 starts from stage 1's exported checkpoint
STAGES: tuple[tuple[int, float | None], ...] = ((15_000, None), (20_000, -2.2), (30_000, -2.2),
                                                  (33_000, -2.1))
CHECKPOINT_STEPS = STAGES[-1][0]
# the goal the demo continues the checkpoints with
CONTINUE_GECO_GOAL = STAGES[-1][1]


def _commit() -> str:
    """HEAD, with "+dirty" when tracked files differ from it ("unknown" outside a git checkout)."""
    g = git_state()
    return "unknown" if g["commit"] is None else g["commit"] + ("+dirty" if g["dirty"] else "")


def checkpoint_command(row: str, steps: int, seed: int, *, goal: float | None = None,
                       init: str | Path | None = None, out: str | Path | None = None) -> str:
    """The learning-check command of one stage of a demo row's starting checkpoint."""
    from sri.configs import row_spec

    cmd = (f"python -m sri.bench learn --model {row_spec(2, row)['model']} --table 2 --row {row} "
           f"--dataset blocks --preset demo --steps {steps} --minutes 0 --seed {seed} --eval-every 1000")
    if out is not None:
        cmd += f" --out {out}"
    if init is not None:
        cmd += f" --set init_checkpoint={init}"
    if goal is not None:
        cmd += f" --set geco_goal={goal:g}"
    return cmd


def _stages(steps: int | None) -> list[tuple[int, float | None]]:
    """The recipe's stages, or one stage of `steps` with the preset's goal when `steps` is given."""
    return list(STAGES) if steps is None else [(int(steps), None)]


def make_checkpoints(out_dir: Path, *, steps: int | None = None, seed: int = 0,
                     rows: Sequence[str] | None = None, work: Path = Path("runs/demo-checkpoints"),
                     start_stage: int = 1) -> dict[str, Any]:
    """Train each demo row from scratch through the recipe's stages (learning checks: a curve
    point every 1,000 steps), export the final checkpoint and curves into `out_dir`, record
    provenance. `start_stage` > 1 starts from the stage-(n-1) exports already in `work`."""
    from sri.bench.learn import learn
    from sri.configs import row_spec

    stages = _stages(steps)
    if not 1 <= start_stage <= len(stages):
        raise SystemExit(f"--start-stage must be between 1 and {len(stages)}")
    rows = list(rows or [r for r, _ in ROWS])
    out_dir.mkdir(parents=True, exist_ok=True)
    prov_path = out_dir / PROVENANCE
    prov: dict[str, Any] = json.loads(prov_path.read_text()) if prov_path.is_file() else {"models": {}}
    prov["made_by"] = "make demo-checkpoints (python -m sri.demo --make-checkpoints)"
    labels = dict(ROWS)
    commit = _commit()  # the code the runs start from
    for row in rows:
        model = row_spec(2, row)["model"]
        commands, wall, results = [], 0.0, []
        for i, (until, goal) in enumerate(stages, start=1):
            init = work / row / f"stage{i - 1}.pt" if i > 1 else None
            out = work / row / f"stage{i}"
            cmd = checkpoint_command(row, until, seed, goal=goal, init=init, out=out)
            commands.append(cmd)
            if i < start_stage:
                continue
            if init is not None and not init.is_file():
                raise SystemExit(f"stage {i} of {row} starts from {init}, which does not exist; run "
                                 f"the earlier stages first (--start-stage 1)")
            print(f"\n[demo-checkpoints] {labels.get(row, row)}, stage {i}/{len(stages)}: {cmd}", flush=True)
            overrides: dict[str, Any] = {}
            if init is not None:
                overrides["init_checkpoint"] = str(init)
            if goal is not None:
                overrides["geco_goal"] = goal
            res = learn(model, "blocks", minutes=0, steps=until, preset="demo", seed=seed,
                        eval_every=1000, out=out, command=cmd, table=2, row=row, overrides=overrides)
            export_checkpoint(res["checkpoint"], work / row / f"stage{i}.pt")
            results.append(res)
            wall += float(res["train_wall_s"])
            for ext in ("json", "png"):
                src = out / f"curve.{ext}"
                if src.is_file():
                    suffix = "" if i == 1 else f"_stage{i}"
                    shutil.copyfile(src, out_dir / f"{row}_curve{suffix}.{ext}")
        res = results[-1]
        stage_wall = [r["train_wall_s"] for r in results]
        stage_commits = [commit] * len(results)
        if start_stage > 1:  # the earlier stages' times and commits, as recorded when they ran
            before = prov.get("models", {}).get(row, {})
            earlier = before.get("stage_wall_s") or ([before["wall_s"]] if before.get("wall_s") else [])
            stage_wall = list(earlier[:start_stage - 1]) + stage_wall
            old_commits = before.get("stage_commits") or [before.get("commit", "unknown")] * (start_stage - 1)
            stage_commits = list(old_commits[:start_stage - 1]) + stage_commits
        dst = out_dir / f"{row}.pt"
        shutil.copyfile(work / row / f"stage{len(stages)}.pt", dst)
        # re-read: another process may have written another row meanwhile
        prov = json.loads(prov_path.read_text()) if prov_path.is_file() else prov
        prov.setdefault("models", {})
        prov["made_by"] = "make demo-checkpoints (python -m sri.demo --make-checkpoints)"
        prov["models"][row] = {"label": labels.get(row, row), "file": dst.name,
                               "command": " && ".join(commands), "stages": commands,
                               "commit": commit, "date": res["started"], "machine": res["machine"],
                               "steps": res["steps"],
                               "wall_s": sum(stage_wall) if len(stage_wall) == len(stages) else None,
                               "stage_wall_s": stage_wall, "stage_commits": stage_commits,
                               "bytes": dst.stat().st_size, "metrics": res["final"],
                               "data_reference": res["data_reference"], "curve": f"{row}_curve.png"}
        prov_path.write_text(json.dumps(prov, indent=1))
        print(f"[demo-checkpoints] {row}: {dst} ({dst.stat().st_size / 1e6:.1f} MB, "
              f"{wall / 60:.1f} min)", flush=True)
    return prov


