"""`python -m sri.bench learn`: train a model from scratch and record its learning curve.

Every `--eval-every` steps the model is evaluated on held-out test scenes (ARI-FG, reconstruction
MSE against the mean training image, KL; `sri.metrics.learning`); at the end its samples are judged
(S-Acc, visible objects). The curve is written as JSON and PNG. It works for every model that
`sri.models.build_model` knows: the acceptance check of each model the suite adds.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import torch

from sri.configs import TABLES, ConfigError, experiment_config
from sri.train.loggers import MemoryLogger
from sri.train.rundir import list_checkpoints
from sri.train.trainer import Trainer, TrainingInterrupted

__all__ = ["SAMPLE_BAR", "row_for_model", "learning_config", "meets_sample_bar", "parse_bar", "merged_points",
           "earlier_curve", "learn", "plot_curve", "main"]

# the held-out scenes of a learning curve (ARI needs ground-truth masks: synthetic or converted data)
DEFAULT_EVAL_NUM = 320
DEMO_BAR = (0.75, 0.25)  # (ARI-FG at least, MSE ratio at most): the demo's bar, `--stop-at-bar`'s default
# (S-Acc at least, scene FD at most) of 1,000 samples: the generation issue's sample bar (S-Acc 0.5; one
# floating block in real scenes is FD 4.9, so 10 is "about two"); visible objects, the bar's third
# part, is left out: the automatic count disagrees with the eye on samples (docs/judge/)
SAMPLE_BAR = (0.5, 10.0)
SAMPLE_BAR_SAMPLES = 1000


def meets_sample_bar(point: dict[str, float], sample_bar: tuple[float, float] = SAMPLE_BAR) -> bool:
    """True when a curve point's samples have S-Acc >= sample_bar[0] and scene FD <= sample_bar[1]."""
    return point.get("s_acc", -1.0) >= sample_bar[0] and point.get("scene_fd", float("inf")) <= sample_bar[1]


def row_for_model(model: str) -> tuple[int, str]:
    """The (table, row) whose recipe a learning check of `model` uses: Table 2's MoG row first."""
    found = [(t, r, spec) for t in (2, 4, 1, 3) for r, spec in TABLES[t]["rows"].items()
             if spec["model"] == model]
    if not found:
        known = sorted({s["model"] for t in TABLES.values() for s in t["rows"].values()})
        raise ConfigError(f"no table row uses model {model!r}; models in the paper's tables: {', '.join(known)}")
    mog = [f for f in found if f[2]["family"] == "MoG"]
    t, r, _ = (mog or found)[0]
    return t, r


def parse_value(text: str) -> Any:
    """A command-line value: JSON where it parses (numbers, booleans, lists), else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def learning_config(model: str, dataset: str = "blocks", *, preset: str = "demo", seed: int = 0,
                    minutes: float = 10.0, steps: int | None = None, eval_every: int = 250,
                    run_dir: str | Path | None = None, overrides: dict[str, Any] | None = None,
                    table: int | None = None, row: str | None = None) -> dict[str, Any]:
    """The trainer config of a learning check: the model's row (or `table`/`row`) under `preset`."""
    if table is None or row is None:
        table, row = row_for_model(model)
    cfg = experiment_config(table, row, dataset, preset, seed)
    cfg.update(time_limit=int(round(minutes * 60)) if minutes else 0,
               steps=int(steps) if steps else max(int(cfg["steps"]), 10 ** 9 if minutes else 1),
               eval_every=int(eval_every), eval_metrics=["ari_fg"], final_metrics=[], num_order=0,
               resume=False, sample_every=0,
               checkpoint_every=max(int(eval_every), 1) * 4, keep_checkpoints=1)
    if run_dir is not None:
        cfg["run_dir"] = str(run_dir)
    for key, value in (overrides or {}).items():
        if key.startswith("model_options."):
            cfg["model_options"][key.split(".", 1)[1]] = value
        elif key not in cfg:
            raise ConfigError(f"unknown option {key!r} in --set; known: {', '.join(sorted(cfg))} "
                              f"and model_options.<name>")
        else:
            cfg[key] = value
    if not cfg["steps"] and not cfg["time_limit"]:
        raise ConfigError("give --minutes or --steps")
    return cfg


