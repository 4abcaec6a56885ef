"""The paper's hyper-parameters per table, row and dataset, as plain dicts (no Sacred here).

`experiment_config(table, row, dataset, preset)` returns the full flat config of one run, which
`sri.train.trainer.train` consumes and the Sacred scripts in `experiments/` expose key by key.
Sources: paper appendix A.4 and the authors' SRI release (GECO targets and sigmas). Values we had to
choose ourselves are marked
"(our choice)" in the comments.
"""
from __future__ import annotations

import copy
import math
from typing import Any

from sri.data import REAL, SYNTHETIC
from sri.metrics.names import METRICS
from sri.models.registry import IMPLEMENTED, model_spec


class ConfigError(ValueError):
    """A bad experiment configuration (unknown row/dataset/option or an invalid value)."""


# ---------------------------------------------------------------------------------------------
# Datasets: image size and number of slots K (paper Section 5 "Setup", appendix A.4.1).
# ---------------------------------------------------------------------------------------------
DATASETS: dict[str, dict[str, Any]] = {
    "clevr6": {"image_size": 96, "num_slots": 7, "synthetic": False},
    "objects_room": {"image_size": 64, "num_slots": 7, "synthetic": False},
    "shapestacks": {"image_size": 64, "num_slots": 9, "synthetic": False},
    # built-in synthetic data (generated on the fly when data_root is None); K is our choice
    "blocks": {"image_size": 64, "num_slots": 5, "synthetic": True},
    "shapes": {"image_size": 64, "num_slots": 5, "synthetic": True},
}
REAL_DATASETS = REAL  # the one list of dataset names is sri.data's
SYNTHETIC_DATASETS = SYNTHETIC

# Models that `sri.models.build_model` implements today (the registry is the one source).
IMPLEMENTED_MODELS = IMPLEMENTED

# ---------------------------------------------------------------------------------------------
# Likelihood families (appendix A.4.2; the targets are the authors' release's).
# goal = per-pixel-and-channel GECO target; normalized = with the -0.5 log 2pi term.
# ---------------------------------------------------------------------------------------------


def _family(family: str, dataset: str) -> dict[str, Any]:
    """Likelihood, sigma and GECO target of a model family on a dataset."""
    if family == "G":  # GENv2-based, unnormalised Gaussian, sigma 0.7
        return {"likelihood": "gaussian", "normalized": False, "pixel_std": 0.7,
                "geco_goal": -0.356 if dataset == "clevr6" else -0.353}
    if family == "MoG":  # GENv2-based, normalised MoG, sigma 0.7 (target 0.5655)
        if dataset == "clevr6":
            # "To train GENv2-MoG on CLEVR6 we had to lower the standard deviation to 0.1 ...
            # target -2.265": that target is only reachable without the normalising constant.
            return {"likelihood": "mog", "normalized": False, "pixel_std": 0.1, "geco_goal": -2.265}
        return {"likelihood": "mog", "normalized": True, "pixel_std": 0.7, "geco_goal": 0.5655}
    if family == "EMORL":  # EMORL-based, unnormalised Gaussian, sigma 0.1
        return {"likelihood": "gaussian", "normalized": False, "pixel_std": 0.1, "geco_goal": -2.265}
    raise ConfigError(f"unknown likelihood family {family!r}")


# ---------------------------------------------------------------------------------------------
# Optimisation (appendix A.4.1): GENv2-based vs EMORL-based.
# ---------------------------------------------------------------------------------------------
# the optimisation recipe of each code base a row builds on; `steps_by_dataset` overrides `steps`
OPTIM_BASES: dict[str, dict[str, Any]] = {
    "genv2": {"optimizer": "adam", "lr": 1e-4, "lr_warmup_steps": 0, "lr_decay_every": 0,
              "lr_decay_rate": 1.0, "grad_clip": 0.0, "batch_size": 32,
              # 500K steps; on CLEVR6 training was stopped at 425K (appendix A.4.3)
              "steps": 500_000, "steps_by_dataset": {"clevr6": 425_000}},
    "emorl": {"optimizer": "adam", "lr": 4e-4, "lr_warmup_steps": 10_000,
              "lr_decay_every": 100_000, "lr_decay_rate": 0.5, "grad_clip": 5.0, "batch_size": 32,
              # SRI-EMORL reached 225K CLEVR6 steps on 8 A100s; used for every EMORL row
              "steps": 225_000},
}


