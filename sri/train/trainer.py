"""The training loop: device, DDP, AMP, checkpoints with exact resume, NaN guard, progress, evaluation.

`train(config, run=...)` is what the Sacred scripts call; it never imports Sacred. Progress and
results go through a small `logger` object (`log_scalar`, `set_info`, `add_artifact`).
Data order is a pure function of (seed, step), so a run of 2N steps equals N steps + resume + N
steps bit for bit on CPU.
"""
from __future__ import annotations

import copy
import functools
import math
import os
import random
import re
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Iterator, Protocol

import numpy as np
import torch
import torch.distributed as dist

from sri.checkpoint import (CheckpointCorrupt, RunDirLock, RunDirNotWritable, check_writable,
                            load_checkpoint, save_checkpoint, write_error_reason)
from sri.configs import ConfigError, DATASETS, default_run_dir, validate_config
from sri.train.runtime import tune_cpu_allocator

CKPT_RE = re.compile(r"^ckpt_(\d{8,})\.pt$")
SAMPLES_RE = re.compile(r"^samples_(\d{8,})\.png$")
ARCHIVE_DIR = "archive"  # resume=False moves an earlier run's checkpoints to archive/<timestamp>/


# ---------------------------------------------------------------------------------------------
# Logging callbacks
# ---------------------------------------------------------------------------------------------
class Logger(Protocol):
    """What the trainer reports to (the Sacred side adapts `_run` to this)."""

    def log_scalar(self, name: str, value: float, step: int) -> None: ...
    def set_info(self, key: str, value: Any) -> None: ...
    def add_artifact(self, path: str, name: str | None = None) -> None: ...


class NullLogger:
    """Discards everything; the default outside Sacred."""

    def log_scalar(self, name: str, value: float, step: int) -> None:
        pass

    def set_info(self, key: str, value: Any) -> None:
        pass

    def add_artifact(self, path: str, name: str | None = None) -> None:
        pass


class MemoryLogger(NullLogger):
    """Keeps scalars, info and artifact paths in dicts (handy in notebooks and tests)."""

    def __init__(self) -> None:
        self.scalars: dict[str, list[tuple[int, float]]] = {}
        self.info: dict[str, Any] = {}
        self.artifacts: list[str] = []

    def log_scalar(self, name: str, value: float, step: int) -> None:
        self.scalars.setdefault(name, []).append((int(step), float(value)))

    def set_info(self, key: str, value: Any) -> None:
        self.info[key] = value

    def add_artifact(self, path: str, name: str | None = None) -> None:
        self.artifacts.append(str(path))


class RunLogger(NullLogger):
    """Duck-typed adapter for an object with `log_scalar`, an `info` dict and `add_artifact`."""

    def __init__(self, run: Any) -> None:
        self.run = run

    def log_scalar(self, name: str, value: float, step: int) -> None:
        self.run.log_scalar(name, float(value), int(step))

    def set_info(self, key: str, value: Any) -> None:
        self.run.info[key] = value

    def add_artifact(self, path: str, name: str | None = None) -> None:
        self.run.add_artifact(str(path), name=name)


def as_logger(run: Any) -> Logger:
    """A Logger for `run`: itself if it already is one, an adapter for a Sacred-like run, or a no-op."""
    if run is None:
        return NullLogger()
    if all(hasattr(run, m) for m in ("log_scalar", "set_info", "add_artifact")):
        return run
    if hasattr(run, "log_scalar") and hasattr(run, "info"):
        return RunLogger(run)
    raise TypeError(f"cannot log to {type(run).__name__}: need log_scalar/set_info/add_artifact")


