"""Shared Sacred plumbing of the table scripts: config scope, named configs, observers, main.

Every hyper-parameter comes from `sri.configs` (the paper's values); this file only exposes them
as Sacred config entries so that any of them can be overridden with `with key=value`.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # running `python experiments/x.py` from a checkout
    sys.path.insert(0, str(ROOT))

import warnings  # noqa: E402

# sacred 0.8.7 imports pkg_resources (setup.cfg pins setuptools<81 for it); its deprecation
# warning says nothing actionable to a user
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
from sacred import Experiment  # noqa: E402

import sri.configs as C  # noqa: E402
from sri.tracking.observers import (  # noqa: E402
    MONGO_REQUIRED_ENV,
    SacredRunLogger,
    attach_observers,
    configure_capture,
    has_file_storage_arg,
    strip_mongo_args,
)


# Config scope shared by all tables (Sacred reads this function's body; no docstring, or it
# would become a config entry).
def table_config(table):
    preset = "paper"  # paper | smoke (tiny CPU run) | demo (the CPU demo recipe on synthetic blocks)
    row = C.default_row(table)  # a row of this table (see the named configs)
    dataset = C.default_dataset(table, preset)  # clevr6 | objects_room | shapestacks | blocks | shapes
    seed = 0
    _c = C.experiment_config(table, row, dataset, preset, seed)
    model = _c["model"]  # sri | genv2 | gen | emorl | sri_sa | sri_emorl
    image_size = _c["image_size"]  # 96 CLEVR6, else 64 (multiple of 16)
    num_slots = _c["num_slots"]  # K: 7 CLEVR6/Objects Room, 9 ShapeStacks
    model_options = C.experiment_config(table, row, dataset, preset, seed, image_size=image_size,
                                        num_slots=num_slots)["model_options"]
    data_root = _c["data_root"]  # converted datasets; None: $SRI_DATA or ./data (synthetic: in memory)
    data_options = _c["data_options"]  # extra build_dataset keywords (synthetic: num=)
    steps = _c["steps"]
    batch_size = _c["batch_size"]  # global batch (split over DDP processes)
    optimizer = _c["optimizer"]
    lr = _c["lr"]
    lr_warmup_steps = _c["lr_warmup_steps"]
    lr_decay_every = _c["lr_decay_every"]
    lr_decay_rate = _c["lr_decay_rate"]
    grad_clip = _c["grad_clip"]  # 0: no clipping
    geco_goal = _c["geco_goal"]  # per pixel and channel; x 3HW inside make_gecos
    geco_goal_schedule = _c["geco_goal_schedule"]  # later goals: [{"goal": g, "at_step": N | "after_reached": H}]
    geco_lr = _c["geco_lr"]
    geco_speedup = _c["geco_speedup"]
    geco_alpha = _c["geco_alpha"]
    device = _c["device"]  # auto | cpu | cuda | cuda:N
    amp = _c["amp"]  # False | "bf16"
    compile = _c["compile"]  # torch.compile the model
    num_workers = _c["num_workers"]
    checkpoint_every = _c["checkpoint_every"]
    keep_checkpoints = _c["keep_checkpoints"]  # 0: keep all
    # None: $SRI_RUNS_DIR or runs, then /checkpoints/table<t>/<row>/<dataset>/<preset>/seed<seed>
    run_dir = _c["run_dir"]
    resume = _c["resume"]  # continue from the latest checkpoint in run_dir
    max_nonfinite = _c["max_nonfinite"]  # non-finite losses in a row before reloading a checkpoint
    max_nonfinite_share = _c["max_nonfinite_share"]  # more non-finite steps than this share: the run fails
    log_every = _c["log_every"]
    eval_every = _c["eval_every"]  # 0: no periodic evaluation
    eval_metrics = _c["eval_metrics"]
    eval_num = _c["eval_num"]
    final_metrics = _c["final_metrics"]
    num_fid = _c["num_fid"]
    num_ari = _c["num_ari"]
    num_bpd = _c["num_bpd"]
    num_sacc = _c["num_sacc"]
    num_order = _c["num_order"]  # samples for the final order_consistency (0: skip)
    eval_batch_size = _c["eval_batch_size"]
    fid_feature_extractor = _c["fid_feature_extractor"]  # name or "module:Class" to register
    # FID's Inception weights file; None: $SRI_INCEPTION_WEIGHTS, else torch hub's checkpoints/
    inception_weights = None
    sample_every = _c["sample_every"]
    progress = _c["progress"]  # tqdm bar on a terminal (never in the captured output)
    time_limit = _c["time_limit"]  # seconds; finish early with checkpoint + evaluation (0: none)
    init_checkpoint = _c["init_checkpoint"]  # start a fresh run from these weights (the demo's demo_checkpoints/)
    sweep = None  # id of the `sri sweep` that launched this run (None: launched by hand)
    del _c


def plain(obj: Any) -> Any:
    """Sacred's read-only containers -> plain dicts and lists."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