def _optim(base: str, dataset: str) -> dict[str, Any]:
    if base not in OPTIM_BASES:
        raise ConfigError(f"unknown optimisation base {base!r}; known: {', '.join(OPTIM_BASES)}")
    out = {k: v for k, v in OPTIM_BASES[base].items() if k != "steps_by_dataset"}
    out["steps"] = OPTIM_BASES[base].get("steps_by_dataset", {}).get(dataset, out["steps"])
    return out


# A row: label (for display), `paper` (its label in tables/paper_results.csv when that differs), model
# name, likelihood family, optimisation base,
# extra model options, and the GECO learning rate.  SRI rows use the decreased GECO learning
# rate 1e-6 (appendix A.4.2); GENESIS/GENv2 baselines keep their codebase default 1e-5
# (our choice: "we decreased the GECO learning rate from 1e-5 to 1e-6" is said of SRI).
_SRI_G = {"label": "SRI-G", "model": "sri", "family": "G", "base": "genv2", "geco_lr": 1e-6}
_SRI_MOG = {"label": "SRI-MoG", "model": "sri", "family": "MoG", "base": "genv2", "geco_lr": 1e-6}

TABLES: dict[int, dict[str, Any]] = {
    1: {
        "name": "table1_slot_attention",
        "datasets": ("shapestacks",),
        "default_row": "sri",
        "metrics": ("fid", "ari_fg", "nelbo_bpd"),
        "rows": {
            "sri_sa": {"label": "SRI-SA*", "model": "sri_sa", "family": "MoG", "base": "genv2",
                       "geco_lr": 1e-6, "options": {"cross_order_kl": False}},
            "sri": dict(_SRI_MOG, label="SRI"),
        },
    },
    2: {
        "name": "table2_main",
        "datasets": ("clevr6", "objects_room", "shapestacks"),
        "default_row": "sri_mog",
        "metrics": ("fid", "ari_fg", "s_acc"),
        "rows": {
            # EMORL's own curriculum (I = 3, then 1 from step 100K: the registry's defaults);
            # SRI-EMORL fixes I = 2
            "emorl": {"label": "EMORL", "model": "emorl", "family": "EMORL", "base": "emorl",
                      "geco_lr": 1e-6},
            # GENESIS: mixture likelihood over slots with sigma 0.7 (GENESIS paper and release), GECO as GENv2's
            "gen": {"label": "GEN", "model": "gen", "family": "MoG", "base": "genv2", "geco_lr": 1e-5},
            "genv2_g": {"label": "GENv2-G", "model": "genv2", "family": "G", "base": "genv2",
                        "geco_lr": 1e-5},
            "sri_g": dict(_SRI_G),
            "genv2_mog": {"label": "GENv2-MoG", "model": "genv2", "family": "MoG", "base": "genv2",
                          "geco_lr": 1e-5},
            "sri_mog": dict(_SRI_MOG),
            "sri_emorl": {"label": "SRI-EMORL", "model": "sri_emorl", "family": "EMORL",
                          "base": "emorl", "geco_lr": 1e-6, "options": {"refinement_steps": 2}},
        },
    },
    3: {
        "name": "table3_ablation",
        "datasets": ("shapestacks",),
        "default_row": "d",
        "metrics": ("fid", "sri_loss_bpd", "s_acc"),
        "rows": {
            "a": dict(_SRI_G, label="a) no scene variable", paper="a", options={"scene_variable": False}),
            "b": dict(_SRI_G, label="b) no learned order", paper="b",
                      options={"order_alignment": False, "cross_order_kl": False}),
            "c": dict(_SRI_G, label="c) no crossOrderKL", paper="c", options={"cross_order_kl": False}),
            "d": dict(_SRI_G, label="d) full SRI-G", paper="d"),
        },
    },
    4: {
        "name": "table4_scene_variable",
        "datasets": ("shapestacks",),
        "default_row": "sri",
        "metrics": ("fid", "nelbo_bpd", "s_acc"),
        "rows": {
            "gen": {"label": "GEN", "paper": "GEN*", "model": "gen", "family": "MoG", "base": "genv2",
                    "geco_lr": 1e-5},
            "gen_scene": {"label": "GEN + scene variable", "paper": "GEN+s", "model": "gen",
                          "family": "MoG", "base": "genv2", "geco_lr": 1e-5,
                          "options": {"scene_variable": True}},
            "genv2": {"label": "GENv2", "paper": "GENv2*", "model": "genv2", "family": "MoG",
                      "base": "genv2", "geco_lr": 1e-5},
            "genv2_scene": {"label": "GENv2 + scene variable", "paper": "GENv2+s", "model": "genv2",
                            "family": "MoG", "base": "genv2", "geco_lr": 1e-5,
                            "options": {"scene_variable": True}},
            "sri": dict(_SRI_MOG, label="SRI"),
        },
    },
}