# ---------------------------------------------------------------------------------------------
# Helpers: devices, RNG, data order
# ---------------------------------------------------------------------------------------------
def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """'auto' -> cuda:<local_rank> when CUDA is available, else cpu; anything else as given."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} but CUDA is not available here; use device=cpu or auto")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device(f"cuda:{local_rank}")
    return dev


def rng_state() -> dict[str, Any]:
    """Every RNG the training loop touches: torch (CPU), CUDA, numpy, python.

    Only tensors, numbers, strings, lists and tuples, so that a checkpoint holding it loads with
    `torch.load(weights_only=True)` (numpy's state is stored as a tensor, not a pickled array).
    """
    kind, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    numpy_state = {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                   "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(gauss)}
    state = {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    torch.set_rng_state(state["torch"].cpu() if hasattr(state["torch"], "cpu") else state["torch"])
    npst = state["numpy"]
    if isinstance(npst, dict):  # the safe format written by rng_state
        keys = npst["keys"].cpu().numpy() if hasattr(npst["keys"], "cpu") else np.asarray(npst["keys"])
        npst = (npst["kind"], keys.astype(np.uint32), int(npst["pos"]), int(npst["has_gauss"]),
                float(npst["cached_gaussian"]))
    np.random.set_state(npst)
    py = state["python"]
    # a list after a round trip through some serialisers; random.setstate needs tuples
    random.setstate((py[0], tuple(py[1]), py[2]) if isinstance(py, list) else py)
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class StepBatchSampler(torch.utils.data.Sampler):
    """Yields this rank's share of the global batch for steps `start, start+1, …`.

    Epoch e is a permutation seeded by (seed, e); global batch j of an epoch is its slice
    [j*B, (j+1)*B); rank r of W takes positions [r*B/W, (r+1)*B/W) of it. The order is a pure
    function of (seed, step), which makes resume exact.
    """

    def __init__(self, num_items: int, global_batch: int, seed: int, start_step: int = 0,
                 rank: int = 0, world_size: int = 1, stop_step: int | None = None) -> None:
        if num_items < global_batch:
            raise ConfigError(f"the dataset has {num_items} items, fewer than batch_size={global_batch}")
        if global_batch % world_size:
            raise ConfigError(f"batch_size={global_batch} is not divisible by the {world_size} processes")
        self.n, self.b, self.seed = num_items, global_batch, seed
        self.start, self.stop = start_step, stop_step
        self.rank, self.world = rank, world_size
        self.per_epoch = num_items // global_batch
        self._perm_epoch, self._perm = -1, None

    def indices(self, step: int) -> list[int]:
        """This rank's item indices for a global step."""
        epoch, j = divmod(step, self.per_epoch)
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(int(self.seed) * 1_000_003 + epoch)
            self._perm, self._perm_epoch = torch.randperm(self.n, generator=g), epoch
        local = self.b // self.world
        lo = j * self.b + self.rank * local
        return self._perm[lo:lo + local].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start
        while self.stop is None or step < self.stop:
            yield self.indices(step)
            step += 1

    def __len__(self) -> int:
        if self.stop is None:
            raise TypeError("infinite sampler")
        return max(0, self.stop - self.start)


def lr_factor(step: int, warmup: int, decay_every: int, decay_rate: float) -> float:
    """Linear warm-up over `warmup` steps, then x`decay_rate` every `decay_every` steps."""
    f = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    if decay_every > 0:
        f *= decay_rate ** (step // decay_every)
    return f


def list_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """(step, path) of the checkpoints in a run directory, oldest first."""
    d = Path(run_dir)
    if not d.is_dir():
        return []
    out = []
    for p in d.iterdir():
        m = CKPT_RE.match(p.name)
        if m:
            out.append((int(m.group(1)), p))
    return sorted(out)


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, torch.nn.Module):
            return model
        model = inner


class _DDP(torch.nn.parallel.DistributedDataParallel):
    """DDP that forwards unknown attributes (`name`, `options`, `sample`, …) to the model."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def _allreduce_update(original, device: torch.device, err: Any) -> None:
    """GECO.update with the error averaged over ranks, so every rank keeps the same GECO state."""
    e = float(err.detach()) if isinstance(err, torch.Tensor) else float(err)
    t = torch.tensor([e], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    original(float(t.item()) / dist.get_world_size())


class TrainingInterrupted(KeyboardInterrupt):
    """Raised after SIGTERM/SIGINT once the checkpoint is written."""


# ---------------------------------------------------------------------------------------------
# Trainer
# ---------------------------------------------------------------------------------------------
class Trainer:
    """One training run described by a flat config (see `sri.configs.TRAIN_DEFAULTS`).

    Subclasses may override `build_model`, `build_dataset`, `make_gecos`, `train_step` and
    `evaluate` (e.g. to plug in a custom model).
    """

    def __init__(self, config: dict[str, Any], logger: Logger | None = None, *,
                 trust_checkpoint: bool = False) -> None:
        self.config = validate_config(config)
        self.logger: Logger = logger or NullLogger()
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
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
                f"implemented yet ({e}); implemented models: sri, genv2") from None

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
        """`sri.evaluate.evaluate` with the paper's protocol (final) or small sizes (periodic)."""
        from sri.evaluate import evaluate

        c = self.config
        if final:
            sizes = {"num_fid": c["num_fid"], "num_ari": c["num_ari"], "num_bpd": c["num_bpd"],
                     "num_sacc": c["num_sacc"]}
        else:
            sizes = {k: c["eval_num"] for k in ("num_fid", "num_ari", "num_bpd", "num_sacc")}
        # evaluate sizes synthetic splits itself; pass only the other data options
        data_kw = {k: v for k, v in c["data_options"].items() if k != "num"}
        return evaluate(model, dataset=c["dataset"], root=self.data_root(), metrics=tuple(metrics),
                        device=self.device, batch_size=c["eval_batch_size"],
                        feature_extractor=feature_extractor_name(c["fid_feature_extractor"]),
                        progress=self._tty(), dataset_kwargs=data_kw or None, **sizes)

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
        model = _unwrap(self.model)
        rng = rng_state()
        if self.world > 1:
            ranks: list[Any] = [None] * self.world
            dist.all_gather_object(ranks, rng)
            rng = dict(rng, ranks=ranks)
        return {
            "model_name": getattr(model, "name", self.config["model"]),
            "model_options": copy.deepcopy(getattr(model, "options", self.config["model_options"])),
            "model_state": model.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "gecos": {k: g.state_dict() for k, g in self.gecos.items()},
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
        path = self.run_dir / f"ckpt_{step:08d}.pt"
        if self.rank == 0:
            try:
                save_checkpoint(path, state)
            except OSError as e:
                raise RunDirNotWritable(f"cannot write checkpoints to {self.run_dir}: "
                                        f"{write_error_reason(e)}") from None
            mine = [w for w in self._written if w != str(path)] + [str(path)]
            mine.sort(key=lambda w: int(CKPT_RE.match(Path(w).name).group(1)))
            keep = self.config["keep_checkpoints"]
            if keep > 0:
                for old in mine[:-keep]:
                    if self._last_good is not None and old == str(self._last_good) and not good:
                        continue
                    Path(old).unlink(missing_ok=True)
                    mine.remove(old)
            self._written = mine
            self._info("checkpoint", str(path))
            self._info("checkpoints", list(self._written))
        if good:
            self._last_good = path
        if self.world > 1:
            dist.barrier()
        return path

    def _load_states(self, ckpt: dict[str, Any], *, restore_rng: bool) -> None:
        _unwrap(self.model).load_state_dict(ckpt["model_state"])
        self.optimizer.load_state_dict(ckpt["optimizer_state"])
        for k, g in self.gecos.items():
            if k in ckpt["gecos"]:
                g.load_state_dict(ckpt["gecos"][k])
        if restore_rng:
            rng = ckpt["rng"]
            if self.world > 1 and "ranks" in rng and len(rng["ranks"]) == self.world:
                rng = rng["ranks"][self.rank]
            set_rng_state(rng)

    def _init_from(self, path: Path) -> int:
        """Start from the weights, GECO states (and optimizer state, if stored) of `path`; its step."""
        ckpt = load_checkpoint(path, map_location=self.device)  # weights_only: safe
        model = _unwrap(self.model)
        if ckpt.get("model_name") != getattr(model, "name", None) or ckpt.get("model_options") != model.options:
            raise ConfigError(f"init_checkpoint {path} holds model {ckpt.get('model_name')} "
                              f"{ckpt.get('model_options')}, not this run's {getattr(model, 'name', None)} "
                              f"{model.options}; use a checkpoint of the same model and options")
        ref = model.state_dict()
        model.load_state_dict({k: v.to(ref[k].dtype) for k, v in ckpt["model_state"].items()})
        if ckpt.get("optimizer_state"):
            self.optimizer.load_state_dict(ckpt["optimizer_state"])
        for k, g in self.gecos.items():
            if k in ckpt.get("gecos", {}):
                # only the state: goal, step size and the rest come from this run's config, so
                # that a run can continue a checkpoint with another GECO goal
                g.load_state_dict({key: ckpt["gecos"][k][key] for key in ("beta", "err_ema")
                                   if key in ckpt["gecos"][k]})
        step = int(ckpt.get("step", 0))
        self._info("initialised_from", {"path": str(path), "step": step})
        self._say(f"starting from {path} (step {step})")
        return step

    def _check_compatible(self, ckpt: dict[str, Any], path: Path) -> None:
        c = self.config
        theirs = ckpt.get("config", {})
        model = _unwrap(self.model)
        mine_opts = getattr(model, "options", c["model_options"])
        if ckpt.get("model_name") != getattr(model, "name", c["model"]) or ckpt.get("model_options") != mine_opts:
            raise ConfigError(f"{path} holds a different model ({ckpt.get('model_name')} "
                              f"{ckpt.get('model_options')}) than this run; pass resume=False to "
                              f"start over or run_dir=... for a new folder")
        for key in ("seed", "batch_size", "dataset"):
            if key in theirs and theirs[key] != c[key]:
                raise ConfigError(f"{path} was written with {key}={theirs[key]!r} but this run has "
                                  f"{key}={c[key]!r}; resume needs the same value (or resume=False)")

    # ---- signals ---------------------------------------------------------------------------
    def _install_signals(self) -> dict[int, Any]:
        old: dict[int, Any] = {}
        if threading_is_main():
            def handler(signum, frame):  # noqa: ARG001
                self._stop_signal = signum
            for sig in (signal.SIGTERM, signal.SIGINT):
                old[sig] = signal.signal(sig, handler)
        return old

    def _should_stop(self) -> bool:
        return self._sync_flag(self._stop_signal is not None)

    def _sync_flag(self, flag: bool) -> bool:
        """True on every rank when it is true on any rank (so all ranks stop at the same step)."""
        if self.world > 1:
            t = torch.tensor([1.0 if flag else 0.0], device=self.device)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            flag = bool(t.item() > 0)
        return flag

    # ---- main ------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        """Train to `steps` (resuming if possible), evaluate, and return a small result dict."""
        c = self.config
        own_pg = False
        if self.world > 1 and not dist.is_initialized():
            dev = resolve_device(c["device"], self.local_rank)
            dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
            own_pg = True
        try:
            if self.rank == 0:
                # fail at the start, not at the first checkpoint: folder usable, nobody else in it
                check_writable(self.run_dir)
                self._lock = RunDirLock(self.run_dir).acquire()
            return self._fit()
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None
            if own_pg and dist.is_initialized():
                dist.destroy_process_group()

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
        initial = {"model_state": copy.deepcopy(model.state_dict()),
                   "optimizer_state": copy.deepcopy(self.optimizer.state_dict()),
                   "gecos": {k: g.state_dict() for k, g in self.gecos.items()}}

        if self.rank == 0:  # room for a checkpoint, its atomic replacement and the kept ones
            ckpt_bytes = 3 * sum(t.numel() * t.element_size() for t in model.state_dict().values())
            check_writable(self.run_dir, need_bytes=2 * ckpt_bytes + (1 << 20))

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
                    self._say(f"steps={c['steps']} is not above the checkpoint's step {start}: nothing "
                              f"will be trained (pass a larger steps=... to continue); evaluating the "
                              f"checkpoint as it is")
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
            step_model = _DDP(step_model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                              find_unused_parameters=True)
            for g in self.gecos.values():
                g.update = functools.partial(_allreduce_update, g.update, self.device)
        amp_dtype = torch.bfloat16 if c["amp"] in ("bf16", True) else None
        step_kw = {"amp_dtype": amp_dtype, "grad_clip": c["grad_clip"] or None}

        sampler = StepBatchSampler(len(self.dataset), c["batch_size"], c["seed"], start, self.rank,
                                   self.world, stop_step=c["steps"])
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_sampler=sampler, num_workers=c["num_workers"],
            pin_memory=self.device.type == "cuda",
            # own generator: creating the iterator must not consume the global torch RNG
            generator=torch.Generator().manual_seed(c["seed"]))

        from tqdm.auto import tqdm

        bar = tqdm(total=c["steps"], initial=start, file=sys.__stderr__, disable=not self._tty(),
                   dynamic_ncols=True, desc=f"{c['model']} t{c['table']}/{c['row']}/{c['dataset']}")
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
                    group["lr"] = c["lr"] * lr_factor(step, c["lr_warmup_steps"], c["lr_decay_every"],
                                                      c["lr_decay_rate"])
                out = self.train_step(step_model, {"image": images}, self.optimizer, self.gecos, **step_kw)
                step += 1
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
                    print(f"[sri] received signal {signum}: checkpoint written at step {step} to "
                          f"{self.run_dir}; rerun the same command to resume", file=sys.__stderr__)
                    raise TrainingInterrupted(f"stopped by signal {signum} at step {step}")
                if c["time_limit"] and self._sync_flag(time.perf_counter() - t_start > c["time_limit"]):
                    self._info("stopped_early", f"time_limit={c['time_limit']}s reached at step {step}")
                    print(f"[sri] time limit of {c['time_limit']} s reached at step {step}: finishing "
                          f"(rerun to continue from the checkpoint)", file=sys.__stderr__)
                    break
        finally:
            bar.close()
            for sig, h in old_handlers.items():
                signal.signal(sig, h)

        final_path = self.run_dir / f"ckpt_{step:08d}.pt"
        if not final_path.exists() or start < step:
            final_path = self.save(step)
        self._info("checkpoint", str(final_path))
        self._info("checkpoints", list(self._written or [str(final_path)]))
        metrics = self._final_eval(step)
        if self.rank == 0:
            self._save_samples(step)
        return {"step": step, "checkpoint": str(final_path), "run_dir": str(self.run_dir),
                "metrics": metrics}

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
                missing = [k for k in ("model_state", "optimizer_state", "gecos", "step", "rng")
                           if k not in ckpt]
                if missing:
                    raise CheckpointCorrupt(f"checkpoint {path} lacks {missing}: not a complete sri "
                                            f"checkpoint")
            except (CheckpointCorrupt, FileNotFoundError) as e:
                if self.rank == 0 and path.exists():
                    aside = path.with_name(path.name + ".corrupt")
                    n = 1
                    while aside.exists():
                        aside, n = path.with_name(f"{path.name}.corrupt{n}"), n + 1
                    os.replace(path, aside)
                    bad.append(str(aside))
                    self._say(f"WARNING: {e}; renamed it to {aside.name} and falling back to the "
                              f"previous checkpoint")
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
            old = [p for _, p in list_checkpoints(self.run_dir)]
            old += [p for p in self.run_dir.iterdir() if SAMPLES_RE.match(p.name)] if old else []
            if old:
                base = self.run_dir / ARCHIVE_DIR / time.strftime("%Y%m%d-%H%M%S")
                dest, n = base, 1
                while dest.exists():
                    dest, n = base.with_name(f"{base.name}-{n}"), n + 1
                dest.mkdir(parents=True)
                for p in old:
                    os.replace(p, dest / p.name)
                self._info("archived_previous_run", str(dest))
                self._say(f"resume=False: moved the earlier run's checkpoints in {self.run_dir} to "
                          f"{dest} (kept, not resumed from)")
        if self.world > 1:
            dist.barrier()

    def _reload_last_good(self, initial: dict[str, Any], bad: int, reloads: int) -> None:
        """After `max_nonfinite` non-finite steps in a row, go back to the last good weights."""
        if reloads > 10:
            raise RuntimeError(f"the loss stayed non-finite after {reloads - 1} reloads of the last good "
                               f"checkpoint; lower lr=... or check the data")
        if self._last_good is not None and Path(self._last_good).exists():
            ckpt = load_checkpoint(self._last_good, map_location=self.device,
                                   trust=self.trust_checkpoint)
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
        model = _unwrap(self.model)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                return fn(*args, **kw)
        finally:
            model.train(was_training)
            set_rng_state(state)

    def _periodic_eval(self, step: int) -> None:
        if self.rank == 0:
            res = self._guarded(self.evaluate, _unwrap(self.model), self.config["eval_metrics"], final=False)
            for k, v in res.items():
                self._scalar(f"eval_{k}", v, step)
        if self.world > 1:
            dist.barrier()

    def _final_eval(self, step: int) -> dict[str, float]:
        """The paper's metrics for this table. A metric that cannot run (torch-fidelity or the
        Inception weights missing, an error inside one metric) is skipped with a warning that is
        printed and recorded in the run (`info["metrics_skipped"]`); every other metric is still
        computed and logged, and the run still completes."""
        metrics = list(self.config["final_metrics"])
        results: dict[str, float] = {}
        skipped: dict[str, str] = {}

        def attempt(names: list[str], fn, *args, **kw) -> dict[str, float] | None:
            try:
                return self._guarded(fn, *args, **kw)
            except Exception as e:  # noqa: BLE001 - one metric must not sink the finished run
                reason = (e.args[0] if isinstance(e, KeyError) and e.args else str(e)) or type(e).__name__
                for name in names:
                    skipped[name] = f"{type(e).__name__}: {reason}"
                    print(f"[sri] WARNING: {name} skipped: {skipped[name]}", file=sys.stderr)
                return None

        if self.rank == 0 and metrics:
            model = _unwrap(self.model)
            others = [m for m in metrics if m != "fid"]
            if others:
                # all together (they share data passes); one by one if that fails
                got = attempt(others, self.evaluate, model, others, final=True) if len(others) > 1 else None
                if got is None:
                    skipped.clear()
                    for m in others:
                        got_one = attempt([m], self.evaluate, model, [m], final=True)
                        results.update(got_one or {})
                else:
                    results.update(got)
            if "fid" in metrics:
                results.update(attempt(["fid"], self.evaluate, model, ["fid"], final=True) or {})
                if "fid" in skipped:
                    self._info("fid_skipped", skipped["fid"])
            n_order = self.config["num_order"]
            if n_order and hasattr(model, "sample"):
                from sri.metrics.order import order_consistency_from_model

                oc = attempt(["order_consistency"], order_consistency_from_model, model,
                             num_samples=n_order, batch_size=self.config["eval_batch_size"], seed=0)
                if oc is not None:
                    results["order_consistency"] = oc["order_consistency"]
            if skipped:
                self._info("metrics_skipped", dict(skipped))
            for k, v in results.items():
                self._scalar(k, v, step)
            self._info("final_metrics", {k: float(v) for k, v in results.items()})
        if self.world > 1:
            dist.barrier()
        return {k: float(v) for k, v in results.items()}

    def _save_samples(self, step: int, n: int = 16) -> None:
        """A small PNG grid of samples (top) and their argmax slot masks (bottom) as an artifact."""
        model = _unwrap(self.model)
        if self.rank != 0 or not hasattr(model, "sample"):
            return
        try:
            out = self._guarded(model.sample, n, generator=torch.Generator().manual_seed(0))
        except TypeError:
            out = self._guarded(model.sample, n)
        path = self.run_dir / f"samples_{step:08d}.png"
        write_sample_grid(out.images, out.masks, path)
        self.logger.add_artifact(str(path), name=f"samples_{step:08d}.png")


def feature_extractor_name(spec: str) -> str:
    """A registered FID feature-extractor name; "pkg.module:Class" is imported and registered first."""
    if ":" not in spec:
        return spec
    import importlib

    from sri.metrics import register_feature_extractor
    from sri.metrics.fid import torch_fidelity_api

    module, cls_name = spec.split(":", 1)
    if spec not in torch_fidelity_api().registry:
        try:
            cls = getattr(importlib.import_module(module), cls_name)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"fid_feature_extractor={spec!r}: cannot import {cls_name} from "
                              f"{module} ({e})") from None
        register_feature_extractor(spec, cls)
    return spec


