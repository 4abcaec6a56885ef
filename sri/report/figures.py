"""Figures 4, 6, 12, 13 and 15 (paper style) from the checkpoints that logged runs reference.

All sampling goes through a `torch.Generator` (or a forked, seeded RNG for inference), so a
figure is a deterministic function of the checkpoint and `seed`. Masks are coloured by slot
index with the one palette of `sri.viz` (the trainer's sample grids use it too) and every mask
figure carries the Figure 7 legend (slot 1..K).
"""
from __future__ import annotations

import contextlib
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from sri.atomicio import atomic_target
from sri.names import is_safe_name
from sri.report.paper import DATASET_LABELS, NON_AUTOREGRESSIVE, ORDERED_POSTERIOR, TABLES
from sri.viz import colour_masks, slot_colours, to_hwc  # one palette for every figure

# Preferred SRI runs for Figures 12, 13 and 15 (the paper uses SRI-MoG), best first.
SRI_PREFERENCE = ((2, "sri_mog"), (4, "sri"), (1, "sri"), (2, "sri_g"), (3, "d"))
GAP = 2  # pixels between tiles


def pyplot():
    """matplotlib.pyplot with the file-only Agg backend selected."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# -- tiles (slot colours and mask colouring: sri.viz) -------------------------------------------
def montage(rows: Sequence[np.ndarray], gap: int = GAP) -> np.ndarray:
    """Tile rows of `[n,H,W,3]` arrays into one white-separated image."""
    h, w = rows[0].shape[1:3]
    n = max(r.shape[0] for r in rows)
    out = np.ones((len(rows) * (h + gap) - gap, n * (w + gap) - gap, 3))
    for i, r in enumerate(rows):
        for j, tile in enumerate(r):
            out[i * (h + gap): i * (h + gap) + h, j * (w + gap): j * (w + gap) + w] = tile
    return out


def add_slot_legend(fig: Any, k: int) -> None:
    """The Figure 7 legend: one colour patch per slot number 1..k below the panels of `fig`
    (a figure made with layout="constrained")."""
    from matplotlib.patches import Patch

    colours = slot_colours(k)
    handles = [Patch(facecolor=colours[i], edgecolor="black", label=str(i + 1)) for i in range(k)]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(k, 16), frameon=False,
               title="slot", handlelength=1.2, columnspacing=0.8, fontsize=8, title_fontsize=8)


def save_figure(fig: Any, path: Path) -> Path:
    """Write `fig` to `path` atomically, close it and return the path."""
    try:
        with atomic_target(path) as tmp:  # a full disk keeps the previous figure, never a 0-byte PNG
            fig.savefig(tmp, dpi=100, metadata={"Software": None})
    finally:
        pyplot().close(fig)
    return path


# -- sampling -----------------------------------------------------------------------------------
def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def sample(model: torch.nn.Module, n: int, seed: int, temperature: float = 1.0,
           num_slots: int | None = None):
    """`model.sample` with a generator seeded by `seed` on the model's device."""
    gen = torch.Generator(device=_device_of(model))
    gen.manual_seed(int(seed))
    with torch.no_grad():
        return model.sample(n, temperature=temperature, num_slots=num_slots, generator=gen)