# Architecture constants shared by every model (appendix A.4.1).
ARCH = {"slot_dim": 64, "scene_dim": 128, "relation_layers": 3, "matching": "greedy",
        "shared_decoder": False}
# Switches a row may flip (Tables 3 and 4); a run records each model's default explicitly.
MODEL_SWITCHES = ("scene_variable", "order_alignment", "cross_order_kl")

# Everything the trainer understands, with the defaults used when a key is absent.
TRAIN_DEFAULTS: dict[str, Any] = {
    "table": 0, "row": "", "dataset": "blocks", "seed": 0, "preset": "custom",
    "model": "sri", "model_options": {},
    "image_size": 64, "num_slots": 5,
    "data_root": None,            # folder of converted datasets; None: $SRI_DATA, else "data"
    "data_options": {},           # extra keywords for sri.data.build_dataset (e.g. num=)
    "steps": 500_000, "batch_size": 32, "optimizer": "adam", "lr": 1e-4,
    "lr_warmup_steps": 0, "lr_decay_every": 0, "lr_decay_rate": 1.0, "grad_clip": 0.0,
    "geco_goal": 0.5655,
    # later goals: [{"goal": g, "at_step": N} or {"goal": g, "after_reached": H}, ...] (GoalSchedule)
    "geco_goal_schedule": [],
    "geco_lr": 1e-6, "geco_speedup": 10.0, "geco_alpha": 0.99,
    "device": "auto", "amp": False, "compile": False, "num_workers": 0,
    "checkpoint_every": 10_000, "keep_checkpoints": 3, "run_dir": None, "resume": True,
    "max_nonfinite": 5,
    "max_nonfinite_share": 0.1,   # a run with more non-finite steps than this share fails (TrainingDiverged)
    "log_every": 100, "eval_every": 0, "eval_metrics": ["ari_fg", "nelbo_bpd"],
    "eval_num": 64,               # images per metric for the periodic evaluation
    "final_metrics": ["fid", "ari_fg", "nelbo_bpd"],
    "num_fid": 10_000, "num_ari": 320, "num_bpd": 5_000, "num_sacc": 1_000,
    "num_order": 256,             # samples for the final order_consistency metric (0: skip)
    "eval_batch_size": 64, "fid_feature_extractor": "inception-v3-compat",
    "sample_every": 0, "progress": True,
    "time_limit": 0,              # seconds of training after which the run finishes early (0: none)
    "init_checkpoint": None,      # start a fresh run from these weights (+ GECO state), e.g. the demo's
}

# Upper bounds that keep a typo from allocating tens of GB before anything fails (the paper's largest:
# K = 9, 96x96); raise them here for a deliberate larger run.
MAX_SLOTS = 64
MAX_IMAGE_SIZE = 512