class CurveTrainer(Trainer):
    """A Trainer whose periodic evaluation is `reconstruction_metrics` on fixed held-out scenes."""

    def __init__(self, config: dict[str, Any], logger: MemoryLogger | None, eval_num: int,
                 partial: str | Path | None = None, stop_at_bar: bool = False,
                 bar: tuple[float, float] = DEMO_BAR, eval_samples: int = 0,
                 sample_bar: tuple[float, float] | None = None) -> None:
        super().__init__(config, logger)
        self.eval_num = int(eval_num)
        self.eval_samples = int(eval_samples)  # samples judged at every evaluation (0: none)
        # (S-Acc at least, scene FD at most): with stop_at_bar, stop only once the samples meet it too
        self.sample_bar = None if sample_bar is None else (float(sample_bar[0]), float(sample_bar[1]))
        if self.sample_bar is not None and not self.eval_samples:
            self.eval_samples = SAMPLE_BAR_SAMPLES
        self._fd: tuple[torch.nn.Module, torch.Tensor] | None = None  # scene-feature net, test scenes
        self.stop_at_bar = bool(stop_at_bar)
        self.bar = (float(bar[0]), float(bar[1]))
        self.eval_times: list[float] = []
        self.eval_seconds = 0.0  # wall-clock spent evaluating, so that training time can be told apart
        # every evaluation is appended here at once, so a killed run keeps its curve so far
        self.partial = Path(partial) if partial is not None else None
        self._partial_points: list[dict[str, float]] = []
        self._step = 0
        self._held: tuple[torch.Tensor, torch.Tensor] | None = None
        self._baseline: torch.Tensor | None = None
        self._t0 = time.perf_counter()

    def held_out(self) -> tuple[torch.Tensor, torch.Tensor]:
        """`eval_num` test scenes (images, masks) of the run's dataset and size."""
        if self._held is None:
            from sri.data import build_dataset

            kw = dict(self.dataset_kwargs())
            kw["num"] = self.eval_num
            ds = build_dataset(self.config["dataset"], self.data_root(), "test", **kw)
            n = min(len(ds), self.eval_num)
            items = [ds[i] for i in range(n)]
            if "mask" not in items[0]:
                raise ValueError(f"dataset {self.config['dataset']!r} has no ground-truth masks: "
                                 "a learning curve needs them for ARI-FG")
            self._held = (torch.stack([it["image"] for it in items]), torch.stack([it["mask"] for it in items]))
        return self._held

    def sample_quality(self, model: torch.nn.Module) -> dict[str, float]:
        """S-Acc (the image judge) of `eval_samples` prior samples and, on `blocks`, their scene FD
        against as many test scenes (`scene_fd`; the generation issue's sample bar reads both)."""
        from sri.metrics import judge_samples

        was = model.training
        model.eval()
        g = torch.Generator().manual_seed(int(self.config["seed"]) + 1)
        try:
            with torch.no_grad():
                outs = [model.sample(min(100, self.eval_samples - i), generator=g)
                        for i in range(0, self.eval_samples, 100)]
        finally:
            model.train(was)
        images = torch.cat([o.images for o in outs]).float().clamp(0, 1).cpu()
        masks = torch.cat([o.masks for o in outs]).float().cpu()
        res = {"s_acc": float(judge_samples(images, masks).float().mean())}
        from sri.metrics import scene_features as sf

        if self.config["dataset"] == "blocks" and not sf.default_weights_path(model.image_size).is_file():
            if not getattr(self, "_fd_warned", False):
                print(f"[learn] no scene-feature weights for {model.image_size}x{model.image_size} "
                      f"({sf.default_weights_path(model.image_size)}): the curve has S-Acc but no scene FD; "
                      f"`python -m sri.metrics.scene_features train --size {model.image_size}` makes them",
                      file=sys.stderr, flush=True)
                self._fd_warned = True
        elif self.config["dataset"] == "blocks":
            from sri.data import build_dataset

            if self._fd is None:
                kw = dict(self.dataset_kwargs())
                kw["num"] = self.eval_samples
                te = build_dataset("blocks", self.data_root(), "test", **kw)
                self._fd = (sf.load_scene_features(model.image_size),
                            torch.stack([te[i]["image"] for i in range(len(te))]))
            res["scene_fd"] = float(sf.scene_frechet_distance(self._fd[0], images, self._fd[1]))
        return res

    def baseline(self) -> torch.Tensor:
        """The mean of (up to 2,000) training images."""
        if self._baseline is None:
            from sri.metrics.learning import mean_image

            ds = self.dataset if hasattr(self, "dataset") else self.build_dataset("train")
            n = min(len(ds), 2000)
            self._baseline = mean_image(torch.stack([ds[i]["image"] for i in range(n)]))
        return self._baseline

    def _periodic_eval(self, step: int) -> None:
        self._step = step
        super()._periodic_eval(step)

    def evaluate(self, model: torch.nn.Module, metrics: list[str], *, final: bool) -> dict[str, float]:
        if final:
            return super().evaluate(model, metrics, final=final)
        from sri.metrics.learning import meets, reconstruction_metrics

        t_eval = time.perf_counter()
        images, masks = self.held_out()
        res = reconstruction_metrics(model, images, masks, self.baseline(),
                                     batch_size=self.config["eval_batch_size"])
        if self.eval_samples:
            res.update(self.sample_quality(model))
        self.eval_seconds += time.perf_counter() - t_eval
        self.eval_times.append(time.perf_counter() - self._t0)
        extra = f" (ordered {res['ari_fg_ordered']:.3f})" if "ari_fg_ordered" in res else ""
        if "s_acc" in res:
            extra += f", samples: S-Acc {res['s_acc']:.3f}" + (f", scene FD {res['scene_fd']:.2f}"
                                                              if "scene_fd" in res else "")
        print(f"[learn] {self.eval_times[-1] / 60:5.1f} min: ARI-FG {res['ari_fg']:.3f}{extra}, "
              f"MSE/baseline {res['mse_ratio']:.3f}, KL {res['kl']:.1f}", file=sys.stderr, flush=True)
        if self.stop_at_bar and meets(res, ari=self.bar[0], mse_ratio=self.bar[1]) \
                and (self.sample_bar is None or meets_sample_bar(res, self.sample_bar)) \
                and self._step < self.config["steps"]:
            also = "" if self.sample_bar is None else \
                f" and the sample bar (S-Acc >= {self.sample_bar[0]}, scene FD <= {self.sample_bar[1]})"
            print(f"[learn] step {self._step}: the bar (ARI-FG >= {self.bar[0]}, MSE ratio <= {self.bar[1]}){also} "
                  f"is met; stopping (stop_at_bar)",
                  file=sys.stderr, flush=True)
            self.config["steps"] = self._step  # the training loop's own stopping condition
        if self.partial is not None:
            self._partial_points.append({"step": self._step, **{k: float(v) for k, v in res.items()},
                                         "wall_s": round(self.eval_times[-1], 1),
                                         "eval_s": round(self.eval_seconds, 1)})
            tmp = self.partial.with_suffix(".tmp")
            tmp.write_text(json.dumps({"config": self.config, "points": self._partial_points}, indent=1,
                                      default=str))
            tmp.replace(self.partial)
        return res