# Config entries that label a run (recorded in its config and info) but are no training option.
LABEL_KEYS = ("sweep",)


def inception_weights(config: dict[str, Any]) -> Path | None:
    """The script-level `inception_weights` file (checked to exist), or None when not given."""
    path = config.get("inception_weights")
    if path is None:
        return None
    from sri.metrics.fid import resolve_inception_weights

    return resolve_inception_weights(path)


def check_config(config: dict[str, Any]) -> dict[str, Any]:
    """Reject bad input before the run starts: unknown row/dataset, invalid values, baselines,
    a missing `inception_weights` file. Returns the trainer's config (without script-only keys
    and labels such as `sweep`)."""
    inception_weights(config)
    config = {k: v for k, v in config.items() if k != "inception_weights" and k not in LABEL_KEYS}
    C.row_spec(config["table"], config["row"])
    C.check_dataset(config["dataset"])
    C.check_preset(config["preset"])
    cfg = C.validate_config(config)
    if cfg["model"] not in C.IMPLEMENTED_MODELS:
        raise NotImplementedError(
            f"table {cfg['table']} row {cfg['row']!r} uses model {cfg['model']!r}, which is not "
            f"implemented yet; implemented rows are those built on SRI/GENv2 (models "
            f"{', '.join(C.IMPLEMENTED_MODELS)})")
    return cfg


TRUST_FLAG = "--trust-checkpoint"
# set by run() from the command line: resume from an old-format checkpoint (a full unpickle)
TRUST_CHECKPOINT = False


def is_user_error(e: BaseException) -> bool:
    """Bad input or an unusable run folder: reported in one line, without a traceback."""
    from sri.checkpoint import CheckpointError, RunDirLocked, RunDirNotWritable
    from sri.data.errors import DataError
    from sri.metrics.fid import InceptionWeightsMissing
    from sri.tracking.file_observer import RunStoreWriteError
    from sri.train.trainer import TrainingDiverged

    return isinstance(e, (C.ConfigError, NotImplementedError, RunDirLocked, RunDirNotWritable,
                          CheckpointError, InceptionWeightsMissing, DataError, RunStoreWriteError,
                          TrainingDiverged))


class TableExperiment(Experiment):
    """A Sacred Experiment whose user errors end the command with `error: ...` and exit status 2."""

    def run(self, *args: Any, **kw: Any) -> Any:
        try:
            return super().run(*args, **kw)
        except Exception as e:  # noqa: BLE001 - re-raised unless it is a user error
            if not is_user_error(e):
                raise
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)


def table_help(table: int, script_doc: str | None) -> str:
    """`--help` text of a table script: its docstring, then the rows and an example."""
    spec = C.table_spec(table)
    lines = [(script_doc or spec["name"]).strip(), "", "Rows (`with row=<name>`, or just `with <name>`):"]
    for name, row in spec["rows"].items():
        mark = "" if row["model"] in C.IMPLEMENTED_MODELS else "  (baseline, not implemented)"
        default = "  [default]" if name == spec["default_row"] else ""
        lines.append(f"  {name:<12} {row['label']}{default}{mark}")
    lines += ["", f"Datasets: {', '.join(spec['datasets'])} (paper); presets: "
                  f"{', '.join(C.PRESETS)}.",
              f"Example: python experiments/{spec['name']}.py with smoke {spec['default_row']} steps=20",
              f"Add {TRUST_FLAG} to resume from an old-format checkpoint (loading one can run code "
              f"stored in it: only for files you trust)."]
    # Sacred passes the text through docopt: braces are fine, but keep it plain
    return "\n".join(lines) + "\n"


def preflight(cfg: dict[str, Any]) -> None:
    """Before a run is recorded: its checkpoint folder is writable and no other process trains
    into it (the trainer holds the lock for the whole run; this only fails early)."""
    if int(os.environ.get("RANK", "0")) != 0:
        return
    from sri.checkpoint import RunDirLock, check_writable

    run_dir = Path(cfg["run_dir"] or C.default_run_dir(cfg))
    check_writable(run_dir)
    RunDirLock(run_dir).acquire().release()