# Presets layered on top of the paper values.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    # tiny, CPU, synthetic data: any implemented row end to end in seconds
    "smoke": {"dataset": "blocks", "image_size": 16, "num_slots": 3, "steps": 4, "batch_size": 4,
              "device": "cpu", "checkpoint_every": 2, "log_every": 1, "eval_every": 0,
              "data_options": {"num": 32}, "num_fid": 16, "num_ari": 8, "num_bpd": 8,
              "num_sacc": 8, "num_order": 16, "eval_batch_size": 8, "eval_num": 8,
              "keep_checkpoints": 2},
    # 4 wall-clock minutes of training per run (time_limit), whatever the CPU's speed
    # (`python -m sri.demo` runs two of them); `steps` is only an upper bound here
    "demo": {"dataset": "blocks", "image_size": 32, "num_slots": 6, "steps": 1_000_000, "batch_size": 16,
             "lr": 5e-4, "geco_goal": -1.6, "geco_lr": 1e-5,
             "model_options": {"pixel_std": 0.1, "normalized": False, "slot_dim": 32},
             "time_limit": 240, "checkpoint_every": 500, "log_every": 50, "eval_every": 0,
             "data_options": {"num": 5000, "object_scale": 1.6}, "num_fid": 500, "num_ari": 320, "num_bpd": 256,
             "num_sacc": 256, "eval_batch_size": 64, "keep_checkpoints": 2},
}
# The demo recipe in one run that wastes fewer steps (docs/LEARNING.md, "Time to a learned model"):
# the GECO goal is tightened from -1.6 to -2.2 1,000 steps after -1.6 is first met, instead of
# staying at -1.6 to step 15,000 (where ARI-FG fell while beta merged slots). Measured against the
# demo recipe side by side; batch 8 and an earlier first goal (-1.45) were measured and were worse.
PRESETS["quick"] = {**copy.deepcopy(PRESETS["demo"]),
                    "geco_goal_schedule": [{"goal": -2.2, "after_reached": 1000}]}
# `quick`, then goal -2.1 from step 12,000: the demo checkpoints' stage 4 in one run. Once -2.1 is
# met, beta rises again and squeezes the KL, which turned the demo models' samples from blobs into
# towers (docs/LEARNING.md, "Stage 4"); step 12,000 is where `quick` had brought both rows to ARI-FG
# ~0.74. While a goal is out of reach beta sits at its floor whatever the goal, so the switch step
# matters little; what matters is when the reconstruction meets -2.1 (GENv2-G seed 0: about step
# 15,000), so the comparison trains 18,000 steps (docs/RESULTS.md).
PRESETS["scenes"] = {**copy.deepcopy(PRESETS["quick"]),
                     "geco_goal_schedule": [{"goal": -2.2, "after_reached": 1000},
                                            {"goal": -2.1, "at_step": 12_000}]}
# EMORL at CPU scale (issue: every paper model seen to learn). At the demo size an EMORL step does
# 546 GFLOP of convolution against GENv2-G's 10.9 (docs/LEARNING.md): the 64-channel broadcast decoder on
# a 42x42 canvas runs for the posterior and every refinement pass, and again in the refinement's
# gradient. Here the decoder is 32 channels wide (the GENv2 decoders' width at the demo size), I = 1
# refinement step throughout (EMORL's own curriculum ends at I = 1; SRI-EMORL's fixed I = 2 is also
# set to 1 here) and the 10K-step learning-rate warm-up (4% of EMORL's 225K steps) is scaled to 1,000
# steps, the same share of a CPU run's ~20K. `quick`'s goals otherwise. Only for the EMORL models.
PRESETS["emorl_cpu"] = {**copy.deepcopy(PRESETS["quick"]), "models": ("emorl", "sri_emorl"),
                        "lr_warmup_steps": 1_000}
PRESETS["emorl_cpu"]["model_options"].update(decoder_width=32, refinement_steps=1, refinement_steps_late=1)

# Flat keys of an experiment config, in the order the Sacred scripts list them.
CONFIG_KEYS = ("table", "row", "dataset", "seed", "preset", "model", "model_options",
               *[k for k in TRAIN_DEFAULTS if k not in ("table", "row", "dataset", "seed",
                                                       "preset", "model", "model_options")])


