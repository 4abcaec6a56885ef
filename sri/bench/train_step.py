"""`python -m sri.bench train-step`: median seconds per training step, steps/s and peak memory."""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from typing import Any, NamedTuple

from sri.train.runtime import tune_cpu_allocator

__all__ = ["main", "bench_train_step", "compare_modes", "make_step", "mode_kwargs", "MODE_NAMES", "StepSetup",
           "tune_cpu_allocator"]


def _peak_rss_mib() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0


class StepSetup(NamedTuple):
    """A model with its optimizer, GECOs and a fixed batch: `run()` is one `train_step`."""
    net: Any
    opt: Any
    gecos: Any
    x: Any
    amp_dtype: Any

    def run(self) -> dict[str, float]:
        from sri.train.step import train_step

        return train_step(self.net, self.x, self.opt, self.gecos, amp_dtype=self.amp_dtype)


def make_step(model: str = "sri", likelihood: str = "mog", image_size: int = 64, num_slots: int = 9,
              batch_size: int = 32, device: str = "cpu", amp_dtype: str | None = None,
              channels_last: bool = False, compile: bool = False, slot_dim: int | None = None,
              seed: int = 0, options: dict[str, Any] | None = None) -> StepSetup:
    """Build `model` at a config (paper defaults; `options`: other model options) with Adam, its GECOs
    and a random batch."""
    import torch

    from sri.models import build_model
    from sri.train.step import make_gecos

    torch.manual_seed(seed)
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but CUDA is not available")
    extra = {**({} if slot_dim is None else {"slot_dim": int(slot_dim)}), **(options or {})}
    net = build_model(model, image_size=image_size, num_slots=num_slots, likelihood=likelihood, **extra).to(dev)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    if compile:  # the trainer's `compile` option; the warm-up steps absorb the compilation
        net = torch.compile(net)
    gecos = make_gecos(net, goal_per_element=0.5655 if likelihood == "mog" else -0.353)
    x = torch.rand(batch_size, 3, image_size, image_size, device=dev)
    dtype = {None: None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp_dtype]
    return StepSetup(net, opt, gecos, x, dtype)


def bench_train_step(model: str = "sri", likelihood: str = "mog", image_size: int = 64,
                     num_slots: int = 9, batch_size: int = 32, steps: int = 5, warmup: int = 1,
                     device: str = "cpu", threads: int | None = None, amp_dtype: str | None = None,
                     channels_last: bool = False, seed: int = 0,
                     tune_allocator: bool = True, compile: bool = False,
                     slot_dim: int | None = None, options: dict[str, Any] | None = None) -> dict[str, float]:
    """Time `train_step` on random images; returns median/best seconds, steps/s and peak MiB."""
    import torch

    if tune_allocator and device == "cpu":
        tune_cpu_allocator()
    if threads:
        torch.set_num_threads(int(threads))
    st = make_step(model, likelihood, image_size, num_slots, batch_size, device, amp_dtype, channels_last,
                   compile, slot_dim, seed, options)
    dev = st.x.device
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    times, cpu = [], []
    for i in range(warmup + steps):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0, c0 = time.perf_counter(), time.process_time()
        st.run()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    med = statistics.median(times)
    peak = (torch.cuda.max_memory_allocated(dev) / 2 ** 20 if dev.type == "cuda" else _peak_rss_mib())
    flops = step_flops(st.net, st.x, st.opt, st.gecos, amp_dtype=st.amp_dtype)
    return {"median_s": med, "best_s": min(times), "steps_per_s": 1.0 / med, "peak_mib": peak,
            "cpu_s": statistics.median(cpu), "flops_per_step": flops,
            "gflops_per_s": flops / med / 1e9 if flops else None,
            "threads": torch.get_num_threads(), "steps": len(times)}


