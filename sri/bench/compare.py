"""`python -m sri.bench compare`: the paper's claim at small scale, SRI vs GENv2 on `blocks`.

Every row is trained from scratch with the same recipe (a preset), the same number of steps and
the same seeds, by the learning check (`sri.bench.learn`), then its generation is measured without
Inception weights: S-Acc and visible objects of samples, the Frechet distance of samples to test
scenes in the blocks scene-feature space (`sri.metrics.scene_features`), plus ARI-FG and
slot-order consistency. Results per run and mean +- std per row go to `results.json` and
`results.md`. A run whose folder already holds a finished curve of the same config is reused.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

__all__ = ["generation_metrics", "compare", "main"]


@torch.no_grad()
def generation_metrics(model: torch.nn.Module, *, data_options: dict[str, Any], num: int = 1000,
                       seed: int = 0, batch_size: int = 100, temperature: float = 1.0) -> dict[str, float]:
    """S-Acc, visible (and coloured) objects and scene-feature FD of `num` samples (vs `num` test
    scenes), and the slot-order consistency of 256 samples."""
    from sri.data import build_dataset
    from sri.metrics.learning import sample_metrics
    from sri.metrics.order import order_consistency_from_model
    from sri.metrics.scene_features import load_scene_features, scene_frechet_distance

    model.eval()
    res = {f"sample_{k}": v for k, v in sample_metrics(model, num, seed=seed, batch_size=batch_size,
                                                       temperature=temperature).items()}
    net = load_scene_features(model.image_size)
    kw = {k: v for k, v in data_options.items() if k != "num"}
    te = build_dataset("blocks", None, "test", num=num, image_size=model.image_size, **kw)
    real = torch.stack([te[i]["image"] for i in range(len(te))])
    gen = torch.Generator().manual_seed(seed + 1)
    fake = torch.cat([model.sample(min(batch_size, num - i), temperature=temperature, generator=gen).images.clamp(0, 1)
                      for i in range(0, num, batch_size)])
    res["scene_fd"] = scene_frechet_distance(net, fake, real)
    res["order_consistency"] = order_consistency_from_model(model, num_samples=256, seed=seed)["order_consistency"]
    return res


def _summary(values: list[float]) -> tuple[float, float]:
    return (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0)


def compare(rows: Sequence[str], seeds: Sequence[int], *, steps: int, preset: str = "demo",
            out: Path = Path("runs/compare"), num: int = 1000, table: int = 2,
            command: str = "") -> dict[str, Any]:
    """Train (or reuse) every row x seed, measure it, write results.json and results.md."""
    from sri.bench.learn import learn
    from sri.checkpoint import load_model
    from sri.configs import row_spec

    out.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    for row in rows:
        model_name = row_spec(table, row)["model"]
        for seed in seeds:
            d = out / row / f"seed{seed}"
            curve = d / "curve.json"
            res = json.loads(curve.read_text()) if curve.is_file() else None
            if res is None or res.get("steps") != steps or res.get("preset") != preset:
                res = learn(model_name, "blocks", minutes=0, steps=steps, preset=preset, seed=seed,
                            eval_every=1000, out=d, table=table, row=row,
                            command=f"python -m sri.bench compare --rows {row} --seeds {seed} "
                                    f"--steps {steps} --preset {preset}")
            model, _ = load_model(res["checkpoint"])
            gm = generation_metrics(model, data_options=res["config"]["data_options"], num=num, seed=seed)
            last = res["points"][-1]
            entry = {"row": row, "seed": seed, "steps": res["steps"], "train_wall_s": res["train_wall_s"],
                     "ari_fg": last["ari_fg"], "mse_ratio": last["mse_ratio"], **gm}
            if "ari_fg_ordered" in last:
                entry["ari_fg_ordered"] = last["ari_fg_ordered"]
            runs.append(entry)
            print(f"[compare] {row} seed {seed}: " + ", ".join(f"{k} {v:.4g}" for k, v in entry.items()
                                                              if isinstance(v, float)), flush=True)
    keys = ["sample_s_acc", "scene_fd", "sample_visible_objects", "ari_fg", "order_consistency", "mse_ratio"]
    table_rows = {}
    for row in rows:
        mine = [r for r in runs if r["row"] == row]
        table_rows[row] = {k: _summary([r[k] for r in mine]) for k in keys}
    result = {"rows": list(rows), "seeds": list(seeds), "steps": steps, "preset": preset, "num": num,
              "runs": runs, "summary": {r: {k: list(v) for k, v in t.items()} for r, t in table_rows.items()}}
    from sri.provenance import provenance

    result = {**provenance(command), **result}
    (out / "results.json").write_text(json.dumps(result, indent=1))
    lines = ["| row | " + " | ".join(keys) + " |", "| --- |" + " --- |" * len(keys)]
    for row, t in table_rows.items():
        lines.append(f"| {row} | " + " | ".join(f"{m:.3f} ± {s:.3f}" for m, s in t.values()) + " |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(prog="python -m sri.bench compare", description=__doc__.split("\n")[0])
    p.add_argument("--rows", default="sri_g,genv2_g", help="Table 2 rows (default sri_g,genv2_g)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=15_000, help="training steps per run (default 15000)")
    p.add_argument("--preset", default="demo")
    p.add_argument("--num", type=int, default=1000, help="samples and test scenes per measure (default 1000)")
    p.add_argument("--out", default="runs/compare")
    a = p.parse_args(argv)
    from sri.provenance import bench_command

    compare([r for r in a.rows.split(",") if r], [int(s) for s in a.seeds.split(",") if s != ""],
            steps=a.steps, preset=a.preset, out=Path(a.out), num=a.num, command=bench_command("compare", argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
