"""An independent writer of the official formats (TFRecord/Example wire format, ShapeStacks tree),
used by the other test_data_* modules, plus tests of the minimal Example parser against it."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import crc32c
import numpy as np
import pytest
from PIL import Image

from sri.data.tfrecord import iter_records, parse_example


# ----------------------------------------------------------------- protobuf wire format by hand
def varint(v: int) -> bytes:
    out = b""
    while v > 0x7F:
        out += bytes([(v & 0x7F) | 0x80])
        v >>= 7
    return out + bytes([v])


def field_bytes(num: int, payload: bytes) -> bytes:
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def bytes_list_of_single_bytes(arr: np.ndarray) -> bytes:
    """BytesList with one 1-byte string per uint8 element (C order): 0x0A 0x01 <byte> each."""
    flat = np.ascontiguousarray(arr, dtype=np.uint8).reshape(-1)
    trip = np.empty((flat.size, 3), np.uint8)
    trip[:, 0] = (1 << 3) | 2
    trip[:, 1] = 1
    trip[:, 2] = flat
    return trip.tobytes()


def feature(arr: np.ndarray | list, packed_floats: bool = True) -> bytes:
    """A tf.train.Feature: uint8 -> bytes_list, float -> float_list, int -> int64_list, list[bytes] -> bytes_list."""
    if isinstance(arr, list):
        return field_bytes(1, b"".join(field_bytes(1, b) for b in arr))
    a = np.asarray(arr)
    if a.dtype == np.uint8:
        return field_bytes(1, bytes_list_of_single_bytes(a))
    if a.dtype.kind == "f":
        vals = a.astype("<f4").reshape(-1)
        if packed_floats:
            inner = field_bytes(1, vals.tobytes())
        else:  # repeated fixed32 fields, wire type 5
            inner = b"".join(varint(1 << 3 | 5) + struct.pack("<f", v) for v in vals)
        return field_bytes(2, inner)
    inner = field_bytes(1, b"".join(varint(int(v) % (1 << 64)) for v in a.reshape(-1)))
    return field_bytes(3, inner)


def example(features: dict, packed_floats: bool = True) -> bytes:
    entries = b"".join(field_bytes(1, field_bytes(1, k.encode()) + field_bytes(2, feature(v, packed_floats)))
                       for k, v in features.items())
    return field_bytes(1, entries)


def masked_crc(data: bytes) -> int:
    c = crc32c.crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) % (1 << 32)


def record(data: bytes, corrupt_crc: bool = False) -> bytes:
    n = struct.pack("<Q", len(data))
    crc = masked_crc(data) ^ (1 if corrupt_crc else 0)
    return n + struct.pack("<I", masked_crc(n)) + data + struct.pack("<I", crc)


def write_tfrecords(path: Path, examples: list[bytes], gzip_it: bool = True, corrupt: int | None = None) -> Path:
    body = b"".join(record(e, corrupt_crc=(i == corrupt)) for i, e in enumerate(examples))
    path.write_bytes(gzip.compress(body, compresslevel=1) if gzip_it else body)
    return path


# ------------------------------------------------------------------------- official-like scenes
def clevr_scene(rng: np.random.Generator, n_objects: int, *, outside: bool = False, hidden: bool = False,
                height: int = 240, width: int = 320, entities: int = 11) -> dict:
    """Image [240,320,3], mask [11,240,320,1] (0/255, entity 0 background) and visibility [11]."""
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    labels = np.zeros((height, width), np.int64)
    vis = np.zeros(entities, np.float32)
    vis[0] = 1
    e = 1
    for k in range(n_objects):
        if hidden and k == 1:  # an entity slot with visibility 0 and an empty mask
            e += 1
        if outside and k == 0:  # a visible object fully outside the crop (cols < 64)
            r0, c0 = 100, 5
        else:
            r0, c0 = int(rng.integers(30, 200)), int(rng.integers(66, 230))
        labels[r0:r0 + int(rng.integers(8, 30)), c0:c0 + int(rng.integers(8, 30))] = e
        vis[e] = 1
        e += 1
    mask = (labels[None] == np.arange(entities)[:, None, None]).astype(np.uint8)[..., None] * 255
    feats = {"image": image, "mask": mask, "visibility": vis}
    for name in ("x", "y", "z", "rotation"):
        feats[name] = rng.normal(size=entities).astype(np.float32)
    feats["pixel_coords"] = rng.normal(size=(entities, 3)).astype(np.float32)
    for name in ("size", "material", "shape", "color"):
        feats[name] = rng.integers(0, 3, entities).astype(np.uint8)
    return feats


def objects_room_scene(rng: np.random.Generator, n_objects: int) -> dict:
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    labels = np.zeros((64, 64), np.int64)
    labels[:20] = 0
    labels[20:40] = 1
    labels[40:, :32] = 2
    labels[40:, 32:] = 3
    for k in range(n_objects):
        r0, c0 = 8 + 18 * k, 5 + 17 * k
        labels[r0:r0 + 10, c0:c0 + 12] = 4 + k
    mask = (labels[None] == np.arange(7)[:, None, None]).astype(np.uint8)[..., None] * 255
    return {"image": image, "mask": mask}


def make_shapestacks(root: Path, rng: np.random.Generator, *, iseg_dir_for: tuple[str, ...] = ("s-test-0",)) -> dict:
    """A tiny ShapeStacks tree; returns {scenario: [(rgb array, label array)] per camera}."""
    splits = {"train": ["s-train-0", "s-train-1"], "eval": ["s-eval-0"], "test": ["s-test-0"]}
    (root / "splits" / "default").mkdir(parents=True)
    truth = {}
    for split, scens in splits.items():
        (root / "splits" / "default" / f"{split}.txt").write_text("\n".join(scens) + "\n")
        for s in scens:
            d = root / "recordings" / s
            d.mkdir(parents=True)
            truth[s] = []
            for cam in (1, 2):
                img = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
                lab = np.zeros((224, 224), np.uint8)
                lab[150:200, 80:150] = 1
                lab[100:150, 90:140] = 2
                lab[60:100, 100:130] = 3
                lab[20:30, 20:200] = 7  # unassigned
                Image.fromarray(img).save(d / f"rgb-w=0-f=0-l=0-c=original-cam_{cam}-mono-0.png")
                md = root / "iseg" / s if s in iseg_dir_for else d
                md.mkdir(parents=True, exist_ok=True)
                Image.fromarray(lab * 32).save(md / f"iseg-w=0-f=0-l=0-c=original-cam_{cam}-mono-0.map", format="PNG")
                truth[s].append((img, lab))
    return truth


# ------------------------------------------------------------------------ tests of the parser
def test_parse_example_matches_hand_written_wire_format(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    img[0, 0] = 0  # zero bytes must survive (joining strings would drop nothing here, but S1 would)
    feats = {"image": img, "vis": np.array([1.0, 0.5, -2.0], np.float32), "ids": np.array([3, -1, 300]),
             "names": [b"ab", b"", b"xyz"], "empty": np.zeros(0, np.uint8)}
    for packed in (True, False):
        path = write_tfrecords(tmp_path / f"x{packed}.tfrecords", [example(feats, packed), example({"image": img})])
        recs = list(iter_records(path))
        assert [i for i, _ in recs] == [0, 1]
        f = parse_example(recs[0][1])
        np.testing.assert_array_equal(f["image"], img.reshape(-1))
        np.testing.assert_array_equal(f["vis"], feats["vis"])
        np.testing.assert_array_equal(f["ids"], [3, -1, 300])
        assert f["names"] == [b"ab", b"", b"xyz"]
        assert f["empty"].size == 0
        assert set(parse_example(recs[0][1], {"vis"})) == {"vis"}


def test_uncompressed_tfrecords_are_read_too(tmp_path):
    data = example({"image": np.arange(12, dtype=np.uint8)})
    path = write_tfrecords(tmp_path / "plain.tfrecords", [data, data], gzip_it=False)
    recs = list(iter_records(path))
    assert len(recs) == 2 and bytes(recs[1][1]) == data


def test_multi_member_gzip(tmp_path):
    a, b = example({"v": np.array([1.0], np.float32)}), example({"v": np.array([2.0], np.float32)})
    path = tmp_path / "mm.tfrecords"
    path.write_bytes(gzip.compress(record(a)) + gzip.compress(record(b)))
    got = [parse_example(d)["v"][0] for _, d in iter_records(path)]
    assert got == [1.0, 2.0]


@pytest.mark.parametrize("nbytes", [3, 12, 40])
def test_truncated_plain_record_is_named(tmp_path, nbytes):
    from sri.data import DataError
    data = example({"image": np.arange(30, dtype=np.uint8)})
    full = record(data) + record(data)
    path = tmp_path / "t.tfrecords"
    path.write_bytes(full[: len(record(data)) + nbytes])
    with pytest.raises(DataError, match=r"t\.tfrecords: truncated record 1"):
        list(iter_records(path))


def test_gzip_without_its_trailer_is_reported(tmp_path):
    from sri.data import DataError
    data = b"".join(record(example({"image": np.arange(100, dtype=np.uint8)})) for _ in range(3))
    path = tmp_path / "cut.tfrecords"
    path.write_bytes(gzip.compress(data)[:-4])  # every record is there, the gzip trailer is not
    with pytest.raises(DataError, match=r"cut\.tfrecords: gzip stream is truncated after record 2"):
        list(iter_records(path))


def test_stdlib_zlib_fallback_reads_the_same(tmp_path, monkeypatch):
    import zlib

    import sri.data.tfrecord as tr
    exs = [example({"image": np.full(2000, i, np.uint8)}) for i in range(5)]
    path = tmp_path / "fb.tfrecords"
    first, second = b"".join(record(e) for e in exs[:3]), b"".join(record(e) for e in exs[3:])
    path.write_bytes(gzip.compress(first) + gzip.compress(second))
    fast = [bytes(d) for _, d in iter_records(path)]
    monkeypatch.setattr(tr, "zlib_backend", zlib)
    slow = [bytes(d) for _, d in tr.iter_records(path)]
    assert fast == slow == exs
