"""`python -m sri.bench release --release-dir DIR`: our step beside the authors' release's, in one process.

The release (github.com/pemami4911/segregate-relate-imagine, a checkout the user provides; it is
never vendored) is imported from `DIR` under its own `sri` package name, which clashes with ours:
it is loaded with our modules set aside and ours are restored afterwards. Both models are built at
the same config (SRI-MoG normalised, sigma 0.7, 64x64, K=9, slot 64, scene 128, L=3, batch 32),
one step each is forward + both GECO losses + backward + Adam (`--model genv2`: the release's
GenesisV2 class beside ours, one GECO loss), and the two alternate (A B A B) on
the same threads and allocator settings so that machine noise hits both alike.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Any, Callable

__all__ = ["RELEASE_MODELS", "load_release_sri", "release_step_fn", "compare_release", "main"]


def _attrdict_shim() -> types.ModuleType:
    """`attrdict.AttrDict` (the release's dependency, which does not import on Python 3.10+)."""
    mod = types.ModuleType("attrdict")

    class AttrDict(dict):
        __getattr__ = dict.__getitem__
        __setattr__ = dict.__setitem__

    mod.AttrDict = AttrDict  # type: ignore[attr-defined]
    return mod


# our top-level package (the release's clashes with it) and the release's other one
_OURS = __name__.partition(".")[0]
_RELEASE_PACKAGES = {_OURS, "third_party"}


def _in_packages(module: str, packages: set[str]) -> bool:
    return module.partition(".")[0] in packages


@contextlib.contextmanager
def _release_namespace(release_dir: Path):
    """Import from `release_dir` with our package's modules set aside; restore them on exit."""
    ours = {k: v for k, v in sys.modules.items() if _in_packages(k, {_OURS})}
    for k in ours:
        del sys.modules[k]
    had_attrdict = "attrdict" in sys.modules
    try:
        importlib.import_module("attrdict")
    except Exception:  # the package is missing or fails on collections.Mapping (Python >= 3.10)
        sys.modules["attrdict"] = _attrdict_shim()
    sys.path.insert(0, str(release_dir))
    try:
        yield
    finally:
        sys.path.remove(str(release_dir))
        for k in [k for k in sys.modules if _in_packages(k, _RELEASE_PACKAGES)]:
            del sys.modules[k]
        sys.modules.update(ours)
        if not had_attrdict and getattr(sys.modules.get("attrdict"), "__file__", None) is None:
            sys.modules.pop("attrdict", None)


def load_release_sri(release_dir: str | Path, cls: str = "SRI") -> tuple[type, type]:
    """The release's model class `cls` (`SRI` or `GenesisV2`, both in its sri/model.py) and its
    GENESIS-v2 `GECO` class, imported from `release_dir`."""
    root = Path(release_dir).expanduser().resolve()
    if not (root / "sri" / "model.py").is_file() or not (root / "third_party" / "genesis_v2").is_dir():
        raise SystemExit(f"{root} is not a checkout of the authors' release (no sri/model.py and "
                         "third_party/genesis_v2/): clone github.com/pemami4911/segregate-relate-imagine "
                         "outside this repository and pass its folder with --release-dir")
    with _release_namespace(root):
        model = importlib.import_module("sri.model")
        geco = importlib.import_module("third_party.genesis_v2.geco")
        return getattr(model, cls), geco.GECO


def _stage_kl(losses: Any, name: str) -> Any:
    """train.py's reading of a GENESIS-v2 KL: `name` as a per-image tensor, or `name_k` as a list of
    per-slot tensors, or 0 (the mask KL is off in the ShapeStacks config)."""
    import torch

    if name in losses:
        return losses[name].mean(0)
    if name + "_k" in losses:
        return torch.stack(losses[name + "_k"], dim=1).mean(dim=0).sum()
    return torch.tensor(0.0)


def _release_sri_args(num_slots: int, image_size: int) -> tuple[Any, ...]:
    return (num_slots, True, 64, True, "gaussian", 0.7, False, "MoG-Normed", False, image_size, 128, 3)


def _release_genv2_args(num_slots: int, image_size: int) -> tuple[Any, ...]:
    return (num_slots, image_size, 64, True, "gaussian", False, False, True, 0.7, "MoG-Normed")


# our model name -> (the release's class in its sri/model.py, its constructor arguments at train.py's
# ShapeStacks defaults: MoG-Normed, sigma 0.7, z 64, s 128, L 3, semiconv, gaussian kernel)
RELEASE_MODELS: dict[str, tuple[str, Callable[[int, int], tuple[Any, ...]]]] = {
    "sri": ("SRI", _release_sri_args), "genv2": ("GenesisV2", _release_genv2_args)}


def release_step_fn(release_dir: str | Path, *, model: str = "sri", image_size: int = 64, num_slots: int = 9,
                    batch_size: int = 32, seed: int = 0) -> Callable[[], None]:
    """One training step of the release's SRI (both GECO losses, as its train.py computes them) or
    of the GENESIS-v2 inside it (its own GECO loss): the loss groups of our model's registry entry."""
    import torch

    from sri.models.registry import model_spec

    if model not in RELEASE_MODELS:
        raise SystemExit(f"the release has no counterpart of {model!r}; choose from {', '.join(RELEASE_MODELS)}")
    cls_name, args = RELEASE_MODELS[model]
    cls, GECO = load_release_sri(release_dir, cls_name)
    with_sri_loss = "sri" in model_spec(model).loss_groups
    torch.manual_seed(seed)
    net = cls(*args(num_slots, image_size))
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    goal, lr = 0.5655 * 3 * image_size ** 2, 1e-6 * 64 ** 2 / image_size ** 2
    geco, geco_sri = GECO(goal, lr, 0.99, 1.0, 1e-10, 10.0), GECO(goal, lr, 0.99, 1.0, 1e-10, 10.0)
    x = torch.rand(batch_size, 3, image_size, image_size)

    def step() -> None:
        opt.zero_grad()
        losses = net(x)[1]
        kl_seg = _stage_kl(losses, "kl_m") + _stage_kl(losses, "kl_l")
        loss = geco.loss(losses.genv2_err.mean(0), kl_seg)
        if with_sri_loss:
            kl_sri = losses.sri_kl_scene.mean(0) + losses.sri_kl_z_ordered.mean(0) + losses.sri_kl_slot.mean(0)
            loss = loss + geco_sri.loss(losses.sri_err.mean(0), kl_sri)
        loss.backward()
        opt.step()

    return step


def compare_release(
    release_dir: str | Path,
    *,
    model: str = "sri",
    rounds: int = 3,
    warmup: int = 1,
    image_size: int = 64,
    num_slots: int = 9,
    batch_size: int = 32,
    threads: int | None = None,
    modes: tuple[str, ...] = ("fp32",),
    tune_allocator: bool = True,
) -> dict[str, Any]:
    """Alternate the release's step and ours (each of `modes`: sri.bench.train_step.MODE_NAMES) for
    `rounds` rounds after `warmup`; median s/step of each and ratios release / ours."""
    import torch

    from sri.bench.train_step import make_step, mode_kwargs
    from sri.train.runtime import tune_cpu_allocator

    if tune_allocator:
        tune_cpu_allocator()
    if threads:
        torch.set_num_threads(int(threads))
    cfg = dict(model=model, image_size=image_size, num_slots=num_slots, batch_size=batch_size)
    fns: dict[str, Callable[[], None]] = {"release": release_step_fn(release_dir, **cfg)}
    for mode in modes:  # ours at the same config, in each of sri.bench.train_step's named modes
        fns[mode] = make_step(model, "mog", image_size, num_slots, batch_size, **mode_kwargs(mode)).run
    times: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(warmup + rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            if r >= warmup:
                times[name].append(dt)
            print(f"[release-bench] round {r + 1 - warmup:+d} {name}: {dt:.2f} s", file=sys.stderr, flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "median_s": med,
        "best_s": {k: min(v) for k, v in times.items()},
        "times_s": times,
        "speedup_vs_release": {k: med["release"] / v for k, v in med.items() if k != "release"},
        "threads": torch.get_num_threads(),
        "rounds": rounds,
        "config": cfg,
    }


def main(argv: list[str] | None = None) -> int:
    """CLI: print the side-by-side timings (and JSON with --json)."""
    from sri.bench.train_step import MODE_NAMES

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    p = argparse.ArgumentParser(prog="python -m sri.bench release", description=__doc__.split("\n")[0])
    p.add_argument(
        "--release-dir",
        required=True,
        help="a checkout of github.com/pemami4911/segregate-relate-imagine (outside this repository)",
    )
    p.add_argument(
        "--model",
        default="sri",
        choices=list(RELEASE_MODELS),
        help="sri (the release's SRI) or genv2 (the GENESIS-v2 class inside the release)",
    )
    p.add_argument("--rounds", type=int, default=3, help="timed A B rounds (default 3)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--modes", default="fp32", help=f"our modes, comma-separated ({', '.join(MODE_NAMES)})")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--num-slots", type=int, default=9)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--no-tune-allocator",
        action="store_true",
        help="keep glibc malloc defaults for both (process-wide; default: tune_cpu_allocator)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object with the machine")
    a = p.parse_args(argv)
    res = compare_release(
        a.release_dir,
        model=a.model,
        rounds=a.rounds,
        warmup=a.warmup,
        image_size=a.image_size,
        num_slots=a.num_slots,
        batch_size=a.batch_size,
        threads=a.threads,
        modes=tuple(m for m in a.modes.split(",") if m),
        tune_allocator=not a.no_tune_allocator,
    )
    if a.json:
        from sri.provenance import bench_command, provenance
        from sri.train.runtime import machine_info

        print(
            json.dumps({"benchmark": "release", **res, **provenance(bench_command("release", argv)),
                        "machine": machine_info("cpu"), "options": vars(a)}, indent=1)
        )
        return 0
    for k, v in res["median_s"].items():
        ratio = "" if k == "release" else f"  ({res['speedup_vs_release'][k]:.2f}x the release)"
        print(f"{k:8s} median {v:.2f} s/step, best {res['best_s'][k]:.2f}{ratio}")
    return 0
