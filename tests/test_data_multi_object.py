"""CLEVR6 / Objects Room conversion from TFRecords written by the tests' own writer, checked
pixel by pixel against an independent reference; bad input; resume after an interruption."""
from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import sri.data.multi_object as mo
from sri.data import DataError, build_dataset
from sri.data.cache import is_complete

_spec = importlib.util.spec_from_file_location("sri_test_data_formats",
                                               Path(__file__).with_name("test_data_formats.py"))
fmt = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fmt)

# object counts per raw record; > 6 objects are filtered out of CLEVR6
CLEVR_COUNTS = [3, 8, 6, 2, 7, 4, 5]


def bilinear_reference(img: np.ndarray, size: int) -> np.ndarray:
    """Brute-force bilinear resize, half-pixel centres, no antialias, round half to even."""
    H, W, _ = img.shape
    out = np.zeros((size, size, 3))
    for i in range(size):
        y = max((i + 0.5) * H / size - 0.5, 0.0)
        y0 = int(np.floor(y)); y1 = min(y0 + 1, H - 1); ly = y - y0
        for j in range(size):
            x = max((j + 0.5) * W / size - 0.5, 0.0)
            x0 = int(np.floor(x)); x1 = min(x0 + 1, W - 1); lx = x - x0
            out[i, j] = ((1 - ly) * ((1 - lx) * img[y0, x0] + lx * img[y0, x1])
                         + ly * ((1 - lx) * img[y1, x0] + lx * img[y1, x1]))
    return np.round(out).astype(np.uint8)


def label_reference(mask: np.ndarray, crop, size: int, background: int) -> tuple[np.ndarray, int]:
    """One-hot masks -> torch nearest resize -> argmax -> objects renumbered 1..n in entity order."""
    m = mask[..., 0].astype(np.float32) / 255.0
    if crop is not None:
        r0, r1, c0, c1 = crop
        m = m[:, r0:r1, c0:c1]
    if m.shape[1] != size:
        m = F.interpolate(torch.from_numpy(m)[None], size=(size, size), mode="nearest")[0].numpy()
    lab = m.argmax(0)
    lab = np.where(lab < background, 0, lab)
    out = np.zeros_like(lab)
    objs = [e for e in np.unique(lab) if e != 0]
    for k, e in enumerate(objs, 1):
        out[lab == e] = k
    return out.astype(np.uint8), len(objs)


@pytest.fixture(scope="module")
def clevr(tmp_path_factory):
    rng = np.random.default_rng(0)
    scenes = [fmt.clevr_scene(rng, n, outside=(i == 0), hidden=(i == 2)) for i, n in enumerate(CLEVR_COUNTS)]
    path = fmt.write_tfrecords(tmp_path_factory.mktemp("clevr") / "clevr_with_masks_train.tfrecords",
                               [fmt.example(s) for s in scenes])
    return path, scenes


def test_clevr6_every_pixel_and_label(clevr, tmp_path):
    path, scenes = clevr
    out = tmp_path / "clevr6"
    meta = mo.convert_multi_object("clevr6", path, out, test_size=2, val_size=1, shard_size=3, progress=False)
    kept = [s for s, n in zip(scenes, CLEVR_COUNTS) if n <= 6]
    assert meta["raw_records"] == 7 and meta["kept_records"] == len(kept) == 5
    assert meta["counts"] == {"test": 2, "val": 1, "train": 2} and meta["image_size"] == 96
    assert is_complete(out) and not (out / "shards").exists()
    crop = (29, 221, 64, 256)
    expect = []
    for s in kept:
        img = bilinear_reference(s["image"][29:221, 64:256].astype(np.float64), 96)
        lab, n = label_reference(s["mask"], crop, 96, 1)
        expect.append((img, lab, n))
    # the first scene's object 1 lies outside the crop: 2 objects left
    assert expect[0][2] == 2
    order = {"test": [0, 1], "val": [2], "train": [3, 4]}
    for split, idx in order.items():
        ds = build_dataset("clevr6", out, split)
        assert len(ds) == len(idx)
        for item, k in zip(ds, idx):
            img, lab, n = expect[k]
            np.testing.assert_array_equal((item["image"] * 255).round().byte().permute(1, 2, 0).numpy(), img)
            np.testing.assert_array_equal(item["mask"].numpy(), lab)
            assert item["num_objects"] == n
            assert item["image"].dtype == torch.float32 and item["mask"].dtype == torch.int64
    # root may also be the parent directory holding clevr6/
    assert len(build_dataset("clevr6", tmp_path, "train")) == 2
    # re-running on a finished cache is a no-op
    assert mo.convert_multi_object("clevr6", path, out, test_size=2, val_size=1, shard_size=3,
                                   progress=False)["created"] == meta["created"]


