"""`python -m sri.bench fast-check`: does a numerics-changing mode (bf16 autocast) train like fp32?

Two runs from the same initial weights over the same `blocks` batches, one in fp32 and one in the
mode under test, for `steps` steps at a small config of the demo recipe (unnormalised Gaussian,
sigma 0.1, GECO goal -1.6); a third fp32 run with another data order shows the run-to-run spread
for scale. The loss curves are compared in windows of `window` steps: the mode passes when, in
every window, the mean reconstruction NLL per element of each loss group differs from fp32's by at
most `NLL_TOL` nats and the mean KL (all groups) by at most `KL_REL_TOL` of fp32's. The tolerances
were fixed before the first measurement (docs/PERFORMANCE.md).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["NLL_TOL", "KL_REL_TOL", "train_curve", "compare_curves", "fast_check", "main"]

NLL_TOL = 0.05      # nats per element, per window mean
KL_REL_TOL = 0.10   # relative, per window mean of the summed KL


def _data(num: int, image_size: int, seed: int) -> Any:
    import torch

    from sri.data.synthetic import render_blocks_variant

    scenes = render_blocks_variant(num, image_size, seed=seed, object_scale=1.6)
    return torch.as_tensor(scenes.images).permute(0, 3, 1, 2).float().div(255.0)


def train_curve(model: Any, images: Any, *, steps: int, batch_size: int, amp: str | None, data_seed: int,
                lr: float = 5e-4, geco_goal: float = -1.6, geco_lr: float = 1e-5) -> dict[str, list[float]]:
    """Train `model` in place for `steps` steps (batches drawn by `data_seed`); per-step NLL per
    element of each loss group, summed KL and seconds."""
    import torch

    from sri.models.registry import LOSS_GROUPS
    from sri.train.step import make_gecos, train_step

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gecos = make_gecos(model, goal_per_element=geco_goal, geco_lr=geco_lr)
    elements = 3 * images.shape[-1] * images.shape[-2]
    gen = torch.Generator().manual_seed(data_seed)
    dtype = {None: None, "bf16": torch.bfloat16}[amp]
    curve: dict[str, list[float]] = {f"nll_{g}": [] for g in gecos}
    curve.update(kl=[], seconds=[])
    for _ in range(steps):
        idx = torch.randint(0, images.shape[0], (batch_size,), generator=gen)
        t0 = time.perf_counter()
        s = train_step(model, images[idx], opt, gecos, amp_dtype=dtype)
        curve["seconds"].append(time.perf_counter() - t0)
        for g in gecos:
            curve[f"nll_{g}"].append(s[LOSS_GROUPS[g].nll] / elements)
        curve["kl"].append(sum(s[k] for g in gecos for k in LOSS_GROUPS[g].kl))
    return curve


def _windows(values: list[float], window: int) -> list[float]:
    return [sum(values[i:i + window]) / len(values[i:i + window]) for i in range(0, len(values), window)]


def compare_curves(ref: dict[str, list[float]], test: dict[str, list[float]], window: int) -> dict[str, Any]:
    """Window means of both curves and the largest deviations against the tolerances."""
    out: dict[str, Any] = {"window": window, "windows": {}, "max_dev": {}, "ok": True}
    for key in ref:
        if key == "seconds":
            continue
        a, b = _windows(ref[key], window), _windows(test[key], window)
        dev = [abs(x - y) if key != "kl" else abs(x - y) / max(abs(x), 1e-8) for x, y in zip(a, b)]
        tol = KL_REL_TOL if key == "kl" else NLL_TOL
        out["windows"][key] = {"ref": a, "test": b}
        out["max_dev"][key] = {"value": max(dev), "tolerance": tol, "relative": key == "kl"}
        out["ok"] &= max(dev) <= tol
    return out


def fast_check(model_name: str = "sri", *, amp: str = "bf16", steps: int = 2000, window: int = 250,
               image_size: int = 32, num_slots: int = 4, slot_dim: int = 16, batch_size: int = 8,
               seed: int = 0, num_scenes: int = 2000, threads: int | None = None,
               out: str | Path | None = None, command: str = "") -> dict[str, Any]:
    """fp32 vs `amp` (same weights and batches) and fp32 with another data order (the spread);
    returns the comparison, the curves and the seconds per step of each run."""
    import torch

    from sri.models import build_model

    if threads:
        torch.set_num_threads(int(threads))
    torch.manual_seed(seed)
    base = build_model(model_name, image_size=image_size, num_slots=num_slots, slot_dim=slot_dim,
                       likelihood="gaussian", pixel_std=0.1, normalized=False)
    images = _data(num_scenes, image_size, seed)
    runs = {}
    for name, mode, data_seed in (("fp32", None, seed), (amp, amp, seed), ("fp32_other_order", None, seed + 1)):
        torch.manual_seed(seed + 1000)  # the same sampling noise in the first two runs
        runs[name] = train_curve(copy.deepcopy(base), images, steps=steps, batch_size=batch_size, amp=mode,
                                 data_seed=data_seed)
        print(f"[fast-check] {name}: {steps} steps, {sum(runs[name]['seconds']):.0f} s", file=sys.stderr,
              flush=True)
    res = {"model": model_name, "mode": amp, "steps": steps,
           "config": dict(image_size=image_size, num_slots=num_slots, slot_dim=slot_dim, batch_size=batch_size,
                          likelihood="gaussian", pixel_std=0.1, normalized=False, lr=5e-4, geco_goal=-1.6),
           "comparison": compare_curves(runs["fp32"], runs[amp], window),
           "spread_other_order": compare_curves(runs["fp32"], runs["fp32_other_order"], window)["max_dev"],
           "s_per_step": {k: sum(v["seconds"]) / steps for k, v in runs.items()},
           "tolerances": {"nll_nats_per_element": NLL_TOL, "kl_relative": KL_REL_TOL}}
    if out is not None:
        _write(Path(out), res, runs, window, command)
    return res


def _write(out: Path, res: dict[str, Any], runs: dict[str, dict[str, list[float]]], window: int,
           command: str = "") -> None:
    """fast_check.json (with the per-step curves) and fast_check.png (window means)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    from sri.provenance import provenance

    (out / "fast_check.json").write_text(json.dumps({**provenance(command), **res, "curves": runs}, indent=1))
    keys = [k for k in next(iter(runs.values())) if k != "seconds"]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.2))
    for ax, key in zip(axes, keys):
        for name, curve in runs.items():
            w = _windows(curve[key], window)
            ax.plot([window * (i + 0.5) for i in range(len(w))], w, marker="o", ms=3, label=name)
        ax.set_title(key + (" (per element)" if key != "kl" else " (nats)"))
        ax.set_xlabel("step")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{res['model']}: fp32 vs {res['mode']}, {res['steps']} steps, window {window} "
                 f"({'within' if res['comparison']['ok'] else 'OUTSIDE'} tolerance)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "fast_check.png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """CLI: exit 0 when the mode's curve matches fp32 within the tolerances, 1 otherwise."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from sri.models.registry import IMPLEMENTED

    p = argparse.ArgumentParser(prog="python -m sri.bench fast-check", description=__doc__.split("\n")[0])
    p.add_argument("--model", default="sri", choices=list(IMPLEMENTED))
    p.add_argument("--amp", default="bf16", choices=["bf16"])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--window", type=int, default=250)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--num-slots", type=int, default=4)
    p.add_argument("--slot-dim", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default="runs/fast-check", help="writes fast_check.json and fast_check.png here")
    a = p.parse_args(argv)
    from sri.provenance import bench_command

    res = fast_check(a.model, amp=a.amp, steps=a.steps, window=a.window, image_size=a.image_size,
                     num_slots=a.num_slots, slot_dim=a.slot_dim, batch_size=a.batch_size, seed=a.seed,
                     threads=a.threads, out=a.out, command=bench_command("fast-check", argv))
    for key, d in res["comparison"]["max_dev"].items():
        unit = "relative" if d["relative"] else "nats/element"
        print(f"{key:10s} max window deviation {d['value']:.4f} {unit} (tolerance {d['tolerance']}; "
              f"fp32 with another data order: {res['spread_other_order'][key]['value']:.4f})")
    print("s/step: " + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in res["s_per_step"].items()))
    print(f"{res['mode']}: {'matches fp32 within the tolerances' if res['comparison']['ok'] else 'does NOT match fp32'}"
          f" (curves: {a.out})")
    return 0 if res["comparison"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