def make_experiment(table: int, script_globals: dict[str, Any] | None = None) -> Experiment:
    """The Sacred Experiment of one paper table, with row/dataset/preset named configs.

    `script_globals` (default: the caller's globals) name the table script: its docstring heads
    `--help` and it is recorded as the run's main file.
    """
    spec = C.table_spec(table)
    script_globals = sys._getframe(1).f_globals if script_globals is None else script_globals
    ex = TableExperiment(spec["name"], base_dir=str(ROOT / "experiments"))
    script = script_globals.get("__file__")
    if script and Path(script).resolve().parent == ROOT / "experiments":
        from sacred.dependencies import gather_sources_and_dependencies

        main, sources, deps = gather_sources_and_dependencies(script_globals, ex.save_git_info,
                                                             ex.base_dir)
        ex.mainfile = main
        ex.sources |= sources
        ex.dependencies |= deps
    ex.doc = table_help(table, script_globals.get("__doc__") if script else None)
    configure_capture(ex)
    ex.add_config(table=int(table))
    ex.config(table_config)
    for row in spec["rows"]:
        ex.add_named_config(row, {"row": row})
    for ds in C.DATASETS:
        ex.add_named_config(ds, {"dataset": ds})
    for preset in C.PRESETS:
        ex.add_named_config(preset, {"preset": preset})

    @ex.config_hook
    def _validate(config, command_name, logger):  # noqa: ARG001
        if command_name == "main":
            preflight(check_config(plain(config)))
        return {}

    @ex.main
    def main(_config, _run):
        from sri.train.trainer import train

        weights = inception_weights(plain(_config))
        if weights is not None:
            # FID reads this variable when it builds the Inception extractor (sri.metrics.fid)
            from sri.metrics.fid import WEIGHTS_ENV

            os.environ[WEIGHTS_ENV] = str(weights)
        config = check_config(plain(_config))
        if _config.get("sweep") is not None:
            _run.info["sweep"] = _config["sweep"]
        from sri.tracking.file_observer import raise_if_store_failed

        result = train(config, logger=SacredRunLogger(_run), trust_checkpoint=TRUST_CHECKPOINT)
        _run._emit_heartbeat()  # write the last metrics now, so that a failed write fails this run
        raise_if_store_failed(_run.observers)
        return result

    return ex


NO_RUN_COMMANDS = {"print_config", "print_dependencies", "print_named_configs", "save_config", "help",
                   "-h", "--help", "-u", "--unobserved"}


def _file_storage_arg(argv: list[str]) -> str | None:
    """The folder of Sacred's `-F DIR` / `--file_storage[=]DIR`, if given."""
    for i, a in enumerate(argv):
        if a in ("-F", "--file_storage") and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--file_storage="):
            return a.split("=", 1)[1]
    return None


def run(ex: Experiment, argv: list[str] | None = None) -> Any:
    """Attach observers (MongoDB via -m/$SRI_MONGO_URL, else the file store `runs/`) and run."""
    global TRUST_CHECKPOINT
    argv = list(sys.argv if argv is None else argv)
    argv, mongo = strip_mongo_args(argv)
    if TRUST_FLAG in argv:  # ours, not Sacred's: resume from an old-format checkpoint
        argv = [a for a in argv if a != TRUST_FLAG]
        TRUST_CHECKPOINT = True
    if int(os.environ.get("RANK", "0")) != 0:  # DDP: only rank 0 observes (also ignores -F)
        return ex.run_commandline([*argv, "--unobserved"])
    file_dir = None if has_file_storage_arg(argv) else os.environ.get("SRI_RUNS_DIR", "runs")
    store = file_dir if file_dir is not None else _file_storage_arg(argv)
    if store and not mongo and not os.environ.get("SRI_MONGO_URL") and not set(argv) & NO_RUN_COMMANDS:
        from sri.checkpoint import RunDirNotWritable, check_writable

        try:
            check_writable(store, need_bytes=1 << 20, what="runs")
        except RunDirNotWritable as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
    try:
        # sweeps hand the URL over in $SRI_MONGO_URL (never on the command line) and ask for it strictly
        required = mongo is not None or os.environ.get(MONGO_REQUIRED_ENV) == "1"
        attach_observers(ex, mongo_url=mongo, file_dir=file_dir, required=required)
    except ConnectionError as e:  # MongoDB asked for with -m but unusable, or bad credentials
        from sri.credentials import redact

        print(f"error: {redact(str(e))}", file=sys.stderr)
        sys.exit(2)
    return ex.run_commandline(argv)
