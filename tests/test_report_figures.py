"""Figures from tiny checkpoints referenced by hand-made runs; order consistency from checkpoints."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from test_report_util import save_tiny_checkpoint, tiny_model, write_run

from sri.report.figures import colour_masks, default_slot_counts, figure4, make_figures, slot_colours
from sri.report.tables import collect_results, run_metrics
from sri.tracking import load_runs


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Two SRI seeds and one GENv2 seed on synthetic blocks, each with a saved tiny checkpoint."""
    root = tmp_path_factory.mktemp("figs")
    torch.manual_seed(0)
    specs = [("sri_g", "sri", 0, 80.0), ("sri_g", "sri", 1, 90.0), ("genv2_g", "genv2", 0, 120.0)]
    for i, (row, name, seed, fid) in enumerate(specs, start=1):
        ck = save_tiny_checkpoint(root / "ckpt" / f"{row}_{seed}.pt", tiny_model(name))
        write_run(root / "runs", i, table=2, row=row, dataset="blocks", seed=seed, model=name,
                  metrics={"fid": fid}, info={"checkpoint": str(ck)})
    # A failed run and a run whose checkpoint is gone are not drawn.
    write_run(root / "runs", 10, table=2, row="sri_mog", dataset="blocks", seed=0, model="sri",
              metrics={"fid": 1.0}, status="FAILED", info={"checkpoint": str(root / "ckpt" / "sri_g_0.pt")})
    write_run(root / "runs", 11, table=2, row="gen", dataset="blocks", seed=0, model="gen",
              metrics={"fid": 1.0}, info={"checkpoint": str(root / "missing.pt")})
    return root


def _pixels(path):
    return np.asarray(Image.open(path).convert("RGB"))


def test_make_figures_from_runs(store):
    out = store / "out"
    paths = make_figures(store / "runs", out, seed=3, fig6_row="sri_sa", num_samples=3)
    names = sorted(p.name for p in paths)
    assert names == sorted(f"figure{n}_blocks.png" for n in (4, 6, 12, 13, 15))
    for p in paths:
        img = _pixels(p)
        assert img.shape[0] > 100 and img.shape[1] > 100
        assert img.std() > 5  # not a blank canvas
    # Figure 4 shows both models; with no sri_sa runs Figure 6 falls back to the row with most seeds.
    assert _pixels(out / "figure4_blocks.png").shape[0] > _pixels(out / "figure13_blocks.png").shape[0] / 2
    only = make_figures(store / "runs", store / "out2", seed=3, only=[13], num_samples=3)
    assert [p.name for p in only] == ["figure13_blocks.png"]
    assert np.array_equal(_pixels(only[0]), _pixels(out / "figure13_blocks.png"))  # deterministic


def test_figure4_deterministic_given_seed(tmp_path):
    torch.manual_seed(1)
    model = tiny_model("sri")
    a = figure4([("m", model)], tmp_path / "a.png", seed=5, num_samples=2)
    b = figure4([("m", model)], tmp_path / "b.png", seed=5, num_samples=2)
    c = figure4([("m", model)], tmp_path / "c.png", seed=6, num_samples=2)
    assert np.array_equal(_pixels(a), _pixels(b))
    assert not np.array_equal(_pixels(a), _pixels(c))


def test_colour_masks_by_argmax_slot():
    masks = torch.zeros(1, 3, 1, 2, 2)
    masks[0, 0, 0, 0, 0] = 1.0
    masks[0, 2, 0, 0, 1] = 1.0
    masks[0, 1, 0, 1, :] = 1.0
    img = colour_masks(masks)
    pal = slot_colours(3)
    assert np.allclose(img[0, 0, 0], pal[0]) and np.allclose(img[0, 0, 1], pal[2])
    assert np.allclose(img[0, 1, 0], pal[1]) and np.allclose(img[0, 1, 1], pal[1])
    assert len({tuple(c) for c in slot_colours(12)}) == 12
    assert np.allclose(slot_colours(4), slot_colours(9)[:4])  # slot i keeps its colour
    assert default_slot_counts(9) == [5, 7, 9, 11, 13] and default_slot_counts(3) == [2, 3, 5, 7]


def test_order_consistency_from_checkpoint(store, tmp_path):
    from sri.checkpoint import load_model
    from sri.metrics.order import order_consistency_from_model

    runs = load_runs(store / "runs")
    run = next(r for r in runs if r.id == 1)
    cache = tmp_path / "cache.json"
    values = run_metrics(run, order="auto", order_samples=12, order_seed=4, cache=cache)
    model, _ = load_model(run.checkpoint)
    direct = order_consistency_from_model(model, num_samples=12, seed=4)
    assert values["order_consistency"] == pytest.approx(direct["order_consistency"])
    assert cache.is_file()
    assert run_metrics(run, order="auto", order_samples=12, order_seed=4,
                       cache=cache)["order_consistency"] == values["order_consistency"]
    assert "order_consistency" not in run_metrics(run, order="logged")
    results = collect_results(runs, order="auto", order_samples=8, cache=None)
    assert results[(2, "sri_g", "blocks", "order_consistency")].n == 2
    assert results[(2, "genv2_g", "blocks", "order_consistency")].n == 1


def test_figure_labels_state_preset_and_step(tmp_path):
    from types import SimpleNamespace

    from sri.report.figures import FigureRun

    fr = FigureRun(table=2, row="sri_g", dataset="blocks", seed=1,
                   run=SimpleNamespace(config={"preset": "demo"}), checkpoint=tmp_path / "ckpt_00017521.pt")
    assert fr.preset == "demo" and fr.step == 17521
    assert fr.label.endswith("(table 2, seed 1, preset demo, step 17521)")


def test_a_crafted_dataset_name_cannot_write_outside_the_figures_folder(tmp_path):
    """Issue 27: a store run whose dataset holds '../' made `make figures` write outside --out."""
    torch.manual_seed(0)
    ck = save_tiny_checkpoint(tmp_path / "ckpt" / "sri.pt", tiny_model("sri"))
    escape = tmp_path / "escape"
    write_run(tmp_path / "runs", 1, table=2, row="sri_g", dataset=f"x/../../{escape.name}/pwn", seed=0,
              model="sri", metrics={"fid": 1.0}, info={"checkpoint": str(ck)})
    out = tmp_path / "figs" / "deeper"
    with pytest.warns(UserWarning, match="not usable in a file name"):
        paths = make_figures(tmp_path / "runs", out, seed=0, num_samples=2, only=[4])
    assert paths == [] and not escape.exists()
    assert not list(tmp_path.glob("**/pwn*"))
