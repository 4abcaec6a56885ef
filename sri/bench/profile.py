"""`python -m sri.bench profile`: where a training step's time goes (ops, forward/backward/optimizer, modules).

One warm-up step, then `torch.profiler` over the timed steps. Each event is attributed to the
phase it runs in (forward, backward, optimizer, the rest) and, for the forward, to the submodule
(two levels deep) whose `forward` it runs under; the backward is attributed per module through
the autograd nodes' sequence numbers, which link each backward op to the forward op that made it.
Times per module are exclusive: a parent's row holds only what runs outside its marked children.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from typing import Any

__all__ = ["profile_step", "main"]

_PHASES = ("forward", "backward", "optimizer")


def _module_markers(net: Any, depth: int) -> list[Any]:
    """Forward hooks that open a profiler range `module::<name>` around each submodule at most `depth` deep."""
    import torch

    handles = []
    for name, mod in net.named_modules():
        if not name or name.count(".") + 1 > depth:
            continue
        ranges: list[Any] = []

        def pre(_m, _inp, _name=name, _ranges=ranges):
            r = torch.profiler.record_function(f"module::{_name}")
            r.__enter__()
            _ranges.append(r)

        def post(_m, _inp, _out, _ranges=ranges):
            _ranges.pop().__exit__(None, None, None)

        handles += [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post)]
    return handles


def profile_step(model: str = "sri", *, image_size: int = 64, num_slots: int = 9, batch_size: int = 32,
                 likelihood: str = "mog", steps: int = 1, threads: int | None = None, amp: str | None = None,
                 depth: int = 2, top: int = 15, trace: str | None = None,
                 reference: bool = True, slot_dim: int | None = None) -> dict[str, Any]:
    """Profile `steps` training steps (after one warm-up); returns seconds per phase, the top ops by
    self time, forward/backward seconds per submodule (all per step), the achieved GFLOP/s of the
    convolutions and matmuls, and (`reference`) that of the decoders' largest layer run alone."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    from sri.bench.train_step import make_step
    from sri.models.registry import LOSS_GROUPS
    from sri.train.runtime import tune_cpu_allocator

    tune_cpu_allocator()
    if threads:
        torch.set_num_threads(int(threads))
    st = make_step(model, likelihood, image_size, num_slots, batch_size, slot_dim=slot_dim)
    net, opt, gecos, x = st.net, st.opt, st.gecos, st.x
    dtype = {None: None, "bf16": torch.bfloat16}[amp]

    def step() -> None:
        # train_step's work, split into named phases
        opt.zero_grad(set_to_none=True)
        with record_function("phase::forward"):
            with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                out = net(x)
            terms = {k: v.float().mean() for k, v in out.terms.items()}
            loss = sum(g.loss(terms[LOSS_GROUPS[k].nll], sum(terms[t] for t in LOSS_GROUPS[k].kl), update=False)
                       for k, g in gecos.items())
        with record_function("phase::backward"):
            loss.backward()
        with record_function("phase::optimizer"):
            opt.step()

    step()
    handles = _module_markers(net, depth)
    try:
        with profile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
            for _ in range(steps):
                with record_function("phase::step"):
                    step()
    finally:
        for h in handles:
            h.remove()
    if trace:
        prof.export_chrome_trace(trace)
    res = _summarise(prof.events(), steps, top)
    res["kernels"] = _kernel_rates(prof.events(), _op_flops(step), steps)
    if reference:
        res["reference_layer"] = _reference_layer(batch_size * num_slots, image_size, dtype)
    return res


_CONV_OPS, _MATMUL_OPS = ("convolution", "convolution_backward"), ("mm", "bmm", "addmm", "baddbmm")


