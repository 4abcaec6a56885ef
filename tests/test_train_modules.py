"""The trainer's parts in their own modules: old import paths, run-folder files, final-evaluation policy."""
from __future__ import annotations

import math

import torch

import sri.train.trainer as trainer_module
from sri.evaluate import final_evaluation
from sri.train.loggers import MemoryLogger
from sri.train.rundir import archive_previous_run, list_checkpoints, prune_checkpoints, set_aside

# every name other modules, tests or notebooks imported from sri.train.trainer before the split
OLD_NAMES = ["ARCHIVE_DIR", "CKPT_RE", "CheckpointCorrupt", "ConfigError", "DATASETS", "Logger",
             "MemoryLogger", "NullLogger", "PALETTE", "RunDirLock", "RunDirNotWritable", "RunLogger",
             "SAMPLES_RE", "StepBatchSampler", "Trainer", "TrainingInterrupted", "_DDP",
             "_allreduce_update", "_unwrap", "as_logger", "check_writable", "default_run_dir",
             "feature_extractor_name", "list_checkpoints", "load_checkpoint", "lr_factor",
             "mask_colors", "resolve_device", "rng_state", "save_checkpoint", "seed_everything",
             "set_rng_state", "threading_is_main", "train", "tune_cpu_allocator", "validate_config",
             "write_error_reason", "write_sample_grid"]

NEW_HOMES = {"sri.train.loggers": ["Logger", "NullLogger", "MemoryLogger", "RunLogger", "as_logger"],
             "sri.train.schedule": ["StepBatchSampler", "lr_factor"],
             "sri.train.rng": ["rng_state", "set_rng_state", "seed_everything"],
             "sri.train.runtime": ["resolve_device", "threading_is_main", "tune_cpu_allocator"],
             "sri.train.distributed": ["_DDP", "_allreduce_update"],
             "sri.train.rundir": ["ARCHIVE_DIR", "CKPT_RE", "SAMPLES_RE", "list_checkpoints"],
             "sri.evaluate": ["feature_extractor_name"],
             "sri.viz": ["mask_colors", "write_sample_grid"]}


def test_old_names_still_import_from_the_trainer_and_are_the_new_modules_objects():
    import importlib
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        missing = [n for n in OLD_NAMES if not hasattr(trainer_module, n)]
        assert not missing
        for module, names in NEW_HOMES.items():
            mod = importlib.import_module(module)
            for name in names:
                assert getattr(trainer_module, name) is getattr(mod, name), (module, name)


def test_the_trainer_exports_only_what_it_defines_and_moved_names_warn():
    import pytest

    assert sorted(trainer_module.__all__) == ["Trainer", "TrainingDiverged", "TrainingInterrupted", "train"]
    for name in trainer_module.__all__:
        assert getattr(trainer_module, name).__module__ == "sri.train.trainer"
    with pytest.warns(DeprecationWarning, match="import SLOT_PALETTE from sri.viz"):
        trainer_module.PALETTE
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        trainer_module.nonexistent


def _touch(path):
    path.write_bytes(b"x")
    return path


def test_pruning_keeps_the_newest_and_the_protected_checkpoint(tmp_path):
    paths = [str(_touch(tmp_path / f"ckpt_{s:08d}.pt")) for s in (10, 2, 30)]
    left = prune_checkpoints(paths[:2], paths[2], keep=1, protect=paths[0])
    assert left == [paths[0], paths[2]]  # step 2 deleted, step 10 protected, sorted by step
    assert [s for s, _ in list_checkpoints(tmp_path)] == [10, 30]
    assert prune_checkpoints(left, left[-1], keep=0) == left  # keep <= 0: nothing deleted


def test_archiving_moves_checkpoints_and_grids_and_corrupt_files_are_set_aside(tmp_path):
    assert archive_previous_run(tmp_path) is None
    _touch(tmp_path / "samples_00000004.png")
    assert archive_previous_run(tmp_path) is None and (tmp_path / "samples_00000004.png").exists()
    _touch(tmp_path / "ckpt_00000004.pt")
    _touch(tmp_path / "other.txt")
    dest = archive_previous_run(tmp_path)
    assert sorted(p.name for p in dest.iterdir()) == ["ckpt_00000004.pt", "samples_00000004.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archive", "other.txt"]
    a = set_aside(_touch(tmp_path / "ckpt_00000008.pt"))
    b = set_aside(_touch(tmp_path / "ckpt_00000008.pt"))
    assert (a.name, b.name) == ("ckpt_00000008.pt.corrupt", "ckpt_00000008.pt.corrupt1")


class _Model(torch.nn.Module):
    pass


def test_final_evaluation_policy(capsys):
    calls: list[list[str]] = []

    def evaluate_fn(model, names):
        calls.append(list(names))
        if "ari_fg" in names:
            raise KeyError("no masks")
        return {n: (math.nan if n == "s_acc" else 1.0 + len(n)) for n in names}

    guarded: list[str] = []

    def guard(fn, *args, **kw):
        guarded.append(getattr(fn, "__name__", "?"))
        return fn(*args, **kw)

    log = MemoryLogger()
    got = final_evaluation(_Model(), ["fid", "ari_fg", "nelbo_bpd", "s_acc"], evaluate_fn,
                           guard=guard, logger=log, step=7)
    # the others together, one by one after that failed, FID alone last
    assert calls == [["ari_fg", "nelbo_bpd", "s_acc"], ["ari_fg"], ["nelbo_bpd"], ["s_acc"], ["fid"]]
    assert len(guarded) == len(calls)
    assert got["fid"] == 4.0 and got["nelbo_bpd"] == 10.0 and math.isnan(got["s_acc"])
    assert set(got) == {"fid", "nelbo_bpd", "s_acc"}
    assert log.info["metrics_skipped"] == {"ari_fg": "KeyError: no masks"}
    assert "fid_skipped" not in log.info
    assert log.scalars == {"fid": [(7, 4.0)], "nelbo_bpd": [(7, 10.0)]}  # non-finite: not a scalar
    assert set(log.info["final_metrics"]) == set(got)
    assert "ari_fg skipped: KeyError: no masks" in capsys.readouterr().err

    empty = MemoryLogger()
    assert final_evaluation(_Model(), [], evaluate_fn, num_order=4, logger=empty) == {}
    assert not empty.info and not empty.scalars