def table_spec(table: int) -> dict[str, Any]:
    """The spec of a paper table (1-4), with a clear error for an unknown one."""
    try:
        return TABLES[int(table)]
    except (KeyError, ValueError, TypeError):
        raise ConfigError(f"unknown table {table!r}; the paper has tables {sorted(TABLES)}") from None


def default_row(table: int) -> str:
    """The table's full SRI model."""
    return table_spec(table)["default_row"]


def default_dataset(table: int, preset: str = "paper") -> str:
    """The dataset a table's runs use unless told otherwise (synthetic for smoke/demo)."""
    check_preset(preset)
    return PRESETS[preset].get("dataset", table_spec(table)["datasets"][-1])


def check_preset(preset: str) -> None:
    """Fail clearly on an unknown preset name."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")


def row_spec(table: int, row: str) -> dict[str, Any]:
    """The spec of one row of a table."""
    rows = table_spec(table)["rows"]
    if row not in rows:
        raise ConfigError(f"unknown row {row!r} for table {table}; choose one of "
                          f"{', '.join(rows)} (e.g. `with row={next(iter(rows))}`)")
    return rows[row]


def check_dataset(dataset: str) -> None:
    """Fail clearly on an unknown dataset name."""
    if dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")


def _int_option(key: str, value: Any, example: str) -> int:
    """`value` as an int (a whole float such as 64.0 is accepted); ConfigError naming `key` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ConfigError(f"{key} must be a whole number, got {value!r}; {example}")
    return int(value)


def _check_number(cfg: dict[str, Any], key: str, *, low: float | None = None, low_open: bool = False,
                  high: float | None = None, high_open: bool = False, allow_none: bool = False) -> None:
    """ConfigError naming `key` unless cfg[key] is a finite number in the given range."""
    import math

    v = cfg[key]
    if v is None and allow_none:
        return
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if ok and low is not None:
        ok = v > low if low_open else v >= low
    if ok and high is not None:
        ok = v < high if high_open else v <= high
    if not ok:
        lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
        rng = " and ".join(x for x in (lo, hi) if x) or "finite"
        raise ConfigError(f"{key} must be a number {rng}, got {v!r} (e.g. {key}={TRAIN_DEFAULTS[key]!r})")


def model_options_for(model: str, family_opts: dict[str, Any], row_options: dict[str, Any],
                      image_size: int, num_slots: int) -> dict[str, Any]:
    """The keyword arguments of `sri.models.build_model` for one row."""
    image_size = _int_option("image_size", image_size, "e.g. image_size=64 (a multiple of 16)")
    num_slots = _int_option("num_slots", num_slots, "e.g. num_slots=7 (CLEVR6/Objects Room) or 9 "
                                                    "(ShapeStacks)")
    opts: dict[str, Any] = {"image_size": int(image_size), "num_slots": int(num_slots),
                            "slot_dim": ARCH["slot_dim"],
                            "likelihood": family_opts["likelihood"],
                            "normalized": family_opts["normalized"],
                            "pixel_std": family_opts["pixel_std"]}
    # the shared architecture constants and SRI's switches, for the models that take them
    takes = model_spec(model).defaults
    opts.update({k: v for k, v in ARCH.items() if k in takes and k not in opts})
    opts.update({k: takes[k] for k in MODEL_SWITCHES if k in takes})
    opts.update(row_options)
    return opts


