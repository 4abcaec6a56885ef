"""`python -m sri.bench samples CHECKPOINT`: how good are a trained model's samples? Numbers and a sheet.

Draws `--num` prior samples of a `blocks` checkpoint and measures them against as many held-out
test scenes: S-Acc by the image judge (`sri.metrics.judge_samples`), visible objects (blocks in the
argmax of the sample masks) and coloured objects (those of them coloured in the image), the scene
FD (blocks scene-feature space) and slot-order consistency; the same figures of the test scenes
beside them. Writes `samples.json` (with provenance) and `samples.png`: 64 samples, each marked
with the judge's verdict, to look at.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

__all__ = ["measure_samples", "sample_sheet", "main"]


def sample_sheet(model: torch.nn.Module, path: Path, *, num: int = 64, seed: int = 123,
                 temperature: float = 1.0, title: str = "") -> Path:
    """A grid of `num` samples, each titled with the judge's verdict (green ok / red no)."""
    from sri.metrics import judge_samples
    from sri.report.figures import pyplot, save_figure

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        out = model.sample(num, temperature=temperature, generator=g)
    ok = judge_samples(out.images, out.masks)
    plt = pyplot()
    cols = 8
    rows = (num + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.4 * rows + 0.4))
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < num:
            ax.imshow(out.images[i].clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_title("ok" if ok[i] else "no", fontsize=7, color="green" if ok[i] else "red", pad=2)
    fig.suptitle(title or f"{num} samples (judge: {int(ok.sum())} plausible)", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def measure_samples(checkpoint: str | Path, *, num: int = 1000, seed: int = 0, temperature: float = 1.0,
                    trust: bool = False) -> tuple[torch.nn.Module, dict[str, Any]]:
    """(the model, its generation figures and the test scenes' figures) for one checkpoint."""
    from sri.bench.compare import generation_metrics
    from sri.checkpoint import load_model
    from sri.data import build_dataset
    from sri.metrics.judge import judge_identity
    from sri.metrics.learning import data_reference

    model, ckpt = load_model(checkpoint, trust=trust)
    cfg = ckpt.get("config") or {}
    if cfg.get("dataset", "blocks") != "blocks":
        raise ValueError(f"{checkpoint} was trained on {cfg.get('dataset')!r}: the scene features and the "
                         f"judge are made for the synthetic `blocks` scenes")
    opts = dict(cfg.get("data_options") or {})
    res = generation_metrics(model, data_options=opts, num=num, seed=seed, temperature=temperature)
    kw = {k: v for k, v in opts.items() if k != "num"}
    te = build_dataset("blocks", None, "test", num=num, image_size=model.image_size, **kw)
    items = [te[i] for i in range(len(te))]
    ref = data_reference(torch.stack([it["mask"] for it in items]), torch.stack([it["image"] for it in items]))
    return model, {"checkpoint": str(checkpoint), "step": ckpt.get("step"), "model": ckpt.get("model_name"),
                   "num": num, "seed": seed, "temperature": temperature, **res,
                   "judge": judge_identity(model.image_size), "data_reference": ref}


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(prog="python -m sri.bench samples", description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", help="a checkpoint of a model trained on blocks (e.g. demo_checkpoints/sri_g.pt)")
    p.add_argument("--num", type=int, default=1000, help="samples and test scenes (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=float, default=1.0, help="prior temperature (default 1: the paper's)")
    p.add_argument("--out", default=None, help="output folder (default runs/samples/<checkpoint name>)")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="also load old-format checkpoints that need a full unpickle (files you trust only)")
    a = p.parse_args(argv)
    if a.num < 1 or a.temperature <= 0:
        raise SystemExit("--num must be >= 1 and --temperature > 0")
    from sri.atomicio import atomic_write_text
    from sri.provenance import bench_command, provenance

    out = Path(a.out or Path("runs/samples") / Path(a.checkpoint).stem)
    out.mkdir(parents=True, exist_ok=True)
    try:
        model, res = measure_samples(a.checkpoint, num=a.num, seed=a.seed, temperature=a.temperature,
                                     trust=a.trust_checkpoint)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"sri.bench samples: {e}") from None
    res = {**provenance(bench_command("samples", list(argv if argv is not None else sys.argv[2:]))), **res}
    atomic_write_text(out / "samples.json", json.dumps(res, indent=1))
    sheet = sample_sheet(model, out / "samples.png", temperature=a.temperature,
                         title=f"{Path(a.checkpoint).name} (step {res['step']}): 64 samples, judge verdicts")
    ref = res["data_reference"]
    print(f"{a.checkpoint} (step {res['step']}), {a.num} samples at temperature {a.temperature}:")
    print(f"  S-Acc (image judge)  {res['sample_s_acc']:.3f}   test scenes {ref['s_acc']:.3f}")
    print(f"  visible objects      {res['sample_visible_objects']:.2f}    test scenes {ref['visible_objects']:.2f}")
    print(f"  coloured objects     {res['sample_coloured_objects']:.2f}    test scenes {ref['coloured_objects']:.2f}")
    print(f"  image objects        {res['sample_image_objects']:.2f}    test scenes {ref['image_objects']:.2f}")
    print(f"  scene FD             {res['scene_fd']:.2f}")
    print(f"  order consistency    {res['order_consistency']:.3f}")
    print(f"wrote {out / 'samples.json'} and {sheet}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