@contextlib.contextmanager
def seeded(seed: int, device: torch.device):
    """Fork the global RNGs (CPU and, if used, the CUDA device) and seed them."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        yield


# -- the figures --------------------------------------------------------------------------------
def figure_samples(panels: Sequence[tuple[str, Any]], path: Path, *, title: str = "",
                   show_masks: bool = True, layout: str = "rows") -> Path:
    """Generic sample figure: each panel `(label, SampleOutput)` shows images (and slot-coloured
    masks) of its samples; panels stacked vertically ("rows") or side by side ("columns")."""
    plt = pyplot()
    tiles = []
    k_max = 1
    for label, out in panels:
        rows = [to_hwc(out.images)]
        if show_masks:
            rows.append(colour_masks(out.masks))
            k_max = max(k_max, out.masks.shape[1])
        tiles.append((label, montage(rows)))
    h0, w0 = tiles[0][1].shape[:2]
    scale = _scale(panels[0][1].images.shape[-1])
    if layout == "rows":
        fig, axes = plt.subplots(len(tiles), 1, squeeze=False, layout="constrained",
                                 figsize=(max(4.0, w0 * scale + 0.4),
                                          len(tiles) * (h0 * scale + 0.35) + (0.9 if show_masks else 0.4)))
        axes = axes[:, 0]
    else:
        fig, axes = plt.subplots(1, len(tiles), squeeze=False, layout="constrained",
                                 figsize=(max(4.0, len(tiles) * (w0 * scale + 0.3)),
                                          h0 * scale + (1.4 if show_masks else 0.9)))
        axes = axes[0]
    for ax, (label, img) in zip(axes, tiles):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(_wrap(title, fig.get_size_inches()[0]), fontsize=10)
    if show_masks:
        add_slot_legend(fig, k_max)
    return save_figure(fig, path)


def _scale(tile_px: int) -> float:
    """Inches per pixel: 64-px tiles at 1.6 in, small tiles enlarged to at least 0.9 in."""
    return max(1.6 / 64, 0.9 / max(1, tile_px))


def _wrap(text: str, width_in: float) -> str:
    import textwrap

    return "\n".join(textwrap.fill(part, max(20, int(width_in * 12))) for part in text.split("\n"))


def figure4(models: Sequence[tuple[str, torch.nn.Module]], path: Path, *, seed: int = 0,
            num_samples: int = 8, title: str = "") -> Path:
    """Figure 4 style: random samples of each model with slot-index-coloured masks + legend."""
    panels = [(label, sample(m, num_samples, seed)) for label, m in models]
    return figure_samples(panels, path, title=title or "Generation order (Figure 4 style)")


def figure6(models: Sequence[tuple[str, torch.nn.Module, float | None]], path: Path, *,
            seed: int = 0, num_samples: int = 2, title: str = "") -> Path:
    """Figure 6 style: `num_samples` samples per seed's model, annotated with its FID."""
    panels = []
    for label, m, fid in models:
        fid_text = "FID n/a" if fid is None else f"FID {fid:.1f}"
        panels.append((f"{label}\n{fid_text}", sample(m, num_samples, seed)))
    return figure_samples(panels, path, title=title or "Samples per seed (Figure 6 style)",
                          layout="columns")


def default_slot_counts(k: int) -> list[int]:
    """K values for Figure 12: the training K and a few fewer / more slots."""
    return sorted({max(2, k + d) for d in (-4, -2, 0, 2, 4)})


def figure12(model: torch.nn.Module, path: Path, *, seed: int = 0, num_samples: int = 6,
             slot_counts: Sequence[int] | None = None, title: str = "") -> Path:
    """Figure 12 style: samples with test-time K different from training K."""
    k = int(getattr(model, "num_slots", None) or model.options["num_slots"])
    counts = list(slot_counts) if slot_counts else default_slot_counts(k)
    panels = [(f"K = {c}" + (" (training K)" if c == k else ""),
               sample(model, num_samples, seed, num_slots=c)) for c in counts]
    return figure_samples(panels, path, title=title or "Other numbers of slots (Figure 12 style)")


def figure13(model: torch.nn.Module, path: Path, *, seed: int = 0, num_samples: int = 8,
             temperatures: Sequence[float] = (0.5, 0.7, 0.9, 1.0, 1.1), title: str = "") -> Path:
    """Figure 13 style: samples at several temperatures tau (same generator seed per row)."""
    panels = [(f"τ = {t:g}", sample(model, num_samples, seed, temperature=t)) for t in temperatures]
    return figure_samples(panels, path, title=title or "Temperature sweep (Figure 13 style)",
                          show_masks=False)


def figure15(model: torch.nn.Module, images: torch.Tensor, path: Path, *, seed: int = 0,
             title: str = "") -> Path:
    """Figure 15 style: per data image, input | reconstruction + masks (aligned posterior) |
    imagination rollout from q(s|x) + masks."""
    if not hasattr(model, "imagine"):
        raise TypeError(f"{type(model).__name__} has no imagine(): Figure 15 needs an SRI model")
    device = _device_of(model)
    x = images.to(device)
    with torch.no_grad(), seeded(seed, device):
        out = model(x)
        imag = model.imagine(x)
    columns = [("input", to_hwc(x)), ("recon.", to_hwc(out.recon)),
               ("recon. masks", colour_masks(out.masks)), ("imagined", to_hwc(imag.images)),
               ("imag. masks", colour_masks(imag.masks))]
    plt = pyplot()
    tiles = [_column(c) for _, c in columns]
    scale = max(_scale(x.shape[-1]), 1.1 / x.shape[-1])
    h, w = tiles[0].shape[:2]
    fig, axes = plt.subplots(1, len(tiles), figsize=(max(5.0, len(tiles) * (w * scale + 0.25) + 0.4),
                                                     h * scale + 1.6), squeeze=False,
                             layout="constrained")
    for ax, (label, _), tile in zip(axes[0], columns, tiles):
        ax.imshow(tile, interpolation="nearest")
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    fig.suptitle(_wrap(title or "Reconstruction vs imagination (Figure 15 style)",
                       fig.get_size_inches()[0]), fontsize=10)
    add_slot_legend(fig, max(out.masks.shape[1], imag.masks.shape[1]))
    return save_figure(fig, path)