def threading_is_main() -> bool:
    """True in the main thread (only there can signal handlers be installed)."""
    import threading

    return threading.current_thread() is threading.main_thread()


PALETTE = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                    [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212],
                    [0, 128, 128], [220, 190, 255]], dtype=np.uint8)


def mask_colors(masks: torch.Tensor) -> np.ndarray:
    """Argmax over slots of masks [n,K,1,H,W] -> colour images uint8 [n,H,W,3]."""
    idx = masks.float().squeeze(2).argmax(1).cpu().numpy()
    return PALETTE[idx % len(PALETTE)]


def write_sample_grid(images: torch.Tensor, masks: torch.Tensor | None, path: str | os.PathLike,
                      cols: int = 8) -> Path:
    """Save images [n,3,H,W] in [0,1] (and their slot masks below) as one PNG."""
    from PIL import Image

    imgs = (images.detach().float().clamp(0, 1).cpu().permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    rows = [imgs]
    if masks is not None:
        rows.append(mask_colors(masks))
    n, h, w, _ = imgs.shape
    cols = min(cols, n)
    nrow = math.ceil(n / cols)
    canvas = np.full((len(rows) * nrow * (h + 2), cols * (w + 2), 3), 255, dtype=np.uint8)
    for r, block in enumerate(rows):
        for i in range(n):
            y = (r * nrow + i // cols) * (h + 2)
            x = (i % cols) * (w + 2)
            canvas[y:y + h, x:x + w] = block[i]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).save(path)
    return path


def train(config: dict[str, Any], run: Any = None, *, logger: Logger | None = None,
          trainer_cls: type[Trainer] = Trainer, trust_checkpoint: bool = False) -> dict[str, Any]:
    """Train one run described by `config`; log through `logger` (or a Sacred-like `run`).

    `trust_checkpoint` allows resuming from an old-format checkpoint that needs a full unpickle.
    """
    return trainer_cls(config, logger=logger or as_logger(run), trust_checkpoint=trust_checkpoint).fit()