def experiment_config(table: int, row: str | None = None, dataset: str | None = None,
                      preset: str = "paper", seed: int = 0, *, image_size: int | None = None,
                      num_slots: int | None = None) -> dict[str, Any]:
    """The full flat config of one run of `table`/`row`/`dataset` under a preset.

    `image_size`/`num_slots` override the dataset's (and preset's) values in `model_options`.
    """
    check_preset(preset)
    spec = table_spec(table)
    row = default_row(table) if row is None else row
    rs = row_spec(table, row)
    only = PRESETS[preset].get("models")
    if only and rs["model"] not in only:
        raise ConfigError(f"preset {preset!r} is for the models {', '.join(only)}, not {rs['model']!r} "
                          f"(row {row!r}); use e.g. preset 'quick' for this row")
    dataset = default_dataset(table, preset) if dataset is None else dataset
    check_dataset(dataset)
    fam = _family(rs["family"], dataset)
    cfg = copy.deepcopy(TRAIN_DEFAULTS)
    cfg.update(table=int(table), row=row, dataset=dataset, seed=int(seed), preset=preset,
               model=rs["model"], image_size=DATASETS[dataset]["image_size"],
               num_slots=DATASETS[dataset]["num_slots"])
    cfg.update(_optim(rs["base"], dataset))
    cfg.update(geco_goal=fam["geco_goal"], geco_lr=rs["geco_lr"], geco_speedup=10.0, geco_alpha=0.99)
    # the table's metrics plus the (cheap) bound in bpd for every run; S-Acc where blocks are stacked
    metrics = list(dict.fromkeys([*spec["metrics"], "nelbo_bpd", "sri_loss_bpd"]))
    metrics = [m for m in metrics if m != "s_acc" or dataset in ("shapestacks", "blocks")]
    if "sri" not in model_spec(rs["model"]).loss_groups:  # L_SRI exists only with its loss group
        metrics = [m for m in metrics if m != "sri_loss_bpd"]
    cfg["final_metrics"] = metrics
    cfg.update(copy.deepcopy({k: v for k, v in PRESETS[preset].items()
                              if k not in ("dataset", "model_options", "models")}))
    if image_size is not None:
        cfg["image_size"] = image_size
    if num_slots is not None:
        cfg["num_slots"] = num_slots
    cfg["model_options"] = model_options_for(rs["model"], fam, rs.get("options", {}),
                                             cfg["image_size"], cfg["num_slots"])
    # a preset's recipe (e.g. the demo's sigma and width) overrides the family's model options
    cfg["model_options"].update(copy.deepcopy(PRESETS[preset].get("model_options", {})))
    return cfg