def _column(tiles: np.ndarray, gap: int = GAP) -> np.ndarray:
    """Stack `[n,H,W,3]` tiles vertically with white gaps."""
    return montage([t[None] for t in tiles], gap)


# -- from runs ----------------------------------------------------------------------------------
@dataclass
class FigureRun:
    """A completed run with a loadable checkpoint."""

    table: int
    row: str
    dataset: str
    seed: Any
    run: Any
    checkpoint: Path

    @property
    def label(self) -> str:
        spec = TABLES.get(self.table)
        name = spec.row_labels.get(self.row, spec.paper_row(self.row)) if spec else self.row
        return f"{name} (table {self.table}, seed {self.seed}, preset {self.preset}, step {self.step})"

    @property
    def preset(self) -> str:
        return str((getattr(self.run, "config", None) or {}).get("preset", "?"))

    @property
    def step(self) -> int | str:
        digits = "".join(ch for ch in self.checkpoint.stem if ch.isdigit())
        return int(digits) if digits else "?"


def figure_runs(runs: Iterable[Any], preset: str = "all") -> list[FigureRun]:
    """Latest completed run (of `preset`; "all": any) per (table, row, dataset, seed) whose
    checkpoint exists."""
    from sri.report.tables import ALL_PRESETS, run_key, run_preset, run_recency

    chosen: dict[tuple, Any] = {}
    for run in runs:
        key = run_key(run)
        if run.status != "COMPLETED" or key is None:
            continue
        if not all(is_safe_name(str(part)) for part in key):  # parts become file names
            warnings.warn(f"skipping run {getattr(run, 'id', '?')}: its table/row/dataset/seed {key} is not "
                          f"usable in a file name (a damaged or crafted run record)")
            continue
        if preset != ALL_PRESETS and run_preset(run) != preset:
            continue
        if key not in chosen or run_recency(run) > run_recency(chosen[key]):
            chosen[key] = run
    out = []
    for key, run in sorted(chosen.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        ckpt = run.checkpoint_path()
        if ckpt is not None:
            out.append(FigureRun(*key, run=run, checkpoint=ckpt))
    return out


class _Models:
    """Loads each checkpoint once; remembers failures."""

    def __init__(self, device: str | None, trust: bool = False) -> None:
        self.device = device or "cpu"
        self.trust = trust
        self.cache: dict[Path, torch.nn.Module | None] = {}

    def get(self, fr: FigureRun) -> torch.nn.Module | None:
        if fr.checkpoint not in self.cache:
            from sri.checkpoint import load_model

            try:
                model, _ = load_model(fr.checkpoint, map_location=self.device, trust=self.trust)
            except Exception as e:
                warnings.warn(f"cannot load {fr.checkpoint} (run {fr.run.id}): {type(e).__name__}: {e}")
                model = None
            self.cache[fr.checkpoint] = model
        return self.cache[fr.checkpoint]


def _first_seed(frs: Sequence[FigureRun]) -> FigureRun:
    return min(frs, key=lambda f: (f.seed is None, f.seed if isinstance(f.seed, int) else 0))


def _pick_sri(frs: Sequence[FigureRun], models: _Models, need: str = "sample") -> FigureRun | None:
    ranked = sorted(frs, key=lambda f: (SRI_PREFERENCE.index((f.table, f.row))
                                        if (f.table, f.row) in SRI_PREFERENCE else len(SRI_PREFERENCE),
                                        f.table, f.row, str(f.seed)))
    for f in ranked:
        if str(f.run.config.get("model", "")) not in ORDERED_POSTERIOR:
            continue
        m = models.get(f)
        if m is not None and hasattr(m, need):
            return f
    return None


def _data_images(fr: FigureRun, model: torch.nn.Module, n: int, data_root: str | None) -> torch.Tensor:
    from sri.data import build_dataset

    cfg = fr.run.config
    root = data_root or cfg.get("data_root") or cfg.get("root")
    size = int(model.options.get("image_size", 64))
    if root is None and fr.dataset in ("blocks", "shapes"):
        ds = build_dataset(fr.dataset, None, "test", num=n, image_size=size, seed=0)
    else:
        ds = build_dataset(fr.dataset, root, "test", num=n)
    return torch.stack([ds[i]["image"] for i in range(min(n, len(ds)))]).float()


def make_figures(store: str | os.PathLike | None = None, out_dir: str | os.PathLike = "figures", *,
                 seed: int = 0, datasets: Sequence[str] | None = None,
                 rows: Sequence[str] | None = None, fig6_row: str = "sri_sa", num_samples: int = 8,
                 data_root: str | None = None, device: str | None = None,
                 only: Sequence[int] | None = None, runs: Sequence[Any] | None = None,
                 preset: str = "all", trust_checkpoint: bool = False) -> list[Path]:
    """`make figures`: write figure{4,6,12,13,15}_<dataset>.png for the runs (of `preset`) in
    `store`; old-format checkpoints are loaded only with `trust_checkpoint`."""
    from sri.tracking import load_runs

    out = Path(out_dir)
    wanted = set(only or (4, 6, 12, 13, 15))
    all_runs = figure_runs(load_runs(store, final_only=True) if runs is None else runs, preset=preset)
    models = _Models(device, trust=trust_checkpoint)
    written: list[Path] = []
    by_dataset: dict[str, list[FigureRun]] = {}
    for fr in all_runs:
        by_dataset.setdefault(fr.dataset, []).append(fr)
    for dataset, frs in sorted(by_dataset.items()):
        if datasets and dataset not in datasets:
            continue
        name = DATASET_LABELS.get(dataset, dataset)
        generative = [f for f in frs if str(f.run.config.get("model", "")) not in NON_AUTOREGRESSIVE]
        if 4 in wanted:
            groups: dict[tuple[int, str], list[FigureRun]] = {}
            for f in generative:
                if rows is None or f.row in rows:
                    groups.setdefault((f.table, f.row), []).append(f)
            panel_models = []
            for (table, row), g in sorted(groups.items(), key=lambda kv: (kv[0][0], _row_index(*kv[0]))):
                f = _first_seed(g)
                m = models.get(f)
                if m is not None and hasattr(m, "sample"):
                    panel_models.append((f.label, m))
            if panel_models:
                written.append(figure4(panel_models, out / f"figure4_{dataset}.png", seed=seed,
                                       num_samples=num_samples,
                                       title=f"{name}: generation order (Figure 4 style)"))
        if 6 in wanted:
            per_row: dict[tuple[int, str], list[FigureRun]] = {}
            for f in generative:
                per_row.setdefault((f.table, f.row), []).append(f)
            chosen = [k for k in per_row if k[1] == fig6_row]
            if not chosen and per_row:
                chosen = [max(per_row, key=lambda k: (len(per_row[k]), -k[0]))]
            if chosen:
                key = chosen[0]
                entries = []
                for f in sorted(per_row[key], key=lambda f: str(f.seed)):
                    m = models.get(f)
                    if m is not None and hasattr(m, "sample"):
                        entries.append((f"seed {f.seed}, preset {f.preset}, step {f.step}", m,
                                        f.run.final("fid")))
                if entries:
                    label = TABLES[key[0]].paper_row(key[1]) if key[0] in TABLES else key[1]
                    written.append(figure6(entries, out / f"figure6_{dataset}.png", seed=seed,
                                           title=f"{name}: {label} per seed (Figure 6 style)"))
        sri_run = _pick_sri(generative, models) if wanted & {12, 13, 15} else None
        if sri_run is None:
            continue
        m = models.get(sri_run)
        if 12 in wanted:
            written.append(figure12(m, out / f"figure12_{dataset}.png", seed=seed,
                                    title=f"{name}: {sri_run.label}, other K (Figure 12 style)"))
        if 13 in wanted:
            written.append(figure13(m, out / f"figure13_{dataset}.png", seed=seed,
                                    title=f"{name}: {sri_run.label}, temperature (Figure 13 style)"))
        if 15 in wanted and hasattr(m, "imagine"):
            try:
                images = _data_images(sri_run, m, 6, data_root)
            except Exception as e:
                print(f"warning: Figure 15 for {dataset} skipped: no test images "
                      f"({type(e).__name__}: {e}); pass --data-root", file=sys.stderr)
            else:
                written.append(figure15(m, images, out / f"figure15_{dataset}.png", seed=seed,
                                        title=f"{name}: {sri_run.label} (Figure 15 style)"))
    return written


def _row_index(table: int, row: str) -> int:
    rows = list(TABLES[table].rows) if table in TABLES else []
    return rows.index(row) if row in rows else len(rows)
