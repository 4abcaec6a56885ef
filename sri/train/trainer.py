"""The training loop (`Trainer`, `train(config)`): AMP, checkpoints with exact resume, NaN guard,
progress, periodic and final evaluation.

`train(config, run=...)` is what the Sacred scripts call; it never imports Sacred. Its parts live
beside it: logging adapters (`sri.train.loggers`), data order and LR schedule
(`sri.train.schedule`), RNG state (`sri.train.rng`), device and signals (`sri.train.runtime`),
DDP (`sri.train.distributed`), run-folder files (`sri.train.rundir`), sample grids (`sri.viz`) and
the final-evaluation policy (`sri.evaluate.final_evaluation`); their names stay importable from
here. Data order is a pure function of (seed, step), so a run of 2N steps equals N steps + resume
+ N steps bit for bit on CPU.
"""
from __future__ import annotations

import copy
import functools
import math
import os
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from sri.checkpoint import (
    CheckpointCorrupt,
    RunDirLock,
    RunDirNotWritable,
    check_writable,
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
    write_error_reason,
)
from sri.configs import DATASETS, ConfigError, default_run_dir, validate_config
from sri.evaluate import evaluate_run, final_evaluation
from sri.models.registry import CONTINUABLE_OPTIONS
from sri.train.distributed import (
    any_rank,
    barrier,
    gather_rng,
    init_process_group,
    leave_process_group,
    rank_rng,
    world_info,
    wrap_ddp,
)
from sri.train.loggers import Logger, NullLogger, as_logger
from sri.train.rng import rng_state, seed_everything, set_rng_state
from sri.train.rundir import (
    archive_previous_run,
    checkpoint_name,
    list_checkpoints,
    prune_checkpoints,
    samples_name,
    set_aside,
)
from sri.train.runtime import (
    install_stop_handlers,
    resolve_device,
    restore_handlers,
    tune_cpu_allocator,
)
from sri.train.schedule import GoalSchedule, StepBatchSampler, lr_factor
from sri.train.step import unwrap_model
from sri.viz import write_sample_grid

__all__ = ["Trainer", "TrainingDiverged", "TrainingInterrupted", "train"]

# names that lived here before the trainer was split into modules: still importable from here (with a
# DeprecationWarning naming the module that owns them), so that old notebooks keep working
MOVED = {
    "ARCHIVE_DIR": "sri.train.rundir", "CKPT_RE": "sri.train.rundir", "SAMPLES_RE": "sri.train.rundir",
    "list_checkpoints": "sri.train.rundir",
    "Logger": "sri.train.loggers", "MemoryLogger": "sri.train.loggers", "NullLogger": "sri.train.loggers",
    "RunLogger": "sri.train.loggers", "as_logger": "sri.train.loggers",
    "StepBatchSampler": "sri.train.schedule", "lr_factor": "sri.train.schedule",
    "rng_state": "sri.train.rng", "seed_everything": "sri.train.rng", "set_rng_state": "sri.train.rng",
    "resolve_device": "sri.train.runtime", "threading_is_main": "sri.train.runtime",
    "tune_cpu_allocator": "sri.train.runtime",
    "feature_extractor_name": "sri.evaluate", "mask_colors": "sri.viz", "write_sample_grid": "sri.viz",
    "PALETTE": "sri.viz:SLOT_PALETTE", "_unwrap": "sri.train.step:unwrap_model",
    "_DDP": "sri.train.distributed", "_allreduce_update": "sri.train.distributed",
    "CheckpointCorrupt": "sri.checkpoint", "RunDirLock": "sri.checkpoint", "RunDirNotWritable": "sri.checkpoint",
    "check_writable": "sri.checkpoint", "load_checkpoint": "sri.checkpoint", "save_checkpoint": "sri.checkpoint",
    "write_error_reason": "sri.checkpoint",
    "ConfigError": "sri.configs", "DATASETS": "sri.configs", "default_run_dir": "sri.configs",
    "validate_config": "sri.configs",
}


def __getattr__(name: str) -> Any:
    """A name that moved out of this module: its owner's object, with a DeprecationWarning."""
    if name not in MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    module, _, attr = MOVED[name].partition(":")
    warnings.warn(f"sri.train.trainer.{name} moved: import {attr or name} from {module}",
                  DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(module), attr or name)