def _op_flops(step: Any) -> dict[str, float]:
    """FLOPs of one step per aten op (torch.utils.flop_counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return {str(op).split(".")[-1]: float(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}


def _kernel_rates(events: Any, flops: dict[str, float], steps: int) -> dict[str, dict[str, float]]:
    """Seconds, FLOPs and achieved GFLOP/s of the convolutions and of the matmuls of one step."""
    out = {}
    for family, names in (("convolution", _CONV_OPS), ("matmul", _MATMUL_OPS)):
        # aten::convolution events hold their implementation (_convolution, mkldnn...) as children
        secs = sum(e.cpu_time_total if family == "convolution" else e.self_cpu_time_total
                   for e in events if e.name in {f"aten::{n}" for n in names}) / 1e6 / steps
        fl = sum(flops.get(n, 0.0) for n in names)
        out[family] = {"s": secs, "flops": fl, "gflops_per_s": fl / secs / 1e9 if secs else 0.0}
    return out


def _reference_layer(n: int, image_size: int, dtype: Any, reps: int = 2) -> dict[str, float]:
    """The decoders' largest layer alone (ConvTranspose2d 64->64, 5x5, stride 2, to full size) over
    `n` slot images, forward + backward: the rate this machine reaches on the step's dominant kernel."""
    import time

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    layer = torch.nn.ConvTranspose2d(64, 64, 5, 2, 2, 1)
    h = torch.randn(n, 64, image_size // 2, image_size // 2, requires_grad=True)

    def run() -> None:
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            y = layer(h)
        y.float().sum().backward()

    run()
    with FlopCounterMode(display=False) as counter:
        run()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    fl = float(counter.get_total_flops())
    return {"s": min(times), "flops": fl, "gflops_per_s": fl / min(times) / 1e9, "slot_images": n}


def _summarise(events: Any, steps: int, top: int) -> dict[str, Any]:
    """Phases, modules and top ops from the profiler's event list (times in seconds per step)."""
    ranges = [e for e in events if e.name.startswith(("phase::", "module::"))]
    ops = [e for e in events if not e.name.startswith(("phase::", "module::"))]

    def within(e: Any, r: Any) -> bool:
        return r.time_range.start <= e.time_range.start and e.time_range.end <= r.time_range.end

    phase_s = {r.name[7:]: 0.0 for r in ranges if r.name.startswith("phase::")}
    for r in ranges:
        if r.name.startswith("phase::"):
            phase_s[r.name[7:]] = phase_s.get(r.name[7:], 0.0) + r.cpu_time_total / 1e6 / steps
    if "step" in phase_s:
        phase_s["other"] = phase_s["step"] - sum(phase_s.get(p, 0.0) for p in _PHASES)
    # each op belongs to the innermost marked module open around it (markers nest properly)
    outside = "(model code outside submodules)"
    markers = sorted((r for r in ranges if r.name.startswith("module::")), key=lambda r: r.time_range.start)
    fwd_phase = [r for r in ranges if r.name == "phase::forward"]
    fwd_by_module: dict[str, float] = defaultdict(float)
    seq_module: dict[int, str] = {}
    stack: list[Any] = []
    mi = 0
    for e in sorted(ops, key=lambda e: e.time_range.start):
        while mi < len(markers) and markers[mi].time_range.start <= e.time_range.start:
            while stack and stack[-1].time_range.end < markers[mi].time_range.start:
                stack.pop()
            stack.append(markers[mi])
            mi += 1
        while stack and stack[-1].time_range.end < e.time_range.end:
            stack.pop()
        if not any(within(e, r) for r in fwd_phase):
            continue
        name = stack[-1].name[8:] if stack else outside
        fwd_by_module[name] += e.self_cpu_time_total / 1e6 / steps
        if getattr(e, "sequence_nr", -1) >= 0:
            seq_module.setdefault(e.sequence_nr, name)
    bwd_by_module: dict[str, float] = defaultdict(float)
    for e in ops:
        if e.name.startswith("autograd::engine::evaluate_function") and getattr(e, "sequence_nr", -1) >= 0:
            bwd_by_module[seq_module.get(e.sequence_nr, outside)] += e.cpu_time_total / 1e6 / steps
    phases = [r for r in ranges if r.name in ("phase::forward", "phase::backward", "phase::optimizer")]
    by_op: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for e in ops:
        ph = next((r.name[7:] for r in phases if within(e, r)), "other")
        by_op[e.key if hasattr(e, "key") else e.name][ph] += e.self_cpu_time_total / 1e6 / steps
    total_self = {k: sum(v.values()) for k, v in by_op.items()}
    ranked = sorted(total_self, key=total_self.get, reverse=True)[:top]
    return {"phase_s": phase_s,
            "top_ops": [{"op": k, "self_s": total_self[k], **{f"{p}_s": by_op[k].get(p, 0.0) for p in _PHASES}}
                        for k in ranked],
            "self_s_total": sum(total_self.values()),
            "modules": [{"module": k, "forward_s": fwd_by_module.get(k, 0.0), "backward_s": bwd_by_module.get(k, 0.0)}
                        for k in sorted(set(fwd_by_module) | set(bwd_by_module),
                                        key=lambda k: -(fwd_by_module.get(k, 0.0) + bwd_by_module.get(k, 0.0)))],
            "steps": steps}


def main(argv: list[str] | None = None) -> int:
    """CLI: print the profile as tables (or JSON)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from sri.models.registry import IMPLEMENTED

    p = argparse.ArgumentParser(prog="python -m sri.bench profile", description=__doc__.split("\n")[0])
    p.add_argument("--model", default="sri", choices=list(IMPLEMENTED))
    p.add_argument("--likelihood", default="mog", choices=["mog", "gaussian"])
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--num-slots", type=int, default=9)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=1, help="profiled steps after one warm-up (default 1)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--amp", default=None, choices=["bf16"])
    p.add_argument("--depth", type=int, default=2, help="module depth for the per-module split (default 2)")
    p.add_argument("--top", type=int, default=15, help="operations listed (default 15)")
    p.add_argument("--trace", default=None, help="also write a Chrome trace (chrome://tracing) here")
    p.add_argument("--no-reference", action="store_true", help="skip timing the largest decoder layer alone")
    p.add_argument("--slot-dim", type=int, default=None, help="slot width (default: the model's, 64; the demo: 32)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    res = profile_step(a.model, image_size=a.image_size, num_slots=a.num_slots, batch_size=a.batch_size,
                       likelihood=a.likelihood, steps=a.steps, threads=a.threads, amp=a.amp, depth=a.depth,
                       top=a.top, trace=a.trace, reference=not a.no_reference, slot_dim=a.slot_dim)
    if a.json:
        from sri.provenance import bench_command, provenance
        from sri.train.runtime import machine_info

        print(json.dumps({"benchmark": "profile", **res, **provenance(bench_command("profile", argv)),
                          "machine": machine_info("cpu"), "options": vars(a)},
                         indent=1))
        return 0
    print("phase      s/step")
    for k, v in res["phase_s"].items():
        print(f"{k:10s} {v:7.3f}")
    print(f"\n{'operation':40s} {'self s':>7s} {'fwd':>7s} {'bwd':>7s} {'optim':>7s}")
    for r in res["top_ops"]:
        print(f"{r['op'][:40]:40s} {r['self_s']:7.3f} {r['forward_s']:7.3f} {r['backward_s']:7.3f} "
              f"{r['optimizer_s']:7.3f}")
    print(f"{'(all operations)':40s} {res['self_s_total']:7.3f}")
    print(f"\n{'kernels':40s} {'s':>7s} {'GFLOP':>8s} {'GFLOP/s':>8s}")
    rows = dict(res["kernels"])
    if "reference_layer" in res:
        rows["largest decoder layer alone (fwd+bwd)"] = res["reference_layer"]
    for k, r in rows.items():
        print(f"{k[:40]:40s} {r['s']:7.3f} {r['flops'] / 1e9:8.1f} {r['gflops_per_s']:8.1f}")
    print(f"\n{'module':40s} {'fwd s':>7s} {'bwd s':>7s}")
    for r in res["modules"]:
        print(f"{r['module'][:40]:40s} {r['forward_s']:7.3f} {r['backward_s']:7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