def compare_modes(modes: dict[str, dict[str, Any]], *, rounds: int = 3, warmup: int = 1,
                  threads: int | None = None, tune_allocator: bool = True, **config: Any) -> dict[str, Any]:
    """Alternate one step of each mode (keyword arguments of `make_step` over `config`) for `rounds`
    rounds after `warmup`, in one process; median and best s/step of each, and ratios to the first."""
    import torch

    if tune_allocator and config.get("device", "cpu") == "cpu":
        tune_cpu_allocator()
    if threads:
        torch.set_num_threads(int(threads))
    setups = {name: make_step(**{**config, **kw}) for name, kw in modes.items()}
    times: dict[str, list[float]] = {k: [] for k in setups}
    for r in range(warmup + rounds):
        for name, st in setups.items():
            t0 = time.perf_counter()
            st.run()
            if r >= warmup:
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    first = next(iter(med))
    return {"median_s": med, "best_s": {k: min(v) for k, v in times.items()}, "times_s": times,
            f"speedup_vs_{first}": {k: med[first] / v for k, v in med.items()},
            "threads": torch.get_num_threads(), "rounds": rounds}


def step_flops(net: Any, x: Any, opt: Any, gecos: Any, *, amp_dtype: Any = None) -> float | None:
    """Floating-point operations of one training step (matmuls and convolutions, forward and
    backward) counted by torch.utils.flop_counter; None where the counter is unavailable."""
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:
        return None
    from sri.train.step import train_step

    with FlopCounterMode(display=False) as counter:
        train_step(net, x, opt, gecos, amp_dtype=amp_dtype)
    return float(counter.get_total_flops())