def check_goal_schedule(entries: object) -> None:
    """ConfigError naming the problem unless `entries` is a valid `geco_goal_schedule`."""
    example = 'e.g. geco_goal_schedule=[{"goal": -2.2, "after_reached": 1000}]'
    if not isinstance(entries, list):
        raise ConfigError(f"geco_goal_schedule must be a list of entries, got {entries!r}; {example}")
    for e in entries:
        keys = set(e) if isinstance(e, dict) else set()
        rule = keys & {"at_step", "after_reached"}
        goal = e.get("goal") if isinstance(e, dict) else None
        if (not isinstance(e, dict) or "goal" not in keys or len(rule) != 1
                or keys - {"goal", "at_step", "after_reached"}):
            raise ConfigError(f"geco_goal_schedule entry {e!r} must have 'goal' and exactly one of "
                              f"'at_step' or 'after_reached'; {example}")
        if isinstance(goal, bool) or not isinstance(goal, (int, float)) or not math.isfinite(goal):
            raise ConfigError(f"geco_goal_schedule entry {e!r}: goal must be a finite number; {example}")
        n = e[rule.pop()]
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ConfigError(f"geco_goal_schedule entry {e!r}: the step count must be an integer "
                              f">= 0; {example}")


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults, reject unknown keys and invalid values; returns a new dict."""
    unknown = sorted(set(config) - set(TRAIN_DEFAULTS))
    if unknown:
        import difflib

        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, list(TRAIN_DEFAULTS), n=1, cutoff=0.6)
            if close:
                hints.append(f"did you mean {close[0]!r} instead of {key!r}?")
        raise ConfigError(f"unknown config option(s) {unknown}; {' '.join(hints) + ' ' if hints else ''}"
                          f"known options: {', '.join(sorted(TRAIN_DEFAULTS))}")
    given_mo = config.get("model_options") or {}
    for key in ("num_slots", "image_size"):
        if key in config and key in given_mo and given_mo[key] != config[key]:
            raise ConfigError(f"model_options.{key}={given_mo[key]!r} contradicts {key}="
                              f"{config[key]!r}; set only {key}={given_mo[key]!r} (model_options "
                              f"follows it)")
    cfg = copy.deepcopy(TRAIN_DEFAULTS)
    cfg.update(copy.deepcopy(dict(config)))
    cfg["model_options"] = dict(cfg["model_options"] or {})
    check_dataset(cfg["dataset"])
    mo = cfg["model_options"]
    mo.setdefault("image_size", cfg["image_size"])
    mo.setdefault("num_slots", cfg["num_slots"])
    k, size = mo["num_slots"], mo["image_size"]
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_SLOTS:
        raise ConfigError(f"number of slots K must be an integer from 1 to {MAX_SLOTS}, got {k!r} "
                          f"(set num_slots=..., e.g. 7 for CLEVR6/Objects Room, 9 for ShapeStacks)")
    if not isinstance(size, int) or isinstance(size, bool) or size < 16 or size % 16 or size > MAX_IMAGE_SIZE:
        raise ConfigError(f"image size must be a multiple of 16 from 16 to {MAX_IMAGE_SIZE} (the decoder "
                          f"upsamples 4 times by 2 from size/16), got {size!r}; e.g. image_size=64")
    for key in ("steps", "batch_size"):
        if not isinstance(cfg[key], int) or cfg[key] < 1:
            raise ConfigError(f"{key} must be a positive integer, got {cfg[key]!r}")
    if not isinstance(cfg["time_limit"], (int, float)) or cfg["time_limit"] < 0:
        raise ConfigError(f"time_limit must be a number of seconds >= 0, got {cfg['time_limit']!r}")
    if cfg["init_checkpoint"] is not None and not isinstance(cfg["init_checkpoint"], str):
        raise ConfigError(f"init_checkpoint must be the path of a checkpoint file or None, got "
                          f"{cfg['init_checkpoint']!r}")
    for key in ("checkpoint_every", "log_every", "eval_every", "sample_every", "keep_checkpoints", "num_order",
                "max_nonfinite", "num_workers", "lr_warmup_steps", "lr_decay_every"):
        if not isinstance(cfg[key], int) or cfg[key] < 0:
            raise ConfigError(f"{key} must be an integer >= 0, got {cfg[key]!r}")
    _check_number(cfg, "lr", low=0, low_open=True)
    _check_number(cfg, "geco_lr", low=0)
    _check_number(cfg, "geco_goal")
    _check_number(cfg, "max_nonfinite_share", low=0, high=1)
    check_goal_schedule(cfg["geco_goal_schedule"])
    _check_number(cfg, "geco_alpha", low=0, high=1, high_open=True)
    _check_number(cfg, "geco_speedup", low=0, allow_none=True)
    _check_number(cfg, "lr_decay_rate", low=0, low_open=True)
    _check_number(cfg, "grad_clip", low=0, allow_none=True)
    if cfg["amp"] not in (False, None, "bf16", True):
        raise ConfigError(f"amp must be False or 'bf16', got {cfg['amp']!r}")
    if cfg["optimizer"] != "adam":
        raise ConfigError(f"optimizer {cfg['optimizer']!r} is not supported (the paper uses 'adam')")
    if not isinstance(cfg["device"], str):
        raise ConfigError(f"device must be a string such as 'auto', 'cpu' or 'cuda:0', "
                          f"got {cfg['device']!r}")
    for key in ("eval_metrics", "final_metrics"):
        cfg[key] = list(cfg[key] or [])
        bad = [m for m in cfg[key] if m not in METRICS]
        if bad:
            raise ConfigError(f"{key} has unknown metric(s) {bad}; choose from {', '.join(METRICS)}")
    return cfg


def default_run_dir(config: dict[str, Any]) -> str:
    """`$SRI_RUNS_DIR (default runs)/checkpoints/table<t>/<row>/<dataset>/<preset>/seed<seed>`."""
    import os

    base = os.environ.get("SRI_RUNS_DIR") or "runs"
    return (f"{base}/checkpoints/table{config.get('table', 0)}/{config.get('row') or 'custom'}/"
            f"{config['dataset']}/{config.get('preset', 'custom')}/seed{config.get('seed', 0)}")