def test_objects_room_background_entities(tmp_path):
    rng = np.random.default_rng(1)
    scenes = [fmt.objects_room_scene(rng, n) for n in (1, 3, 2)]
    path = fmt.write_tfrecords(tmp_path / "objects_room_train.tfrecords", [fmt.example(s) for s in scenes])
    meta = mo.convert_multi_object("objects_room", path, tmp_path / "or", test_size=1, val_size=1, progress=False)
    assert meta["counts"] == {"test": 1, "val": 1, "train": 1}
    for split, k in (("test", 0), ("val", 1), ("train", 2)):
        item = build_dataset("objects_room", tmp_path / "or", split)[0]
        lab, n = label_reference(scenes[k]["mask"], None, 64, 4)
        np.testing.assert_array_equal(item["mask"].numpy(), lab)
        np.testing.assert_array_equal((item["image"] * 255).round().byte().permute(1, 2, 0).numpy(), scenes[k]["image"])
        assert item["num_objects"] == n == (1, 3, 2)[k]
        assert item["mask"].max() == n


def test_split_counts_default_and_overrides(clevr, tmp_path):
    path, _ = clevr
    meta = mo.convert_multi_object("clevr6", path, tmp_path / "a", progress=False)  # 10K/10K defaults
    assert meta["counts"] == {"test": 5, "val": 0, "train": 0}
    meta = mo.convert_multi_object("clevr6", path, tmp_path / "b", test_size=0, val_size=2, progress=False)
    assert meta["counts"] == {"test": 0, "val": 2, "train": 3}


# ------------------------------------------------------------------------------------ bad input
def _assert_not_complete(out: Path):
    assert not is_complete(out)
    with pytest.raises(DataError):
        build_dataset("clevr6", out, "train")


def test_truncated_gzip_file(clevr, tmp_path):
    path, _ = clevr
    bad = tmp_path / "trunc.tfrecords"
    raw = path.read_bytes()
    bad.write_bytes(raw[: int(len(raw) * 0.6)])
    with pytest.raises(DataError, match=r"trunc\.tfrecords: .*(truncated record \d|truncated after record)"):
        mo.convert_multi_object("clevr6", bad, tmp_path / "o", progress=False)
    _assert_not_complete(tmp_path / "o")


def test_crc_mismatch_names_record(tmp_path):
    rng = np.random.default_rng(2)
    exs = [fmt.example(fmt.clevr_scene(rng, 2)) for _ in range(3)]
    bad = fmt.write_tfrecords(tmp_path / "crc.tfrecords", exs, corrupt=1)
    with pytest.raises(DataError, match=r"crc\.tfrecords: CRC mismatch in the data of record 1"):
        mo.convert_multi_object("clevr6", bad, tmp_path / "o", progress=False)
    _assert_not_complete(tmp_path / "o")


def test_wrong_feature_shape_names_record(tmp_path):
    rng = np.random.default_rng(3)
    good = fmt.clevr_scene(rng, 2)
    wrong = dict(good, image=good["image"][:239])
    bad = fmt.write_tfrecords(tmp_path / "shape.tfrecords", [fmt.example(good), fmt.example(wrong)])
    with pytest.raises(DataError, match=r"shape\.tfrecords: record 1: feature 'image' has 229440 values, "
                                        r"expected \[240,320,3\]"):
        mo.convert_multi_object("clevr6", bad, tmp_path / "o", progress=False)
    _assert_not_complete(tmp_path / "o")
    # Objects Room records fed to the CLEVR6 converter: wrong dataset
    orr = fmt.write_tfrecords(tmp_path / "or.tfrecords", [fmt.example(fmt.objects_room_scene(rng, 1))])
    with pytest.raises(DataError, match=r"or\.tfrecords: record 0 has no feature 'visibility'"):
        mo.convert_multi_object("clevr6", orr, tmp_path / "o2", progress=False)


