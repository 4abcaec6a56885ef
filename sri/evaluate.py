"""Evaluate a model: FID, ARI-FG, -ELBO in bits/dim (model ELBO and L_SRI), S-Acc; `sri evaluate`.

Protocols (docs/ARCHITECTURE.md, paper Section 5): FID between `num_fid` test images and as many
samples at temperature 1, both quantised to uint8 alike, with torch-fidelity's Inception pool3
features (or any registered extractor); real statistics are cached on disk. ARI-FG on the first
`num_ari` test images (decoder masks, argmax over slots). bpd: single-sample -ELBO with the
normalised likelihood on `num_bpd` validation images. S-Acc: share of `num_sacc` samples judged one
plausible stack by `sri.metrics.judge_samples` (checked against labels by eye); when FID is also
computed, the first `num_sacc` FID samples are judged (same temperature, i.i.d.).

The trainer's evaluation policy lives here too: `evaluate_run` (a training config's protocol and
sizes) and `final_evaluation` (which end-of-training metrics, how failures are skipped, what is
logged).
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from sri.data import SYNTHETIC
from sri.metrics.names import METRICS

SPLITS = {"fid": "test", "ari_fg": "test", "bpd": "val"}

_OPTIONS = dict(inception_weights=None, fid_cache_dir=None, fid_cache=True, temperature=1.0,
                seed=0, num_slots=None, num_workers=0, dataset_kwargs=None, ari_masks="masks",
                splits=None)


def parse_metrics(metrics: str | Sequence[str]) -> list[str]:
    """'fid,ari_fg' or a sequence -> validated list of metric names (order kept, no repeats)."""
    names = [m.strip() for m in (metrics.split(",") if isinstance(metrics, str) else metrics) if m.strip()]
    bad = [m for m in names if m not in METRICS]
    if bad or not names:
        raise ValueError(f"unknown metric(s) {bad or names}; choose from {', '.join(METRICS)}")
    return list(dict.fromkeys(names))


def _bar(it, progress: bool, **kw):
    from tqdm.auto import tqdm
    return tqdm(it, disable=not (progress and sys.stderr.isatty()), leave=False, **kw)


def _images(batch: Any) -> Tensor:
    return batch["image"] if isinstance(batch, dict) else batch


class _Data:
    """Datasets per split, built lazily with `sri.data.build_dataset` (or given directly)."""

    def __init__(self, dataset: Any, root: Any, image_size: int, needs: dict[str, int], opts: dict):
        self.dataset, self.root, self.image_size, self.needs, self.opts = dataset, root, image_size, needs, opts
        self.cache: dict[str, Any] = {}

    @property
    def name(self) -> str:
        return self.dataset if isinstance(self.dataset, str) else type(self.dataset).__name__

    def get(self, split: str):
        if split in self.cache:
            return self.cache[split]
        if isinstance(self.dataset, str):
            from sri.data import build_dataset
            kw = dict(self.opts["dataset_kwargs"] or {})
            if self.root is None and self.dataset in SYNTHETIC:
                kw.setdefault("num", self.needs.get(split, 1))
                kw.setdefault("image_size", self.image_size)
            ds = build_dataset(self.dataset, self.root, split, **kw)
        elif isinstance(self.dataset, dict):
            if split not in self.dataset:
                raise KeyError(f"no {split!r} split among the given datasets {sorted(self.dataset)}")
            ds = self.dataset[split]
        else:
            ds = self.dataset  # one Dataset for every split
        self.cache[split] = ds
        return ds

    def batches(self, split: str, n: int, batch_size: int, what: str) -> tuple[Iterator[dict], int]:
        ds = self.get(split)
        if len(ds) < n:
            warnings.warn(f"{what}: the {split!r} split of {self.name} has only {len(ds)} images, "
                          f"fewer than the {n} the protocol asks for; using {len(ds)}")
            n = len(ds)
        if n < 1:
            raise ValueError(f"{what}: the {split!r} split of {self.name} is empty")
        sub = torch.utils.data.Subset(ds, range(n))
        # its own generator: creating the iterator must not consume the global RNG stream
        loader = torch.utils.data.DataLoader(sub, batch_size=batch_size, shuffle=False,
                                             num_workers=self.opts["num_workers"],
                                             generator=torch.Generator().manual_seed(0))
        return iter(loader), n


def _argmax_labels(masks: Tensor) -> Tensor:
    """[B,K,1,H,W] (or [B,K,H,W]) soft masks -> [B,H,W] slot index."""
    if masks.dim() == 5:
        masks = masks.squeeze(2)
    return masks.argmax(1)


def _sample_batches(model: nn.Module, n: int, batch_size: int, gen: torch.Generator, opts: dict,
                    progress: bool, desc: str) -> Iterator[Any]:
    done = 0
    with _bar(None, progress, total=n, desc=desc, unit="img") as bar:
        while done < n:
            b = min(batch_size, n - done)
            out = model.sample(b, temperature=opts["temperature"], num_slots=opts["num_slots"], generator=gen)
            done += b
            bar.update(b)
            yield out


@torch.no_grad()
def _fid_and_sacc(model, data: _Data, want: list[str], *, device, batch_size, num_fid, num_sacc,
                  feature_extractor, progress, opts, log) -> dict[str, float]:
    from sri.metrics import fid as F
    from sri.metrics.judge import judge_samples

    res: dict[str, float] = {}
    gen = torch.Generator(device=device).manual_seed(int(opts["seed"]))
    sacc_ok: list[Tensor] = []
    if "fid" not in want:
        for out in _sample_batches(model, num_sacc, batch_size, gen, opts, progress, "S-Acc samples"):
            sacc_ok.append(judge_samples(out.images, out.masks))
        res["s_acc"] = float(torch.cat(sacc_ok).float().mean())
        return res

    ext = F.build_feature_extractor(feature_extractor, weights=opts["inception_weights"], device=device)
    layer = ext.get_requested_features_list()[0]
    split = (opts["splits"] or {}).get("fid", SPLITS["fid"])
    batches, n_real = data.batches(split, num_fid, batch_size, "FID")
    first = next(batches)
    key = dict(dataset=data.name, split=split, count=n_real, feature_extractor=feature_extractor,
               layer=layer, image_size=tuple(_images(first).shape[-2:]),
               root=str(Path(data.root).resolve()) if data.root is not None else None,
               dataset_kwargs=json.dumps(opts["dataset_kwargs"] or {}, sort_keys=True, default=str),
               fingerprint=F.image_fingerprint(_images(first)[:16]),
               extractor=F.extractor_fingerprint(ext, _images(first)))

    def real_stats() -> F.FIDStats:
        def gen_real():
            yield _images(first)
            for b in batches:
                yield _images(b)
        feats = F.extract_features(ext, _bar(gen_real(), progress, desc="FID real", unit="batch",
                                             total=math.ceil(n_real / batch_size)), device=device)
        return F.feature_statistics(feats)

    if isinstance(data.dataset, str):
        real, hit = F.cached_stats(key, real_stats, opts["fid_cache_dir"], opts["fid_cache"])
        log(f"FID real statistics ({n_real} {split} images){' from cache' if hit else ''}")
    else:
        real = real_stats()

    def fake_images():
        for out in _sample_batches(model, n_real, batch_size, gen, opts, progress, "FID samples"):
            if "s_acc" in want and sum(len(o) for o in sacc_ok) < num_sacc:
                sacc_ok.append(judge_samples(out.images, out.masks))
            yield out.images

    fake = F.feature_statistics(F.extract_features(ext, fake_images(), device=device))
    res["fid"] = F.fid_from_stats(real, fake)
    if "s_acc" in want:
        judged = torch.cat(sacc_ok)[:num_sacc]
        missing = num_sacc - judged.numel()
        if missing > 0:
            more = [judge_samples(o.images, o.masks)
                    for o in _sample_batches(model, missing, batch_size, gen, opts, progress, "S-Acc samples")]
            judged = torch.cat([judged, *more])
        res["s_acc"] = float(judged.float().mean())
    return res


@torch.no_grad()
def _ari(model, data: _Data, *, device, batch_size, num_ari, progress, opts) -> float:
    from sri.metrics import ari_fg, nanmean

    split = (opts["splits"] or {}).get("ari_fg", SPLITS["ari_fg"])
    batches, n = data.batches(split, num_ari, batch_size, "ARI-FG")
    scores = []
    for batch in _bar(batches, progress, desc="ARI-FG", unit="batch", total=math.ceil(n / batch_size)):
        if not isinstance(batch, dict) or "mask" not in batch:
            raise ValueError("ARI-FG needs ground-truth masks: dataset items must be dicts with 'mask'")
        out = model(batch["image"].to(device))
        masks = getattr(out, opts["ari_masks"])
        if masks is None:
            raise ValueError(f"the model output has no {opts['ari_masks']!r} for ARI-FG")
        scores.append(ari_fg(batch["mask"].to(device), _argmax_labels(masks)).cpu())
    return nanmean(torch.cat(scores))


@torch.no_grad()
def _bpd(model, data: _Data, want: list[str], *, device, batch_size, num_bpd, progress, opts) -> dict[str, float]:
    from sri.metrics.bpd import bits_per_dim, nelbo_nats, sri_loss_nats

    split = (opts["splits"] or {}).get("bpd", SPLITS["bpd"])
    batches, n = data.batches(split, num_bpd, batch_size, "bpd")
    sums = {"nelbo_bpd": 0.0, "sri_loss_bpd": 0.0}
    count, dims = 0, None
    for batch in _bar(batches, progress, desc="-ELBO", unit="batch", total=math.ceil(n / batch_size)):
        x = _images(batch).to(device)
        terms = model.elbo_terms(x, normalized=True)
        dims = x[0].numel()
        sums["nelbo_bpd"] += float(nelbo_nats(terms).double().sum())
        sums["sri_loss_bpd"] += float(sri_loss_nats(terms).double().sum())
        count += x.shape[0]
    return {k: float(bits_per_dim(v / count, dims)) for k, v in sums.items() if k in want}


def evaluate(model: nn.Module, *, dataset: Any, root: str | os.PathLike | None = None,
             metrics: str | Sequence[str] = ("fid", "ari_fg", "nelbo_bpd"),
             device: str | torch.device | None = None, batch_size: int = 64, num_fid: int = 10000,
             num_ari: int = 320, num_bpd: int = 5000, num_sacc: int = 1000,
             feature_extractor: str = "inception-v3-compat", progress: bool = True,
             **kw: Any) -> dict[str, float]:
    """Compute the requested metrics (`fid, ari_fg, nelbo_bpd, sri_loss_bpd, s_acc`) -> name: value.

    `dataset` is a name for `sri.data.build_dataset` (synthetic names are generated on the fly
    when `root` is None), a Dataset used for every split, or a dict split -> Dataset. Extra
    options: inception_weights, fid_cache_dir, fid_cache (bool), temperature (1.0), seed (0),
    num_slots (sampling K), num_workers, dataset_kwargs (for build_dataset), ari_masks
    ("masks" or "seg_masks"), splits (metric -> split overrides, e.g. {"bpd": "test"}).
    The model is evaluated in eval mode on `device` (default: where it is) and restored
    afterwards; the caller's RNG state is not touched.
    """
    unknown = sorted(set(kw) - set(_OPTIONS))
    if unknown:
        raise TypeError(f"evaluate() got unknown option(s) {unknown}; known: {sorted(_OPTIONS)}")
    opts = {**_OPTIONS, **kw}
    want = parse_metrics(metrics)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for name, n in dict(num_fid=num_fid, num_ari=num_ari, num_bpd=num_bpd, num_sacc=num_sacc).items():
        if n < (2 if name == "num_fid" else 1):
            raise ValueError(f"{name} must be >= {2 if name == 'num_fid' else 1}, got {n}")
    first = next(iter(model.parameters()), None)
    home = first.device if first is not None else torch.device("cpu")
    device = torch.device(device) if device is not None else home
    image_size = int(getattr(model, "options", {}).get("image_size", 64))
    needs = {SPLITS["fid"]: num_fid if "fid" in want else 0, SPLITS["bpd"]: num_bpd}
    needs[SPLITS["ari_fg"]] = max(needs[SPLITS["fid"]], num_ari if "ari_fg" in want else 0)
    data = _Data(dataset, root, image_size, needs, opts)
    log = (lambda msg: print(msg, file=sys.stderr)) if progress else (lambda msg: None)

    was_training = model.training
    model.to(device).eval()
    results: dict[str, float] = {}
    fork_devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(int(opts["seed"]))
            if "fid" in want or "s_acc" in want:
                results.update(_fid_and_sacc(model, data, want, device=device, batch_size=batch_size,
                                             num_fid=num_fid, num_sacc=num_sacc,
                                             feature_extractor=feature_extractor, progress=progress,
                                             opts=opts, log=log))
            if "ari_fg" in want:
                results["ari_fg"] = _ari(model, data, device=device, batch_size=batch_size,
                                         num_ari=num_ari, progress=progress, opts=opts)
            if "nelbo_bpd" in want or "sri_loss_bpd" in want:
                results.update(_bpd(model, data, want, device=device, batch_size=batch_size,
                                    num_bpd=num_bpd, progress=progress, opts=opts))
    finally:
        model.to(home).train(was_training)
    return {m: results[m] for m in want}


def feature_extractor_name(spec: str) -> str:
    """A registered FID feature-extractor name; "pkg.module:Class" is imported and registered first."""
    if ":" not in spec:
        return spec
    from sri.configs import ConfigError
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


def evaluate_run(model: nn.Module, metrics: Sequence[str], config: dict[str, Any], *, final: bool,
                 root: str | None, device: torch.device | str | None = None,
                 progress: bool = False) -> dict[str, float]:
    """`evaluate` under a training config's protocol: its final sizes (`num_fid`, `num_ari`,
    `num_bpd`, `num_sacc`) or, for periodic evaluation, `eval_num` of each."""
    c = config
    if final:
        sizes = {"num_fid": c["num_fid"], "num_ari": c["num_ari"], "num_bpd": c["num_bpd"],
                 "num_sacc": c["num_sacc"]}
    else:
        sizes = {k: c["eval_num"] for k in ("num_fid", "num_ari", "num_bpd", "num_sacc")}
    # evaluate sizes synthetic splits itself; pass only the other data options
    data_kw = {k: v for k, v in c["data_options"].items() if k != "num"}
    return evaluate(model, dataset=c["dataset"], root=root, metrics=tuple(metrics), device=device,
                    batch_size=c["eval_batch_size"],
                    feature_extractor=feature_extractor_name(c["fid_feature_extractor"]),
                    progress=progress, dataset_kwargs=data_kw or None, **sizes)


def _call(fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    return fn(*args, **kw)


def final_evaluation(model: nn.Module, metrics: Sequence[str],
                     evaluate_fn: Callable[[nn.Module, list[str]], dict[str, float]], *,
                     num_order: int = 0, batch_size: int = 64,
                     guard: Callable[..., Any] = _call, logger: Any = None,
                     step: int = 0) -> dict[str, float]:
    """The end-of-training metrics (`metrics`, plus order consistency over `num_order` samples).

    `evaluate_fn(model, names)` computes some of them; every call goes through
    `guard(fn, *args)` (the trainer's: eval mode, no grad, training RNG untouched). The metrics
    other than FID are computed together (they share data passes), one by one if that fails; FID
    alone. A metric that cannot run (torch-fidelity or the Inception weights missing, an error
    inside one metric) is skipped with a warning on stderr, recorded as `metrics_skipped` (and
    `fid_skipped`); the others are still computed. `logger` (log_scalar / set_info) receives each
    finite result as a scalar at `step` and all of them as `final_metrics`.
    """
    results: dict[str, float] = {}
    skipped: dict[str, str] = {}

    def info(key: str, value: Any) -> None:
        if logger is not None:
            logger.set_info(key, value)

    def attempt(names: list[str], fn, *args, **kw) -> dict[str, float] | None:
        try:
            return guard(fn, *args, **kw)
        except Exception as e:  # noqa: BLE001 - one metric must not sink the finished run
            reason = (e.args[0] if isinstance(e, KeyError) and e.args else str(e)) or type(e).__name__
            for name in names:
                skipped[name] = f"{type(e).__name__}: {reason}"
                print(f"[sri] WARNING: {name} skipped: {skipped[name]}", file=sys.stderr)
            return None

    metrics = list(metrics)
    if not metrics:
        return results
    others = [m for m in metrics if m != "fid"]
    if others:
        got = attempt(others, evaluate_fn, model, others) if len(others) > 1 else None
        if got is None:
            skipped.clear()
            for m in others:
                results.update(attempt([m], evaluate_fn, model, [m]) or {})
        else:
            results.update(got)
    if "fid" in metrics:
        results.update(attempt(["fid"], evaluate_fn, model, ["fid"]) or {})
        if "fid" in skipped:
            info("fid_skipped", skipped["fid"])
    if num_order and hasattr(model, "sample"):
        from sri.metrics.order import order_consistency_from_model

        oc = attempt(["order_consistency"], order_consistency_from_model, model,
                     num_samples=num_order, batch_size=batch_size, seed=0)
        if oc is not None:
            results["order_consistency"] = oc["order_consistency"]
    if skipped:
        info("metrics_skipped", dict(skipped))
    if logger is not None:
        for k, v in results.items():
            if v is not None and math.isfinite(float(v)):
                logger.log_scalar(k, float(v), int(step))
    info("final_metrics", {k: float(v) for k, v in results.items()})
    return {k: float(v) for k, v in results.items()}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sri evaluate", description="Evaluate a checkpoint: FID, ARI-FG, -ELBO (bpd), S-Acc.")
    p.add_argument("checkpoint", help="checkpoint file written by the trainer (sri.checkpoint)")
    p.add_argument("--metrics", default="fid,ari_fg,nelbo_bpd",
                   help=f"comma-separated, from {','.join(METRICS)} (default: %(default)s)")
    p.add_argument("--dataset", help="dataset name (default: the checkpoint's config['dataset'])")
    p.add_argument("--data-root", help="converted dataset cache (default: config['data_root'], else "
                                       "$SRI_DATA or ./data; synthetic datasets are generated on the "
                                       "fly unless $SRI_DATA_SYNTHETIC names a cache)")
    p.add_argument("--out", help="results JSON (default: <checkpoint>.eval.json beside the checkpoint)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--num-fid", type=int, default=10000, help="test images and samples for FID")
    p.add_argument("--num-ari", type=int, default=320, help="test images for ARI-FG")
    p.add_argument("--num-bpd", type=int, default=5000, help="validation images for bpd")
    p.add_argument("--num-sacc", type=int, default=1000, help="samples judged for S-Acc")
    p.add_argument("--feature-extractor", default="inception-v3-compat",
                   help="registered torch-fidelity feature extractor for FID (default: %(default)s)")
    p.add_argument("--inception-weights", help="path of weights-inception-2015-12-05-6726825d.pth "
                                               "(default: $SRI_INCEPTION_WEIGHTS or the torch hub cache)")
    p.add_argument("--no-download-weights", action="store_true",
                   help="never download the Inception weights (as $SRI_OFFLINE=1; for cluster nodes)")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import a Python module first (e.g. one that registers a feature extractor)")
    p.add_argument("--fid-cache", help="folder for cached real-image FID statistics "
                                       "(default: $SRI_FID_CACHE or ~/.cache/sri/fid_stats)")
    p.add_argument("--no-fid-cache", action="store_true", help="always recompute real statistics")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (paper: 1)")
    p.add_argument("--num-slots", type=int, default=None, help="slots when sampling (default: K)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="also load an old-format checkpoint that needs a full unpickle (this can run "
                        "code stored in the file: only for files you trust)")
    return p


def _run_cli_evaluate(model, args, dataset, root, metrics, device, data_kw) -> dict[str, float]:
    return evaluate(model, dataset=dataset, root=root, metrics=metrics, device=device,
                    dataset_kwargs=data_kw or None,
                    batch_size=args.batch_size, num_fid=args.num_fid, num_ari=args.num_ari,
                    num_bpd=args.num_bpd, num_sacc=args.num_sacc,
                    feature_extractor=args.feature_extractor, progress=not args.no_progress,
                    inception_weights=args.inception_weights, fid_cache_dir=args.fid_cache,
                    fid_cache=not args.no_fid_cache, seed=args.seed, temperature=args.temperature,
                    num_slots=args.num_slots)


def main(argv: list[str] | None = None) -> int:
    """`sri evaluate CHECKPOINT --metrics ...`: print the results and write them as JSON."""
    args = _parser().parse_args(argv)
    from sri.checkpoint import load_model
    from sri.metrics.fid import OFFLINE_ENV

    if args.no_download_weights:
        os.environ[OFFLINE_ENV] = "1"

    for mod in args.imports:
        importlib.import_module(mod)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("sri evaluate: --device cuda requested but CUDA is not available; use --device cpu",
              file=sys.stderr)
        return 2
    try:
        metrics = parse_metrics(args.metrics)
    except ValueError as e:
        print(f"sri evaluate: {e}", file=sys.stderr)
        return 2
    from sri.metrics.fid import InceptionWeightsMissing

    try:
        model, ckpt = load_model(args.checkpoint, map_location=device, trust=args.trust_checkpoint)
    except (FileNotFoundError, RuntimeError) as e:
        print(f"sri evaluate: {e}", file=sys.stderr)
        return 2
    config = ckpt.get("config") or {}
    dataset = args.dataset or config.get("dataset")
    if not dataset:
        print("sri evaluate: the checkpoint's config names no dataset; pass --dataset NAME",
              file=sys.stderr)
        return 2
    root = args.data_root or config.get("data_root")
    if root is None:  # as the trainer: $SRI_DATA (default ./data) for real datasets
        root = (os.environ.get("SRI_DATA_SYNTHETIC") or None) if dataset in SYNTHETIC \
            else os.environ.get("SRI_DATA", "data")
    from sri.data.errors import DataError

    try:
        # the training data options (e.g. a synthetic seed), except the training set size
        data_kw = ({k: v for k, v in (config.get("data_options") or {}).items() if k != "num"}
                   if dataset == config.get("dataset") else {})
        results = _run_cli_evaluate(model, args, dataset, root, metrics, device, data_kw)
    except (InceptionWeightsMissing, KeyError, DataError) as e:  # weights / extractor / dataset
        print(f"sri evaluate: {e.args[0] if isinstance(e, KeyError) and e.args else e}", file=sys.stderr)
        return 2
    for name, value in results.items():
        print(f"{name}: {value:.6g}")
    out = Path(args.out) if args.out else Path(str(args.checkpoint) + ".eval.json")
    record = {"checkpoint": str(args.checkpoint), "model": ckpt.get("model_name"), "step": ckpt.get("step"),
              "dataset": dataset, "data_root": root, "metrics": results,
              "settings": {k: getattr(args, k) for k in ("batch_size", "num_fid", "num_ari", "num_bpd",
                                                         "num_sacc", "feature_extractor", "seed",
                                                         "temperature", "num_slots", "device")}}
    record["settings"]["device"] = device
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