def _points(logger: MemoryLogger, times: list[float], eval_s: list[float]) -> list[dict[str, float]]:
    by_step: dict[int, dict[str, float]] = {}
    for name, values in logger.scalars.items():
        if name.startswith("eval_"):
            for step, v in values:
                by_step.setdefault(step, {"step": step})[name[5:]] = v
    pts = [by_step[s] for s in sorted(by_step)]
    for p, t, e in zip(pts, times, eval_s):
        p["wall_s"] = round(t, 1)
        p["eval_s"] = round(e, 1)
    return pts


def merged_points(chunks: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One curve from the chunks of a run continued across sessions: each chunk's wall-clock and
    evaluation seconds are offset by the chunks before it."""
    pts: list[dict[str, Any]] = []
    wall = ev = 0.0
    for c in chunks:
        for p in c["points"]:
            if pts and p["step"] <= pts[-1]["step"]:
                continue  # a chunk re-evaluates the step it resumed from
            q = dict(p)
            q["wall_s"] = round(p["wall_s"] + wall, 1)
            q["eval_s"] = round(p.get("eval_s", 0.0) + ev, 1)
            pts.append(q)
        wall += c["train_wall_s"]
        ev += c.get("eval_wall_s", 0.0)
    return pts


def _chunk_record(curve: dict[str, Any]) -> dict[str, Any]:
    """What the provenance keeps of one chunk of a run."""
    return {k: curve.get(k) for k in ("command", "commit", "dirty", "date", "started", "steps", "train_wall_s",
                                      "eval_wall_s", "interrupted")}


def earlier_curve(out: str | Path) -> dict[str, Any] | None:
    """The curve of a run's earlier chunks in `out`: its `curve.json`, or for a run killed before it
    wrote one, the evaluations it saved as it went (`curve.partial.json`); None for a new run."""
    out = Path(out)
    if (out / "curve.json").is_file():
        return json.loads((out / "curve.json").read_text())
    if (out / "curve.partial.json").is_file():
        part = json.loads((out / "curve.partial.json").read_text())
        pts = part.get("points") or []
        last = pts[-1] if pts else {}
        return {"points": pts, "train_wall_s": last.get("wall_s", 0.0), "eval_wall_s": last.get("eval_s", 0.0),
                "steps": last.get("step", 0), "command": None, "commit": None, "interrupted": True,
                "train": {}, "killed": True, "config": part.get("config") or {},
                "preset": (part.get("config") or {}).get("preset")}
    return None


def learn(model: str, dataset: str = "blocks", *, minutes: float = 10.0, steps: int | None = None,
          preset: str = "demo", seed: int = 0, eval_every: int = 250, eval_num: int = DEFAULT_EVAL_NUM,
          num_samples: int = 256, out: str | Path | None = None, overrides: dict[str, Any] | None = None,
          command: str | None = None, plot: bool = True, table: int | None = None,
          row: str | None = None, stop_at_bar: bool = False,
          bar: tuple[float, float] = DEMO_BAR, resume: bool = False, eval_samples: int = 0,
          sample_bar: tuple[float, float] | None = None) -> dict[str, Any]:
    """Train `model` from scratch, evaluate it along the way, write `curve.json` (+ `curve.png`);
    `stop_at_bar` stops at the first evaluation with ARI-FG >= bar[0] and MSE ratio <= bar[1].
    `resume` continues the run in `out` from its last checkpoint as a new chunk: the earlier curve
    is kept as `curve.chunkN.json` and joined with this chunk's in `curve.json` (`chunks` lists each
    chunk's command, commit and wall time). `eval_samples` > 0 also judges that many samples at
    every evaluation (S-Acc and, on blocks, scene FD in each point of the curve); `sample_bar` makes
    `stop_at_bar` wait for the samples to meet it too (1,000 samples per evaluation unless given)."""
    from sri.metrics.learning import data_reference, meets, sample_metrics
    from sri.provenance import provenance
    from sri.train.runtime import machine_info

    out = Path(out or f"runs/learn/{model}-{dataset}-{preset}-seed{seed}")
    out.mkdir(parents=True, exist_ok=True)
    cfg = learning_config(model, dataset, preset=preset, seed=seed, minutes=minutes, steps=steps,
                          eval_every=eval_every, run_dir=out / "run", overrides=overrides,
                          table=table, row=row)
    prev = earlier_curve(out) if resume else None
    if resume:
        cfg["resume"] = True
        if (out / "curve.json").is_file():
            n = len(list(out.glob("curve.chunk*.json"))) + 1
            (out / "curve.json").rename(out / f"curve.chunk{n}.json")
        if not list_checkpoints(cfg["run_dir"]):
            print(f"[learn] --resume: no checkpoint in {cfg['run_dir']}; starting from scratch",
                  file=sys.stderr, flush=True)
            prev = None
    logger = MemoryLogger()
    trainer = CurveTrainer(cfg, logger, eval_num, partial=out / "curve.partial.json", stop_at_bar=stop_at_bar,
                           bar=bar, eval_samples=eval_samples, sample_bar=sample_bar)
    eval_marks: list[float] = []
    evaluate = trainer.evaluate

    def evaluate_and_mark(*a: Any, **k: Any) -> dict[str, float]:
        out_ = evaluate(*a, **k)
        if not k.get("final"):
            eval_marks.append(trainer.eval_seconds)
        return out_

    trainer.evaluate = evaluate_and_mark  # type: ignore[method-assign]
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    prov = provenance(command or "", str(cfg["device"]))  # the code as it was when the run began
    t0 = time.perf_counter()
    trainer._t0 = t0
    interrupted = False
    try:
        result = trainer.fit()
    except TrainingInterrupted:  # SIGTERM / Ctrl-C: the checkpoint is written; keep the curve so far too
        interrupted = True
        ckpts = list_checkpoints(cfg["run_dir"])
        result = {"step": ckpts[-1][0] if ckpts else 0, "checkpoint": str(ckpts[-1][1]) if ckpts else None}
    train_s = time.perf_counter() - t0
    step = int(result["step"])
    m = trainer.model
    if not interrupted and not any(s == step for s, _ in logger.scalars.get("eval_ari_fg", [])):
        for k, v in trainer._guarded(trainer.evaluate, m, ["ari_fg"], final=False).items():
            logger.log_scalar(f"eval_{k}", v, step)
    points = _points(logger, trainer.eval_times, eval_marks)
    train_log = {k: v for k, v in logger.scalars.items() if not k.startswith("eval_")}
    if prev is not None:  # join this chunk to the earlier ones
        done = {"points": prev["points"], "train_wall_s": prev.get("total_train_wall_s", prev["train_wall_s"]),
                "eval_wall_s": prev.get("total_eval_wall_s", prev.get("eval_wall_s", 0.0))}
        points = merged_points([done, {"points": points, "train_wall_s": train_s,
                                       "eval_wall_s": trainer.eval_seconds}])
        earlier_train = prev.get("train") or {}
        first = min((v[0][0] for v in train_log.values() if v), default=None)
        train_log = {k: [v for v in earlier_train.get(k, []) if first is None or v[0] < first]
                     + list(train_log.get(k, [])) for k in {**earlier_train, **train_log}}
    final = dict(points[-1]) if points else {}
    held_images, masks = trainer.held_out()
    if not interrupted:  # an interrupted run is not sampled: stopping should be quick
        final.update({f"sample_{k}": v for k, v in
                      trainer._guarded(sample_metrics, m, num_samples, seed=seed).items()})
    reference = data_reference(masks, held_images)
    res = {
        **prov,
        "model": model, "table": cfg["table"], "row": cfg["row"], "dataset": dataset, "preset": preset,
        "seed": seed,
        "command": command or f"python -m sri.bench learn --model {model} --dataset {dataset} "
                              f"--minutes {minutes} --preset {preset} --seed {seed}",
        "started": started, "train_wall_s": round(train_s, 1), "steps": step,
        "eval_wall_s": round(trainer.eval_seconds, 1),
        "stopped_at_bar": bool(stop_at_bar and meets(final, ari=bar[0], mse_ratio=bar[1])
                               and (sample_bar is None or meets_sample_bar(final, sample_bar))), "bar": list(bar),
        "sample_bar": None if sample_bar is None else list(sample_bar),
        "machine": machine_info(str(trainer.device)), "eval_num": len(masks),
        "config": cfg, "points": points, "final": final, "data_reference": reference,
        "meets_demo_bar": meets(final),
        "train": train_log,
        "checkpoint": result["checkpoint"], "interrupted": interrupted,
    }
    chunks = ((prev.get("chunks") or [_chunk_record(prev)]) if prev is not None else []) + [_chunk_record(res)]
    res.update(chunks=chunks, total_train_wall_s=round(sum(c["train_wall_s"] or 0.0 for c in chunks), 1),
               total_eval_wall_s=round(sum(c["eval_wall_s"] or 0.0 for c in chunks), 1))
    (out / "curve.json").write_text(json.dumps(res, indent=1, default=str))
    (out / "curve.partial.json").unlink(missing_ok=True)
    if plot and points:
        plot_curve(res, out / "curve.png")
    if interrupted:
        print(f"[learn] interrupted at step {step}: curve so far in {out / 'curve.json'}, checkpoint "
              f"{result['checkpoint']}", file=sys.stderr, flush=True)
        raise TrainingInterrupted(f"interrupted at step {step}")
    return res


def plot_curve(res: dict[str, Any], path: str | Path) -> Path:
    """ARI-FG, MSE / baseline, KL and the GECO betas against steps, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = res["points"]
    steps = [p["step"] for p in pts]
    with_samples = any("s_acc" in p for p in pts)
    fig, ax = plt.subplots(1, 5 if with_samples else 4, figsize=(20 if with_samples else 16, 3.4))
    ax[0].plot(steps, [p.get("ari_fg") for p in pts], "o-", label="segmentation masks")
    if any("ari_fg_ordered" in p for p in pts):
        ax[0].plot(steps, [p.get("ari_fg_ordered") for p in pts], "s--", label="ordered masks")
    ax[0].axhline(0.75, color="grey", ls=":", label="demo bar 0.75")
    ax[0].set(title="ARI-FG (held-out)", xlabel="step", ylim=(-0.1, 1))
    ax[0].legend(fontsize=7)
    ax[1].semilogy(steps, [p.get("mse_ratio") for p in pts], "o-")
    ax[1].axhline(0.25, color="grey", ls=":", label="demo bar 0.25")
    ax[1].set(title="recon MSE / mean-image MSE", xlabel="step")
    ax[1].legend(fontsize=7)
    ax[2].semilogy(steps, [p.get("kl") for p in pts], "o-")
    ax[2].set(title="KL (nats / image)", xlabel="step")
    for name, values in res.get("train", {}).items():
        if name.startswith("beta_"):
            ax[3].semilogy([s for s, _ in values], [v for _, v in values], label=name)
    ax[3].set(title="GECO beta", xlabel="step")
    if ax[3].get_legend_handles_labels()[0]:
        ax[3].legend(fontsize=7)
    if with_samples:
        sp = [p for p in pts if "s_acc" in p]
        ax[4].plot([p["step"] for p in sp], [p["s_acc"] for p in sp], "o-", color="tab:green", label="S-Acc (judge)")
        ax[4].axhline(0.5, color="tab:green", ls=":", lw=0.8)
        ax[4].set(title="samples", xlabel="step", ylim=(-0.05, 1.05), ylabel="S-Acc")
        if any("scene_fd" in p for p in sp):
            fd = ax[4].twinx()
            fd.semilogy([p["step"] for p in sp if "scene_fd" in p], [p["scene_fd"] for p in sp if "scene_fd" in p],
                        "s--", color="tab:purple", label="scene FD")
            fd.axhline(10, color="tab:purple", ls=":", lw=0.8)
            fd.set_ylabel("scene FD", color="tab:purple")
    f = res.get("final", {})
    fig.suptitle(f"{res['model']} on {res['dataset']} (preset {res['preset']}, seed {res['seed']}): "
                 f"{res['steps']} steps in {res.get('total_train_wall_s', res['train_wall_s']) / 60:.1f} min; "
                 f"samples S-Acc "
                 f"{f.get('sample_s_acc', float('nan')):.2f}, visible objects "
                 f"{f.get('sample_visible_objects', float('nan')):.2f} (data "
                 f"{res['data_reference']['visible_objects']:.2f})", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _parser() -> argparse.ArgumentParser:
    from sri.configs import PRESETS, SYNTHETIC_DATASETS

    p = argparse.ArgumentParser(prog="python -m sri.bench learn",
                                description="Train a model from scratch and write its learning curve "
                                            "(JSON + PNG) on held-out scenes.")
    p.add_argument("--model", required=True, help="a model name that sri.models.build_model knows")
    p.add_argument("--dataset", default="blocks",
                   help=f"dataset with ground-truth masks (default blocks; synthetic: {', '.join(SYNTHETIC_DATASETS)})")
    p.add_argument("--minutes", type=float, default=10.0, help="wall-clock minutes of training (default 10)")
    p.add_argument("--steps", type=int, default=None, help="stop after this many steps instead (or as well)")
    p.add_argument("--preset", default="demo", choices=sorted(PRESETS), help="recipe preset (default demo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--table", type=int, default=None, help="take the recipe of this table's --row "
                   "(default: Table 2's MoG row of the model)")
    p.add_argument("--row", default=None, help="row of --table whose recipe to use")
    p.add_argument("--eval-every", type=int, default=250, help="steps between evaluations (default 250)")
    p.add_argument("--eval-num", type=int, default=DEFAULT_EVAL_NUM, help="held-out scenes (default 320)")
    p.add_argument("--num-samples", type=int, default=256, help="samples judged at the end (default 256)")
    p.add_argument("--eval-samples", type=int, default=0,
                   help="also judge this many samples at every evaluation: S-Acc and scene FD in the curve "
                        "(default 0: none; 1000 is the generation issue's protocol, about 12 s per evaluation "
                        "at the demo size)")
    p.add_argument("--out", default=None,
                   help="output folder (default runs/learn/<model>-<dataset>-<preset>-seed<seed>)")
    p.add_argument("--stop-at-bar", action="store_true",
                   help="stop at the first evaluation that meets the bar (default the demo's: ARI-FG >= 0.75, "
                        "MSE ratio <= 0.25)")
    p.add_argument("--bar", default=None, metavar="ARI,MSE",
                   help="the bar of --stop-at-bar as ARI-FG,MSE-ratio (e.g. 0.6,0.4: the baselines' learning bar)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint (e.g. one cut at the end of a "
                        "working session): --steps is the run's total, --minutes this chunk's; the curve "
                        "joins the chunks")
    p.add_argument("--sample-bar", default=None, metavar="S_ACC,FD",
                   help="with --stop-at-bar, also wait for the samples: S-Acc at least S_ACC and scene FD at most "
                        "FD (the generation issue's: 0.5,10; judges 1,000 samples per evaluation unless "
                        "--eval-samples says otherwise)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (e.g. lr=3e-4, model_options.pixel_std=0.1); repeatable")
    return p


# flag -> (what its two numbers are, an example, the range of the first, the rule in words)
_BARS = {"--bar": ("ARI,MSE", "0.6,0.4", (-1.0, 1.0), "ARI-FG must be in [-1, 1] and the MSE ratio > 0"),
         "--sample-bar": ("S_ACC,FD", "0.5,10", (0.0, 1.0), "S-Acc must be in [0, 1] and the scene FD > 0")}


def parse_bar(text: str | None, flag: str = "--bar") -> tuple[float, float] | None:
    """`--bar ARI,MSE` or `--sample-bar S_ACC,FD` -> its two numbers (None when not given); a
    one-line error naming the fix otherwise."""
    if text is None:
        return None
    names, example, (lo, hi), rule = _BARS[flag]
    try:
        first, second = (float(v) for v in text.split(","))
    except ValueError:
        raise SystemExit(f"{flag} expects {names} (two numbers, e.g. {example}), got {text!r}") from None
    if not (lo <= first <= hi and second > 0):
        raise SystemExit(f"{flag} {text}: {rule}")
    return first, second


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    overrides = {}
    for item in args.set:
        if "=" not in item:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        overrides[k.strip()] = parse_value(v.strip())
    try:
        res = learn(args.model, args.dataset, minutes=args.minutes, steps=args.steps, preset=args.preset,
                    seed=args.seed, eval_every=args.eval_every, eval_num=args.eval_num,
                    num_samples=args.num_samples, out=args.out, overrides=overrides,
                    command="python -m sri.bench learn " + shlex.join(argv), table=args.table, row=args.row,
                    stop_at_bar=args.stop_at_bar, bar=parse_bar(args.bar) or DEMO_BAR, resume=args.resume,
                    eval_samples=args.eval_samples, sample_bar=parse_bar(args.sample_bar, "--sample-bar"))
    except (ConfigError, NotImplementedError) as e:
        raise SystemExit(f"sri.bench learn: {e}") from None
    except TrainingInterrupted:
        return 130
    f = res["final"]
    out = Path(res["config"]["run_dir"]).parent
    chunks = f" ({len(res['chunks'])} chunks)" if len(res["chunks"]) > 1 else ""
    print(f"\n{res['model']} on {res['dataset']}: {res['steps']} steps in {res['total_train_wall_s'] / 60:.1f} min"
          + chunks)
    for p in res["points"]:
        extra = f", ordered {p['ari_fg_ordered']:.3f}" if "ari_fg_ordered" in p else ""
        print(f"  step {p['step']:>6}: ARI-FG {p['ari_fg']:.3f}{extra}, MSE/baseline {p['mse_ratio']:.3f}, "
              f"KL {p['kl']:.1f}")
    print(f"  samples: S-Acc {f.get('sample_s_acc', float('nan')):.3f}, visible objects "
          f"{f.get('sample_visible_objects', float('nan')):.2f} (data: S-Acc "
          f"{res['data_reference']['s_acc']:.3f}, {res['data_reference']['visible_objects']:.2f} objects)")
    print(f"  curve: {out / 'curve.json'}, {out / 'curve.png'}")
    return 0
