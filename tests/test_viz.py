"""One palette for every figure: the trainer's sample grids and the report's figures colour slot i alike."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image

from sri.viz import SLOT_PALETTE, colour_masks, mask_colors, slot_colours, slot_palette

GRID_GAP = 2  # white pixels after each tile of the trainer's grid


def _one_slot_per_sample(k: int, size: int = 16) -> tuple[torch.Tensor, list[int]]:
    """Masks [n,k,1,size,size] where sample j is entirely slot `slots[j]`; slot i fills i+1 samples."""
    slots = [i for i in range(k) for _ in range(i + 1)]
    masks = torch.full((len(slots), k, 1, size, size), 0.01)
    for j, i in enumerate(slots):
        masks[j, i] = 0.9
    return masks, slots


def test_palette_starts_with_matplotlibs_tab10_then_set3():
    import matplotlib

    ref = np.concatenate([matplotlib.colormaps["tab10"].colors, matplotlib.colormaps["Set3"].colors])
    assert np.array_equal(slot_colours(len(ref)), ref)  # exact: the values are k/255


def test_every_slot_keeps_its_colour_and_colours_are_distinct():
    many = slot_palette(64)
    assert many.dtype == np.uint8 and many.shape == (64, 3)
    assert len({tuple(c) for c in many}) == 64
    for k in (1, 5, len(SLOT_PALETTE), 40):
        assert np.array_equal(slot_palette(k), many[:k])
    assert np.array_equal(np.round(slot_colours(40) * 255), many[:40])


def test_masks_are_coloured_by_their_argmax_slot():
    torch.manual_seed(0)
    masks = torch.softmax(torch.randn(3, 7, 1, 5, 6), 1)
    labels = masks[:, :, 0].argmax(1).numpy()
    pal = slot_palette(7)
    assert np.array_equal(mask_colors(masks), pal[labels])
    assert np.array_equal(np.round(colour_masks(masks) * 255), pal[labels])
    assert np.array_equal(mask_colors(masks[:, :, 0]), pal[labels])  # [N,K,H,W] too


def test_trainer_grid_and_report_figure_colour_each_slot_the_same(tmp_path):
    from sri.report.figures import figure_samples
    from sri.viz import write_sample_grid

    k, size = 5, 16
    masks, slots = _one_slot_per_sample(k, size)
    images = torch.zeros(len(slots), 3, size, size)  # black: no image pixel has a slot colour
    n, cols = len(slots), 8
    grid = np.asarray(Image.open(write_sample_grid(images, masks, tmp_path / "grid.png", cols=cols)))
    nrow = -(-n // cols)
    trainer_colour: dict[int, tuple[int, ...]] = {}
    for j, slot in enumerate(slots):
        y, x = (nrow + j // cols) * (size + GRID_GAP), (j % cols) * (size + GRID_GAP)
        tile = grid[y:y + size, x:x + size].reshape(-1, 3)
        assert (tile == tile[0]).all()
        assert trainer_colour.setdefault(slot, tuple(tile[0])) == tuple(tile[0])
    assert len(set(trainer_colour.values())) == k

    fig = figure_samples([("samples", SimpleNamespace(images=images, masks=masks))], tmp_path / "fig.png")
    px = np.asarray(Image.open(fig).convert("RGB")).reshape(-1, 3)
    counts = {slot: int((px == np.array(c, dtype=np.uint8)).all(1).sum()) for slot, c in trainer_colour.items()}
    assert counts[0] > 0, f"the figure has no pixel in the trainer's colour of slot 0: {counts}"
    # slot i fills i+1 mask tiles of the figure (plus a small legend patch): in the trainer's colour
    for slot, count in counts.items():
        assert abs(count / counts[0] - (slot + 1)) < 0.2, counts


def test_the_core_never_imports_the_report_or_sacred():
    """sri.report may use the core's palette; the core (model, training, metrics, viz) never the reverse."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "sri"
    core = [root / "viz.py", root / "evaluate.py", root / "checkpoint.py", root / "objectives.py",
            root / "matching.py"]
    for pkg in ("data", "models", "train", "metrics"):
        core += sorted((root / pkg).rglob("*.py"))
    bad = []
    for path in core:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            bad += [f"{path.relative_to(root)}: {n}" for n in names
                    if n.split(".")[0] in ("sacred", "pymongo") or n.startswith("sri.report")]
    assert len(core) > 20 and not bad