def test_missing_source_and_missing_cache_messages(tmp_path):
    with pytest.raises(DataError, match=r"nope\.tfrecords: no such file.*sri data download clevr6"):
        mo.convert_multi_object("clevr6", tmp_path / "nope.tfrecords", tmp_path / "o", progress=False)
    with pytest.raises(DataError, match=r"clevr6.*sri data convert --dataset clevr6"):
        build_dataset("clevr6", tmp_path / "empty", "train")
    with pytest.raises(DataError, match=r"needs root=.*sri data convert --dataset objects_room"):
        build_dataset("objects_room", None, "train")


# --------------------------------------------------------------------------------------- resume
def test_resume_after_interruption_skips_finished_shards(clevr, tmp_path, monkeypatch):
    path, _ = clevr
    out = tmp_path / "c6"
    real = mo.process_record
    seen: list[int] = []

    def interrupt_at_4(spec, data, src, index, size=None):
        if index == 4:
            raise KeyboardInterrupt
        seen.append(index)
        return real(spec, data, src, index, size)

    monkeypatch.setattr(mo, "process_record", interrupt_at_4)
    with pytest.raises(KeyboardInterrupt):
        mo.convert_multi_object("clevr6", path, out, test_size=2, val_size=1, shard_size=3, progress=False)
    _assert_not_complete(out)
    with pytest.raises(DataError, match="unfinished conversion; re-run the command to resume"):
        build_dataset("clevr6", out, "train")
    manifest = json.loads((out / "shards" / "manifest.json").read_text())
    assert sorted(manifest["done"]) == ["00000"]

    seen.clear()

    def counting(spec, data, src, index, size=None):
        seen.append(index)
        return real(spec, data, src, index, size)

    monkeypatch.setattr(mo, "process_record", counting)
    meta = mo.convert_multi_object("clevr6", path, out, test_size=2, val_size=1, shard_size=3, progress=False)
    assert seen == [3, 4, 5, 6]  # records 0-2 (shard 0) were not processed again
    fresh = mo.convert_multi_object("clevr6", path, tmp_path / "fresh", test_size=2, val_size=1, shard_size=3,
                                    progress=False)
    assert meta["counts"] == fresh["counts"]
    for split in ("train", "val", "test"):
        for f in ("images", "masks", "num_objects"):
            fresh = np.load(tmp_path / "fresh" / split / f"{f}.npy")
            np.testing.assert_array_equal(np.load(out / split / f"{f}.npy"), fresh)
    # different settings on an unfinished directory are refused
    with pytest.raises(DataError, match="different settings"):
        monkeypatch.setattr(mo, "process_record", interrupt_at_4)
        try:
            mo.convert_multi_object("clevr6", path, tmp_path / "x", shard_size=3, progress=False)
        except KeyboardInterrupt:
            pass
        mo.convert_multi_object("clevr6", path, tmp_path / "x", shard_size=2, progress=False)


def test_gzip_written_by_stdlib_in_one_member_with_many_records(tmp_path):
    # many small records cross the reader's input-chunk boundaries
    rng = np.random.default_rng(4)
    exs = [fmt.example({"image": rng.integers(0, 256, 5000, dtype=np.uint8)}) for _ in range(60)]
    path = tmp_path / "many.tfrecords"
    path.write_bytes(gzip.compress(b"".join(fmt.record(e) for e in exs), compresslevel=0))
    from sri.data.tfrecord import iter_records, parse_example

    got = [parse_example(d)["image"] for _, d in iter_records(path)]
    assert len(got) == 60
    for e, g in zip(exs, got):
        assert e.endswith(bytes(fmt.bytes_list_of_single_bytes(g)))