class TrainingDiverged(RuntimeError):
    """Too many training steps had a non-finite loss (`max_nonfinite_share`): the run fails."""


class TrainingInterrupted(KeyboardInterrupt):
    """Raised after SIGTERM/SIGINT once the checkpoint is written."""


class Trainer:
    """One training run described by a flat config (see `sri.configs.TRAIN_DEFAULTS`).

    Subclasses may override `build_model`, `build_dataset`, `make_gecos`, `train_step` and
    `evaluate` (e.g. to plug in a custom model).
    """

    def __init__(self, config: dict[str, Any], logger: Logger | None = None, *,
                 trust_checkpoint: bool = False) -> None:
        self.config = validate_config(config)
        self.logger: Logger = logger or NullLogger()
        self.world, self.rank, self.local_rank = world_info()
        # absolute, so that the paths a run records are valid from any working directory
        self.run_dir = Path(self.config["run_dir"] or default_run_dir(self.config)).absolute()
        # load old-format (pickled) checkpoints on resume; they can run code, so opt-in only
        self.trust_checkpoint = bool(trust_checkpoint)
        self._stop_signal: int | None = None
        self._written: list[str] = []  # this run's own checkpoints (the only ones it prunes)
        self._lock: RunDirLock | None = None

    # ---- factories (override points) ------------------------------------------------------
    def build_model(self) -> torch.nn.Module:
        """`sri.models.build_model(config.model, **config.model_options)`."""
        from sri.models import build_model

        c = self.config
        try:
            return build_model(c["model"], **c["model_options"])
        except NotImplementedError as e:
            raise NotImplementedError(
                f"table {c['table']} row {c['row']!r} needs model {c['model']!r}, which is not "
                f"implemented yet ({e})") from None

    def data_root(self) -> str | None:
        """Folder of converted datasets: config data_root, else $SRI_DATA, else ./data (real datasets)."""
        c = self.config
        if c["data_root"]:
            return str(c["data_root"])
        if DATASETS[c["dataset"]]["synthetic"]:
            return os.environ.get("SRI_DATA_SYNTHETIC") or None
        return os.environ.get("SRI_DATA", "data")

    def dataset_kwargs(self) -> dict[str, Any]:
        """Keywords for build_dataset: the model's image size plus data_options."""
        c = self.config
        kw = dict(c["data_options"])
        # synthetic data are generated at this size; a converted cache of another size is refused
        kw.setdefault("image_size", c["model_options"]["image_size"])
        return kw

    def build_dataset(self, split: str = "train") -> torch.utils.data.Dataset:
        """`sri.data.build_dataset(dataset, root, split, **kw)` with a clear error if missing."""
        from sri.data import build_dataset

        c = self.config
        root = self.data_root()
        try:
            ds = build_dataset(c["dataset"], root, split, **self.dataset_kwargs())
        except FileNotFoundError as e:
            raise FileNotFoundError(
                f"dataset {c['dataset']!r} not found under {root!r} ({e}). Convert it first "
                f"(`sri data --help`), set data_root=... or $SRI_DATA, or use the synthetic "
                f"`with smoke` / dataset=blocks") from None
        return ds

    def make_gecos(self, model: torch.nn.Module) -> dict[str, Any]:
        """`sri.train.make_gecos` with the config's GECO hyper-parameters."""
        from sri.train import make_gecos

        c = self.config
        return make_gecos(model, goal_per_element=c["geco_goal"], geco_lr=c["geco_lr"],
                          speedup=c["geco_speedup"], alpha=c["geco_alpha"])

    def train_step(self, model, batch, optimizer, gecos, **kw) -> dict[str, float]:
        """`sri.train.train_step`."""
        from sri.train import train_step

        return train_step(model, batch, optimizer, gecos, **kw)

    def evaluate(self, model: torch.nn.Module, metrics: list[str], *, final: bool) -> dict[str, float]:
        """`sri.evaluate.evaluate_run`: the paper's protocol (final) or small sizes (periodic)."""
        return evaluate_run(model, metrics, self.config, final=final, root=self.data_root(),
                            device=self.device, progress=self._tty())

    # ---- small utilities -------------------------------------------------------------------
    def _tty(self) -> bool:
        err = sys.__stderr__
        return bool(self.config["progress"] and self.rank == 0 and err is not None and err.isatty())

    def _info(self, key: str, value: Any) -> None:
        if self.rank == 0:
            self.logger.set_info(key, value)

    def _scalar(self, name: str, value: float, step: int) -> None:
        if self.rank == 0 and value is not None and math.isfinite(float(value)):
            self.logger.log_scalar(name, float(value), int(step))

    # ---- checkpoints -----------------------------------------------------------------------
    def _state(self, step: int) -> dict[str, Any]:
        model = unwrap_model(self.model)
        rng = gather_rng(rng_state(), self.world)  # collective under DDP
        return {
            "model_name": getattr(model, "name", self.config["model"]),
            "model_options": copy.deepcopy(getattr(model, "options", self.config["model_options"])),
            "model_state": model.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "gecos": {k: g.state_dict() for k, g in self.gecos.items()},
            "goal_schedule": self.goal_schedule.state_dict(),
            "step": int(step),
            "rng": rng,
            "data_position": {"step": int(step), "seed": int(self.config["seed"]),
                              "global_batch": int(self.config["batch_size"]),
                              "num_items": len(self.dataset)},
            "config": copy.deepcopy(self.config),
            "world_size": self.world,
        }

    def save(self, step: int, good: bool = True) -> Path | None:
        """Write ckpt_<step>.pt atomically (rank 0), prune old ones, record paths in the run info.

        Pruning keeps the `keep_checkpoints` newest of this run's own checkpoints (those it wrote
        or resumed from) and never touches any other file. `good=False` (written during a run of
        non-finite losses) keeps the previous checkpoint as the one the NaN guard goes back to.
        """
        state = self._state(step)  # collective under DDP: every rank calls it
        path = self.run_dir / checkpoint_name(step)
        if self.rank == 0:
            try:
                save_checkpoint(path, state)
            except OSError as e:
                raise RunDirNotWritable(f"cannot write checkpoints to {self.run_dir}: "
                                        f"{write_error_reason(e)}") from None
            protect = str(self._last_good) if self._last_good is not None and not good else None
            self._written = prune_checkpoints(self._written, str(path), self.config["keep_checkpoints"],
                                              protect)
            self._info("checkpoint", str(path))
            self._info("checkpoints", list(self._written))
        if good:
            self._last_good = path
        barrier(self.world)
        return path

    def _load_states(self, ckpt: dict[str, Any], *, restore_rng: bool) -> None:
        unwrap_model(self.model).load_state_dict(ckpt["model_state"])
        self.optimizer.load_state_dict(ckpt["optimizer_state"])
        for k, g in self.gecos.items():
            if k in ckpt["gecos"]:
                g.load_state_dict(ckpt["gecos"][k])
        if "goal_schedule" in ckpt:
            self.goal_schedule.load_state_dict(ckpt["goal_schedule"])
        if restore_rng:
            set_rng_state(rank_rng(ckpt["rng"], self.world, self.rank))

    def _init_from(self, path: Path) -> int:
        """Start from the weights, GECO states (and optimizer state, if stored) of `path`; its step."""
        ckpt = load_checkpoint(path, map_location=self.device)  # weights_only: safe
        model = unwrap_model(self.model)
        theirs = dict(ckpt.get("model_options") or {})
        differ = sorted(k for k in set(theirs) | set(model.options) if theirs.get(k) != model.options.get(k))
        if ckpt.get("model_name") != getattr(model, "name", None) or not set(differ) <= set(CONTINUABLE_OPTIONS):
            raise ConfigError(f"init_checkpoint {path} holds model {ckpt.get('model_name')} "
                              f"{ckpt.get('model_options')}, not this run's {getattr(model, 'name', None)} "
                              f"{model.options}; use a checkpoint of the same model and options (only "
                              f"{', '.join(CONTINUABLE_OPTIONS)} may differ)")
        if differ:
            self._say("init_checkpoint: continuing with other options: " + ", ".join(
                f"{k} {theirs.get(k)!r} -> {model.options.get(k)!r}" for k in differ))
        ref = model.state_dict()
        # cast the compact (fp16) weights to the model's dtypes; names the model no longer has
        # (checkpoints of an older layout) are renamed by the model's own load hook
        try:
            model.load_state_dict({k: v.to(ref[k].dtype) if k in ref else v.float() if v.is_floating_point() else v
                                   for k, v in ckpt["model_state"].items()})
        except RuntimeError as e:
            raise ConfigError(
                f"init_checkpoint {path}: its weights do not fit this run's model with "
                f"{', '.join(f'{k}={model.options.get(k)!r}' for k in differ)} ({str(e).splitlines()[0]}); "
                "keep the checkpoint's values of these options"
            ) from e
        if ckpt.get("optimizer_state"):
            self.optimizer.load_state_dict(ckpt["optimizer_state"])
        for k, g in self.gecos.items():
            if k in ckpt.get("gecos", {}):
                # only the state: goal, step size and the rest come from this run's config, so
                # that a run can continue a checkpoint with another GECO goal
                g.load_state_dict(
                    {key: ckpt["gecos"][k][key] for key in ("beta", "err_ema") if key in ckpt["gecos"][k]}
                )
        step = int(ckpt.get("step", 0))
        self._info("initialised_from", {"path": str(path), "step": step})
        self._say(f"starting from {path} (step {step})")
        return step

    def _check_compatible(self, ckpt: dict[str, Any], path: Path) -> None:
        c = self.config
        theirs = ckpt.get("config", {})
        model = unwrap_model(self.model)
        mine_opts = getattr(model, "options", c["model_options"])
        if ckpt.get("model_name") != getattr(model, "name", c["model"]) or ckpt.get("model_options") != mine_opts:
            raise ConfigError(
                f"{path} holds a different model ({ckpt.get('model_name')} "
                f"{ckpt.get('model_options')}) than this run; pass resume=False to "
                f"start over or run_dir=... for a new folder"
            )
        for key in ("seed", "batch_size", "dataset"):
            if key in theirs and theirs[key] != c[key]:
                raise ConfigError(
                    f"{path} was written with {key}={theirs[key]!r} but this run has "
                    f"{key}={c[key]!r}; resume needs the same value (or resume=False)"
                )

    # ---- signals ---------------------------------------------------------------------------
    def _install_signals(self) -> dict[int, Any]:
        def on_signal(signum: int) -> None:
            self._stop_signal = signum

        return install_stop_handlers(on_signal)

    def _should_stop(self) -> bool:
        return self._sync_flag(self._stop_signal is not None)

    def _sync_flag(self, flag: bool) -> bool:
        """True on every rank when it is true on any rank (so all ranks stop at the same step)."""
        return any_rank(flag, self.world, self.device)

    # ---- main ------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        """Train to `steps` (resuming if possible), evaluate, and return a small result dict."""
        c = self.config
        own_pg = False
        if self.world > 1:
            own_pg = init_process_group(resolve_device(c["device"], self.local_rank))
        try:
            if self.rank == 0:
                # fail at the start, not at the first checkpoint: folder usable, nobody else in it
                check_writable(self.run_dir)
                self._lock = RunDirLock(self.run_dir).acquire()
                for p in remove_stale_temporaries(self.run_dir):
                    self._say(f"removed {p.name}, left by an interrupted checkpoint write")
            return self._fit()
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None
            if own_pg:
                leave_process_group()

    def _fit(self) -> dict[str, Any]:
        c = self.config
        self.device = resolve_device(c["device"], self.local_rank)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        else:
            tune_cpu_allocator()  # ~1.5x faster steps on CPU (see sri.train.runtime)
        seed_everything(c["seed"])
        model = self.build_model().to(self.device)
        self.dataset = self.build_dataset("train")
        if self.world > 1:  # different noise per rank, same initial weights
            torch.manual_seed(c["seed"] + 7919 * self.rank)
        self.model = model
        self.optimizer = torch.optim.Adam(model.parameters(), lr=c["lr"])
        self.gecos = self.make_gecos(model)
        self.goal_schedule = GoalSchedule(c["geco_goal"], c["geco_goal_schedule"])
        initial = {
            "model_state": copy.deepcopy(model.state_dict()),
            "optimizer_state": copy.deepcopy(self.optimizer.state_dict()),
            "gecos": {k: g.state_dict() for k, g in self.gecos.items()},
        }

        if self.rank == 0:  # room for a checkpoint, its atomic replacement and the kept ones
            # weights + Adam's two moments, pickling overhead; the kept files plus the one being written
            ckpt_bytes = int(3.2 * sum(t.numel() * t.element_size() for t in model.state_dict().values()))
            kept = c["keep_checkpoints"] or 3
            check_writable(self.run_dir, need_bytes=(kept + 1) * ckpt_bytes + (4 << 20))

        start = 0
        self._last_good: Path | None = None
        self._written = []
        if c["resume"]:
            found = self._latest_readable_checkpoint()
            if found is not None:
                path, ckpt = found
                self._check_compatible(ckpt, path)
                self._load_states(ckpt, restore_rng=True)
                start, self._last_good = int(ckpt["step"]), path
                self._info("resumed_from", str(path))
                self._say(f"resuming from {path} at step {start}")
                if start >= c["steps"]:
                    self._say(
                        f"steps={c['steps']} is not above the checkpoint's step {start}: nothing "
                        f"will be trained (pass a larger steps=... to continue); evaluating the "
                        f"checkpoint as it is"
                    )
            # the checkpoints left in the folder are this run's own lineage
            self._written = [str(p) for _, p in list_checkpoints(self.run_dir)]
        else:
            self._archive_previous_run()
        if start == 0 and c["init_checkpoint"]:
            start = self._init_from(Path(c["init_checkpoint"]))
        self._info("run_dir", str(self.run_dir))
        self._info("world_size", self.world)

        step_model: torch.nn.Module = model
        if c["compile"]:
            step_model = torch.compile(model)
        if self.world > 1:
            step_model = wrap_ddp(step_model, self.gecos, self.device)
        amp_dtype = torch.bfloat16 if c["amp"] in ("bf16", True) else None
        step_kw = {"amp_dtype": amp_dtype, "grad_clip": c["grad_clip"] or None}

        sampler = StepBatchSampler(
            len(self.dataset), c["batch_size"], c["seed"], start, self.rank, self.world, stop_step=c["steps"]
        )
        loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_sampler=sampler,
            num_workers=c["num_workers"],
            pin_memory=self.device.type == "cuda",
            # own generator: creating the iterator must not consume the global torch RNG
            generator=torch.Generator().manual_seed(c["seed"]),
        )

        from tqdm.auto import tqdm

        bar = tqdm(
            total=c["steps"],
            initial=start,
            file=sys.__stderr__,
            disable=not self._tty(),
            dynamic_ncols=True,
            desc=f"{c['model']} t{c['table']}/{c['row']}/{c['dataset']}",
        )
        old_handlers = self._install_signals()
        acc: dict[str, float] = {}
        n_acc, bad_in_row, reloads, nonfinite_total = 0, 0, 0, 0
        t_last, step = time.perf_counter(), start
        t_start, last_log_step = t_last, start
        try:
            model.train()
            batches = iter(loader)
            while step < c["steps"]:
                batch = next(batches)
                images = batch["image"] if isinstance(batch, dict) else batch
                images = images.to(self.device, non_blocking=True)
                for group in self.optimizer.param_groups:
                    group["lr"] = c["lr"] * lr_factor(
                        step, c["lr_warmup_steps"], c["lr_decay_every"], c["lr_decay_rate"]
                    )
                out = self.train_step(step_model, {"image": images}, self.optimizer, self.gecos, **step_kw)
                step += 1
                if self.goal_schedule.advance(step, self.gecos):
                    self._set_goal(self.goal_schedule.goal, step)
                if out.get("finite", 1.0) >= 0.5:
                    bad_in_row = 0
                    for k, v in out.items():
                        if k != "finite":
                            acc[k] = acc.get(k, 0.0) + float(v)
                    n_acc += 1
                else:
                    bad_in_row += 1
                    nonfinite_total += 1
                    self._info("nonfinite_steps", nonfinite_total)
                    if c["max_nonfinite"] and bad_in_row >= c["max_nonfinite"]:
                        reloads += 1
                        self._reload_last_good(initial, bad_in_row, reloads)
                        bad_in_row = 0
                bar.update(1)
                self._check_divergence(nonfinite_total, step - start, final=False)
                if c["log_every"] and (step % c["log_every"] == 0 or step == c["steps"]):
                    self._scalar("nonfinite_steps", nonfinite_total, step)
                if c["log_every"] and (step % c["log_every"] == 0 or step == c["steps"]) and n_acc:
                    now = time.perf_counter()
                    means = {k: v / n_acc for k, v in acc.items()}
                    for k, v in means.items():
                        self._scalar(k, v, step)
                    self._scalar("lr", self.optimizer.param_groups[0]["lr"], step)
                    self._scalar("steps_per_sec", (step - last_log_step) / max(now - t_last, 1e-9), step)
                    bar.set_postfix({k: f"{v:.4g}" for k, v in means.items()}, refresh=False)
                    acc, n_acc, t_last, last_log_step = {}, 0, now, step
                if c["checkpoint_every"] and step % c["checkpoint_every"] == 0 and step < c["steps"]:
                    self.save(step, good=bad_in_row == 0)
                if c["eval_every"] and step % c["eval_every"] == 0 and step < c["steps"] and c["eval_metrics"]:
                    self._periodic_eval(step)
                if c["sample_every"] and step % c["sample_every"] == 0 and step < c["steps"]:
                    self._save_samples(step)
                if self._should_stop():
                    signum = self._stop_signal or signal.SIGTERM
                    self.save(step, good=bad_in_row == 0)
                    bar.close()
                    print(
                        f"[sri] received signal {signum}: checkpoint written at step {step} to "
                        f"{self.run_dir}; rerun the same command to resume",
                        file=sys.__stderr__,
                    )
                    raise TrainingInterrupted(f"stopped by signal {signum} at step {step}")
                if c["time_limit"] and self._sync_flag(time.perf_counter() - t_start > c["time_limit"]):
                    self._info("stopped_early", f"time_limit={c['time_limit']}s reached at step {step}")
                    print(
                        f"[sri] time limit of {c['time_limit']} s reached at step {step}: finishing "
                        f"(rerun to continue from the checkpoint)",
                        file=sys.__stderr__,
                    )
                    break
        finally:
            bar.close()
            restore_handlers(old_handlers)

        self._check_divergence(nonfinite_total, step - start, final=True)
        final_path = self.run_dir / checkpoint_name(step)
        if not final_path.exists() or start < step:
            final_path = self.save(step)
        self._info("checkpoint", str(final_path))
        self._info("checkpoints", list(self._written or [str(final_path)]))
        metrics = self._final_eval(step)
        if self.rank == 0:
            self._save_samples(step)
        return {"step": step, "checkpoint": str(final_path), "run_dir": str(self.run_dir), "metrics": metrics}

    def _say(self, msg: str) -> None:
        """One line on the console (rank 0), outside the captured output's progress bars."""
        if self.rank == 0:
            print(f"[sri] {msg}", file=sys.__stderr__, flush=True)

    def _latest_readable_checkpoint(self) -> tuple[Path, dict[str, Any]] | None:
        """The newest checkpoint that loads; unreadable (e.g. truncated) newer ones are renamed to
        `<name>.corrupt` (kept, never deleted) and reported. None when no checkpoint is usable."""
        bad: list[str] = []
        found = None
        for _, path in reversed(list_checkpoints(self.run_dir)):
            try:
                ckpt = load_checkpoint(path, map_location=self.device, trust=self.trust_checkpoint)
                missing = [k for k in ("model_state", "optimizer_state", "gecos", "step", "rng") if k not in ckpt]
                if missing:
                    raise CheckpointCorrupt(f"checkpoint {path} lacks {missing}: not a complete sri checkpoint")
            except (CheckpointCorrupt, FileNotFoundError) as e:
                if self.rank == 0 and path.exists():
                    aside = set_aside(path)
                    bad.append(str(aside))
                    self._say(f"WARNING: {e}; renamed it to {aside.name} and falling back to the previous checkpoint")
                continue
            found = (path, ckpt)
            break
        if bad:
            self._info("corrupt_checkpoints", bad)
            if found is None:
                self._say(f"WARNING: no readable checkpoint left in {self.run_dir}: starting from step 0")
        return found

    def _archive_previous_run(self) -> None:
        """resume=False: move an earlier run's checkpoints and sample grids out of the way, into
        `archive/<timestamp>/` (never deleted, never resumed from, never pruned by this run)."""
        if self.rank == 0:
            dest = archive_previous_run(self.run_dir)
            if dest is not None:
                self._info("archived_previous_run", str(dest))
                self._say(
                    f"resume=False: moved the earlier run's checkpoints in {self.run_dir} to "
                    f"{dest} (kept, not resumed from)"
                )
        barrier(self.world)

    def _check_divergence(self, nonfinite: int, trained: int, *, final: bool) -> None:
        """TrainingDiverged once non-finite steps exceed `max_nonfinite_share` of the steps trained
        (checked from 20 steps on, and at the end); the run then ends FAILED instead of COMPLETED."""
        share = float(self.config["max_nonfinite_share"])
        if not nonfinite or share >= 1 or (trained < 20 and not final):
            return
        if nonfinite > share * max(trained, 1):
            self._info("diverged", f"{nonfinite} of {trained} steps non-finite")
            raise TrainingDiverged(
                f"{nonfinite} of {trained} training steps had a non-finite loss (more than "
                f"max_nonfinite_share={share:g}); the run diverged: lower lr=... (now "
                f"{self.config['lr']:g}) or check the data"
            )

    def _reload_last_good(self, initial: dict[str, Any], bad: int, reloads: int) -> None:
        """After `max_nonfinite` non-finite steps in a row, go back to the last good weights."""
        if reloads > 10:
            raise RuntimeError(
                f"the loss stayed non-finite after {reloads - 1} reloads of the last good "
                f"checkpoint; lower lr=... or check the data"
            )
        if self._last_good is not None and Path(self._last_good).exists():
            ckpt = load_checkpoint(self._last_good, map_location=self.device, trust=self.trust_checkpoint)
            source = str(self._last_good)
        else:
            ckpt, source = initial, "initial weights"
        # keep step, data position and RNG moving so that the same bad batches are not replayed
        self._load_states(ckpt, restore_rng=False)
        warnings.warn(f"{bad} non-finite losses in a row: reloaded {source} (reload {reloads})")
        self._info("nonfinite_reloads", reloads)

    def _guarded(self, fn, *args, **kw):
        """Run fn without disturbing the training RNG streams (evaluation, sampling)."""
        state = rng_state()
        model = unwrap_model(self.model)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                return fn(*args, **kw)
        finally:
            model.train(was_training)
            set_rng_state(state)

    def _set_goal(self, per_element: float, step: int) -> None:
        """Put a new per-element GECO goal in force (the goal schedule's next one)."""
        size = int(unwrap_model(self.model).image_size)
        for g in self.gecos.values():
            g.goal = float(per_element) * 3 * size * size
        self._scalar("geco_goal", per_element, step)
        self._say(f"step {step}: GECO goal -> {per_element:g} per element (geco_goal_schedule)")

    def _periodic_eval(self, step: int) -> None:
        if self.rank == 0:
            res = self._guarded(self.evaluate, unwrap_model(self.model), self.config["eval_metrics"], final=False)
            for k, v in res.items():
                self._scalar(f"eval_{k}", v, step)
        barrier(self.world)

    def _final_eval(self, step: int) -> dict[str, float]:
        """The paper's metrics for this table (`sri.evaluate.final_evaluation`, on rank 0): a metric
        that cannot run is skipped with a warning recorded in the run; the run still completes."""
        results: dict[str, float] = {}
        if self.rank == 0:
            results = final_evaluation(
                unwrap_model(self.model),
                self.config["final_metrics"],
                functools.partial(self.evaluate, final=True),
                num_order=self.config["num_order"],
                batch_size=self.config["eval_batch_size"],
                guard=self._guarded,
                logger=self.logger,
                step=step,
            )
        barrier(self.world)
        return results

    def _save_samples(self, step: int, n: int = 16) -> None:
        """A small PNG grid of samples (top) and their argmax slot masks (bottom) as an artifact."""
        model = unwrap_model(self.model)
        if self.rank != 0 or not hasattr(model, "sample"):
            return
        try:
            out = self._guarded(model.sample, n, generator=torch.Generator().manual_seed(0))
        except TypeError:
            out = self._guarded(model.sample, n)
        path = self.run_dir / samples_name(step)
        write_sample_grid(out.images, out.masks, path)
        self.logger.add_artifact(str(path), name=path.name)


def train(
    config: dict[str, Any],
    run: Any = None,
    *,
    logger: Logger | None = None,
    trainer_cls: type[Trainer] = Trainer,
    trust_checkpoint: bool = False,
) -> dict[str, Any]:
    """Train one run described by `config`; log through `logger` (or a Sacred-like `run`).

    `trust_checkpoint` allows resuming from an old-format checkpoint that needs a full unpickle.
    """
    return trainer_cls(config, logger=logger or as_logger(run), trust_checkpoint=trust_checkpoint).fit()