def main(argv: list[str] | None = None) -> int:
    """CLI: prints median seconds per step, steps/s and peak memory."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "torch" not in sys.modules and "--omp-active" not in argv:
        # on a shared machine spinning OpenMP workers waste the few cores (2x slower steps seen)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    p = argparse.ArgumentParser(prog="python -m sri.bench train-step", description=__doc__)
    from sri.models.registry import IMPLEMENTED

    p.add_argument("--model", default="sri", choices=list(IMPLEMENTED))
    p.add_argument("--likelihood", default="mog", choices=["mog", "gaussian"])
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--num-slots", type=int, default=9)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    p.add_argument("--amp", default=None, choices=["bf16", "fp16"], help="autocast dtype (default off)")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    p.add_argument("--omp-active", action="store_true",
                   help="keep OpenMP's default spin-waiting (default here: OMP_WAIT_POLICY=PASSIVE "
                        "unless set in the environment)")
    p.add_argument("--no-tune-allocator", action="store_true",
                   help="keep glibc malloc defaults (see tune_cpu_allocator)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (as the trainer's "
                   "compile=True); use --warmup 3 or more so that compilation is not timed")
    p.add_argument("--slot-dim", type=int, default=None, help="slot width (default: the model's, 64)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a model option (e.g. decoder_width=32 refinement_steps=1 for EMORL at CPU scale); "
                        "repeatable")
    p.add_argument("--fast", action="store_true",
                   help="the fastest mode validated by python -m sri.bench fast-check "
                        "(sri.train.runtime.FAST_MODE; on CPU today: eager fp32, docs/PERFORMANCE.md)")
    p.add_argument("--modes", default=None,
                   help="instead of one mode, alternate these in one process (A B A B) and print their "
                        "ratios: a comma list of fp32, bf16, compile, fast (e.g. fp32,fast); --steps rounds")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object: timings, peak memory, FLOPs per step, GFLOP/s, the "
                        "machine and the options (comparable across machines)")
    a = p.parse_args(argv)
    a.option = _model_options(a.model, a.option)
    if a.modes:
        return _main_modes(a, argv)
    if a.fast:
        from sri.train.runtime import FAST_MODE

        a.amp = a.amp or FAST_MODE["amp"]
        a.compile = a.compile or bool(FAST_MODE["compile"])
    r = bench_train_step(a.model, a.likelihood, a.image_size, a.num_slots, a.batch_size, a.steps,
                         a.warmup, a.device, a.threads, a.amp, a.channels_last,
                         tune_allocator=not a.no_tune_allocator, compile=a.compile, slot_dim=a.slot_dim,
                         options=a.option)
    if a.json:
        from sri.provenance import bench_command, provenance
        from sri.train.runtime import machine_info

        options = {k: v for k, v in vars(a).items() if k != "json"}
        options["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY", "default")
        print(json.dumps({"benchmark": "train-step", **r, **provenance(bench_command("train-step", argv), a.device),
                          "machine": machine_info(a.device),
                          "options": options}, indent=1))
        return 0
    mem = "peak CUDA memory allocated" if a.device.startswith("cuda") else "peak RSS"
    print(f"train-step model={a.model} likelihood={a.likelihood} image={a.image_size} K={a.num_slots} "
          f"batch={a.batch_size} device={a.device} threads={r['threads']} steps={r['steps']} "
          f"amp={a.amp} channels_last={a.channels_last} "
          f"allocator_tuned={not a.no_tune_allocator} "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'default')} (pid {os.getpid()})")
    print(f"median {r['median_s']:.3f} s/step (best {r['best_s']:.3f}), {r['steps_per_s']:.3f} steps/s, "
          f"{mem} {r['peak_mib']:.0f} MiB, process CPU {r['cpu_s']:.2f} s/step")
    return 0


def _model_options(model: str, items: list[str]) -> dict[str, Any]:
    """--option KEY=VALUE items as model options (values read as JSON where they parse), checked by name."""
    from sri.bench.learn import parse_value
    from sri.models.registry import model_spec

    out: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise SystemExit(f"--option expects KEY=VALUE, got {item!r}")
        if key not in model_spec(model).defaults:
            raise SystemExit(f"--option {key}: not an option of model {model!r}; its options: "
                             f"{', '.join(model_spec(model).defaults)}")
        out[key] = parse_value(value)
    return out


MODE_NAMES = ("fp32", "bf16", "compile", "fast")


def mode_kwargs(name: str) -> dict[str, Any]:
    """make_step keywords of a named mode (`fast`: sri.train.runtime.FAST_MODE)."""
    from sri.train.runtime import FAST_MODE

    table: dict[str, dict[str, Any]] = {"fp32": {}, "bf16": {"amp_dtype": "bf16"}, "compile": {"compile": True},
                                        "fast": {"amp_dtype": FAST_MODE["amp"], "compile": bool(FAST_MODE["compile"])}}
    if name not in table:
        raise SystemExit(f"unknown mode {name!r} in --modes; choose from {', '.join(MODE_NAMES)}")
    return table[name]


def _main_modes(a: argparse.Namespace, argv: list[str] | None = None) -> int:
    modes = {m: mode_kwargs(m) for m in a.modes.split(",") if m}
    res = compare_modes(modes, rounds=a.steps, warmup=a.warmup, threads=a.threads,
                        tune_allocator=not a.no_tune_allocator, model=a.model, likelihood=a.likelihood,
                        image_size=a.image_size, num_slots=a.num_slots, batch_size=a.batch_size, device=a.device,
                        channels_last=a.channels_last, slot_dim=a.slot_dim, options=a.option)
    if a.json:
        from sri.provenance import bench_command, provenance
        from sri.train.runtime import machine_info

        prov = provenance(bench_command("train-step", argv), a.device)
        print(json.dumps({"benchmark": "train-step-modes", **res, **prov,
                          "machine": machine_info(a.device),
                          "options": {k: v for k, v in vars(a).items() if k != "json"}}, indent=1))
        return 0
    first = next(iter(res["median_s"]))
    for k, v in res["median_s"].items():
        print(f"{k:8s} median {v:.3f} s/step, best {res['best_s'][k]:.3f} "
              f"({res[f'speedup_vs_{first}'][k]:.2f}x {first})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
