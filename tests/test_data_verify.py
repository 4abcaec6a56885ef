"""`sri data verify`: finished, truncated, altered and missing caches and Inception weights."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from sri.data.cli import main as data_main
from sri.data.cli import synth
from sri.data.verify import verify_cache, verify_inception_weights


@pytest.fixture
def cache(tmp_path):
    synth("blocks", tmp_path / "blocks", 12, num_val=2, num_test=3, size=16, progress=False)
    return tmp_path / "blocks"


def test_a_fresh_cache_records_checksums_that_hashlib_confirms(cache):
    import json

    meta = json.loads((cache / "meta.json").read_text())
    assert len(meta["checksums"]) == 9
    want = hashlib.sha256((cache / "test" / "images.npy").read_bytes()).hexdigest()
    assert meta["checksums"]["test/images.npy"] == want
    r = verify_cache(cache, "blocks", hash_files=True)
    assert r["status"] == "ok" and r["hashed"] and r["problems"] == []


def test_truncated_altered_and_reshaped_arrays_are_named(cache):
    path = cache / "train" / "images.npy"
    data = path.read_bytes()
    path.write_bytes(data[:-5])  # truncated
    r = verify_cache(cache, "blocks")
    assert r["status"] == "damaged" and str(path) in r["problems"][0]
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # one bit flipped: sizes fine, contents not
    assert verify_cache(cache, "blocks")["status"] == "ok"
    r = verify_cache(cache, "blocks", hash_files=True)
    assert r["status"] == "damaged" and "SHA-256 differs" in r["problems"][0]
    np.save(cache / "val" / "masks.npy", np.zeros((5, 16, 16), np.uint8))
    r = verify_cache(cache, "blocks")
    assert any("meta.json promises uint8 (2, 16, 16)" in p for p in r["problems"])
    assert r["fix"].startswith("sri data synth blocks")


def test_missing_unfinished_and_foreign_caches(cache, tmp_path):
    assert verify_cache(tmp_path / "none", "clevr6")["status"] == "missing"
    (cache / "COMPLETE").unlink()
    (cache / "shards").mkdir()
    r = verify_cache(cache, "blocks")
    assert r["status"] == "incomplete" and "resume" in r["problems"][0]
    (cache / "COMPLETE").write_text("x")
    r = verify_cache(cache, "shapes")
    assert r["status"] == "damaged" and "not 'shapes'" in r["problems"][0]


def test_inception_weights_are_checked_against_the_pinned_prefix(tmp_path, monkeypatch):
    import sri.metrics.fid as fid

    assert verify_inception_weights(tmp_path / "w.pth")["status"] == "missing"
    good = tmp_path / "good.pth"
    for i in range(100000):  # a file whose SHA-256 starts with a chosen 2-digit prefix
        good.write_bytes(str(i).encode())
        if hashlib.sha256(str(i).encode()).hexdigest().startswith("ab"):
            break
    monkeypatch.setattr(fid, "INCEPTION_WEIGHTS_SHA256_PREFIX", "ab")
    assert verify_inception_weights(good)["status"] == "ok"
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"tampered")
    r = verify_inception_weights(bad)
    assert r["status"] == "damaged" and "does not match" in r["problems"][0]
    monkeypatch.setenv(fid.WEIGHTS_ENV, str(good))
    assert verify_inception_weights()["path"] == str(good)


def test_the_command_exit_status_and_fix_lines(cache, capsys):
    assert data_main(["verify", "--root", str(cache.parent), "--datasets", "blocks", "--hash", "--no-weights"]) == 0
    assert "1 of 1 ok" in capsys.readouterr().out
    assert data_main(["verify", "--root", str(cache.parent), "--datasets", "blocks,clevr6", "--no-weights"]) == 1
    out = capsys.readouterr().out
    assert "missing  clevr6" in out and "fix: sri data convert --dataset clevr6" in out
    assert "not ready: clevr6" in out


def test_training_reads_of_a_damaged_cache_name_the_file(cache):
    from sri.data.cache import CacheDataset
    from sri.data.errors import DataError

    np.save(cache / "train" / "masks.npy", np.zeros((3, 16, 16), np.uint8))  # fewer scenes than meta.json says
    ds = CacheDataset(cache, "train", num=2)  # a small num used to read ahead without noticing
    promise = r"masks\.npy holds uint8 \(3, 16, 16\), meta.json promises uint8 \(12, 16, 16\)"
    with pytest.raises(DataError, match=promise):
        ds[0]
    assert CacheDataset(cache, "test")[0]["image"].shape == (3, 16, 16)  # the other splits still read
    (cache / "meta.json").write_text("{broken")
    with pytest.raises(DataError, match="meta.json is damaged"):
        CacheDataset(cache, "test")
