"""ShapeStacks conversion on a tiny tree in the official layout, against an independent reference."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sri.data import DataError, build_dataset
from sri.data.cache import is_complete
from sri.data.shapestacks import convert_shapestacks

_spec = importlib.util.spec_from_file_location("sri_test_data_formats",
                                               Path(__file__).with_name("test_data_formats.py"))
fmt = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fmt)


def nearest_reference(lab: np.ndarray, size: int = 64) -> np.ndarray:
    """Centre crop 196 (offset 14) then nearest with pixel centres: src = floor((i + 0.5) * 196 / size)."""
    crop = lab[14:210, 14:210]
    idx = np.floor((np.arange(size) + 0.5) * 196 / size).astype(int)
    return crop[idx][:, idx]


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "shapestacks"
    truth = fmt.make_shapestacks(root, np.random.default_rng(0))
    return root, truth


def test_convert_every_pixel_and_label(tree, tmp_path):
    root, truth = tree
    meta = convert_shapestacks(root, tmp_path / "ss", workers=1, shard_size=3, progress=False)
    assert meta["counts"] == {"train": 4, "val": 2, "test": 2} and meta["image_size"] == 64
    order = {"train": ["s-train-0", "s-train-1"], "val": ["s-eval-0"], "test": ["s-test-0"]}
    for split, scens in order.items():
        ds = build_dataset("shapestacks", tmp_path / "ss", split)
        expected = [pair for s in scens for pair in truth[s]]
        assert len(ds) == len(expected)
        for item, (img, lab) in zip(ds, expected):
            ref_img = np.asarray(Image.fromarray(img[14:210, 14:210]).resize((64, 64), Image.BILINEAR))
            got = (item["image"] * 255).round().byte().permute(1, 2, 0).numpy()
            np.testing.assert_array_equal(got, ref_img)
            ref = nearest_reference(lab)
            ref = np.where(ref == 7, 0, ref)  # unassigned -> background
            np.testing.assert_array_equal(item["mask"].numpy(), ref)
            assert item["num_objects"] == 3
            assert 7 not in np.unique(item["mask"].numpy())


def test_multiprocess_equals_single_process(tree, tmp_path):
    root, _ = tree
    a = convert_shapestacks(root, tmp_path / "a", workers=1, progress=False)
    b = convert_shapestacks(root, tmp_path / "b", workers=2, progress=False)
    assert a["counts"] == b["counts"]
    for split in ("train", "val", "test"):
        for f in ("images", "masks", "num_objects"):
            np.testing.assert_array_equal(np.load(tmp_path / "a" / split / f"{f}.npy"),
                                          np.load(tmp_path / "b" / split / f"{f}.npy"))


def test_split_file_naming_missing_scenario(tree, tmp_path):
    root, _ = tree
    (root / "splits" / "default" / "eval.txt").write_text("s-eval-0\ns-ghost-9\n")
    with pytest.raises(DataError, match=r"eval\.txt line 2 names scenario 's-ghost-9'.*does not exist"):
        convert_shapestacks(root, tmp_path / "o", workers=1, progress=False)
    assert not is_complete(tmp_path / "o")


def test_missing_mask_names_scenario(tree, tmp_path):
    root, _ = tree
    (root / "recordings" / "s-train-1" / "iseg-w=0-f=0-l=0-c=original-cam_2-mono-0.map").unlink()
    with pytest.raises(DataError, match=r"scenario 's-train-1': mask iseg-w=0-f=0-l=0-c=original-cam_2-mono-0\.map"):
        convert_shapestacks(root, tmp_path / "o", workers=1, progress=False)


def test_not_a_root(tmp_path):
    with pytest.raises(DataError, match=r"recordings is missing.*sri data download shapestacks"):
        convert_shapestacks(tmp_path, tmp_path / "o", progress=False)


def test_corrupt_image_names_scenario(tree, tmp_path):
    root, _ = tree
    (root / "recordings" / "s-test-0" / "rgb-w=0-f=0-l=0-c=original-cam_1-mono-0.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"scenario 's-test-0': cannot read"):
        convert_shapestacks(root, tmp_path / "o", workers=1, progress=False)
    assert not is_complete(tmp_path / "o")
    # the shards converted before the failure are kept for a resume
    assert (tmp_path / "o" / "shards" / "manifest.json").is_file()


def _rewrite_masks(root: Path, fn) -> int:
    n = 0
    for p in root.rglob("iseg-*.map"):
        with Image.open(p) as im:
            arr = np.asarray(im)
        fmt_ = im.format
        Image.fromarray(fn(arr).astype(np.uint8)).save(p, format=fmt_)
        n += 1
    return n


def test_masks_saved_with_raw_labels_convert_like_the_official_ones(tree, tmp_path):
    root, _ = tree
    official = convert_shapestacks(root, tmp_path / "a", workers=1, progress=False)
    assert _rewrite_masks(root, lambda a: a // 32) > 0  # the same labels, 0-7 instead of 32 * label
    raw = convert_shapestacks(root, tmp_path / "b", workers=1, progress=False)
    assert raw["counts"] == official["counts"]
    for split in ("train", "test"):
        a, b = build_dataset("shapestacks", tmp_path / "a", split), build_dataset("shapestacks", tmp_path / "b", split)
        for i in range(len(a)):
            assert np.array_equal(a[i]["mask"].numpy(), b[i]["mask"].numpy()) and a[i]["num_objects"] == 3


def test_masks_in_an_unknown_encoding_or_without_objects_are_refused(tree, tmp_path):
    root, _ = tree
    _rewrite_masks(root, lambda a: np.where(a > 0, a // 32 * 10 + 3, 0))  # 13, 23, ...: neither encoding
    with pytest.raises(DataError, match="neither 32 \\* label"):
        convert_shapestacks(root, tmp_path / "c", workers=1, progress=False)
    _rewrite_masks(root, lambda a: np.zeros_like(a))
    with pytest.raises(DataError, match="no object in any converted mask"):
        convert_shapestacks(root, tmp_path / "d", workers=1, progress=False)
    assert not is_complete(tmp_path / "d")
