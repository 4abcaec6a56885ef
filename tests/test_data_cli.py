"""End-to-end tests of `sri data {synth,convert,download,info}` and the data benchmarks on tiny data,
including a resumable download from a local HTTP server with Range support."""
from __future__ import annotations

import hashlib
import http.server
import importlib.util
import re
import threading
from pathlib import Path

import numpy as np
import pytest

import sri.data.download as dl
from sri.cli import main as sri_main
from sri.data import DataError, build_dataset
from sri.data.cache import is_complete
from sri.data.cli import main
from sri.data.synthetic import generate, split_seed

_spec = importlib.util.spec_from_file_location("sri_test_data_formats",
                                               Path(__file__).with_name("test_data_formats.py"))
fmt = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fmt)


def test_synth_cli_matches_generator(tmp_path, capsys):
    out = tmp_path / "blocks"
    assert sri_main(["data", "synth", "blocks", "--out", str(out), "--num", "12", "--num-val", "3",
                     "--num-test", "2", "--size", "32", "--seed", "5", "--no-progress"]) == 0
    assert "train 12, val 3, test 2" in capsys.readouterr().out
    for split, n in (("train", 12), ("val", 3), ("test", 2)):
        ds = build_dataset("blocks", out, split)
        ref = generate("blocks", n, 32, split_seed(5, split))
        assert len(ds) == n
        np.testing.assert_array_equal(np.load(out / split / "masks.npy"), ref.masks)
        np.testing.assert_array_equal(ds[n - 1]["mask"].numpy(), ref.masks[n - 1])
    assert main(["info", str(out)]) == 0
    assert '"dataset": "blocks"' in capsys.readouterr().out
    with pytest.raises(DataError, match="holds 32x32 images, not 64"):
        build_dataset("blocks", out, "train", image_size=64)
    # the same command again is a no-op; a different one on a finished cache is refused
    assert main(["synth", "blocks", "--out", str(out), "--num", "12", "--num-val", "3", "--num-test", "2",
                 "--size", "32", "--seed", "5", "--no-progress"]) == 0
    assert not (out / "shards").exists()
    assert main(["synth", "blocks", "--out", str(out), "--num", "13", "--size", "32", "--no-progress"]) == 1
    assert "--overwrite" in capsys.readouterr().err


def test_convert_cli_clevr6_objects_room_shapestacks(tmp_path, capsys):
    rng = np.random.default_rng(0)
    clevr = fmt.write_tfrecords(tmp_path / "clevr.tfrecords",
                                [fmt.example(fmt.clevr_scene(rng, n)) for n in (2, 7, 3, 4)])
    assert main(["convert", "--dataset", "clevr6", "--src", str(clevr), "--out", str(tmp_path / "c6"),
                 "--test-size", "1", "--val-size", "1", "--no-progress"]) == 0
    assert "train 1, val 1, test 1" in capsys.readouterr().out
    assert build_dataset("clevr6", tmp_path / "c6", "train")[0]["image"].shape == (3, 96, 96)

    orr = fmt.write_tfrecords(tmp_path / "or.tfrecords", [fmt.example(fmt.objects_room_scene(rng, 2))] * 3)
    assert main(["convert", "--dataset", "objects_room", "--src", str(orr), "--out", str(tmp_path / "or"),
                 "--test-size", "1", "--val-size", "1", "--no-progress"]) == 0
    assert build_dataset("objects_room", tmp_path / "or", "val")[0]["num_objects"] == 2

    fmt.make_shapestacks(tmp_path / "ss_root", rng)
    assert main(["convert", "--dataset", "shapestacks", "--src", str(tmp_path / "ss_root"), "--out",
                 str(tmp_path / "ss"), "--workers", "1", "--no-progress"]) == 0
    assert build_dataset("shapestacks", tmp_path / "ss", "test")[1]["mask"].shape == (64, 64)

    assert main(["convert", "--dataset", "clevr6", "--src", str(tmp_path / "missing.tfrecords"), "--out",
                 str(tmp_path / "x"), "--no-progress"]) == 1
    assert "missing.tfrecords: no such file" in capsys.readouterr().err


# ------------------------------------------------------------------------------------- download
class _Server:
    """A local HTTP server with Range support; `cut_after` closes the body early to simulate a drop."""

    def __init__(self, files: dict[str, bytes], headers: dict[str, dict[str, str]] | None = None):
        self.files, self.extra = files, headers or {}
        self.cut_after: int | None = None
        self.ranges: list[str | None] = []
        srv = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                name = self.path.lstrip("/")
                if name not in srv.files:
                    self.send_error(404)
                    return
                data = srv.files[name]
                rng = self.headers.get("Range")
                srv.ranges.append(rng)
                start = int(re.match(r"bytes=(\d+)-", rng).group(1)) if rng else 0
                body = data[start:]
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                for k, v in srv.extra.get(name, {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if srv.cut_after is not None:
                    body = body[: srv.cut_after]
                    srv.cut_after = None
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server({})
    yield s
    s.close()


def test_download_resumes_with_range_and_verifies_md5(tmp_path, server):
    payload = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    md5 = hashlib.md5(payload).hexdigest()
    server.files["f.bin"] = payload
    server.files["f.md5"] = f"{md5}  f.bin\n".encode()
    server.cut_after = 100_000
    dest = tmp_path / "f.bin"
    with pytest.raises(DataError, match=r"got 100000 of 300000 bytes; re-run the command to resume"):
        dl.download(f"{server.url}/f.bin", dest, md5=md5, progress=False)
    assert not dest.exists() and (tmp_path / "f.bin.part").stat().st_size == 100_000
    got = dl.download(f"{server.url}/f.bin", dest, md5=dl.parse_md5(dl.fetch_text(f"{server.url}/f.md5")),
                      progress=False)
    assert got.read_bytes() == payload
    assert server.ranges[-1] == "bytes=100000-"
    # a wrong checksum is caught and the bad file removed
    with pytest.raises(DataError, match="does not match the published"):
        dl.download(f"{server.url}/f.bin", tmp_path / "g.bin", md5="0" * 32, progress=False)
    assert not (tmp_path / "g.bin").exists() and not (tmp_path / "g.bin.part").exists()
    with pytest.raises(DataError, match="HTTP 404"):
        dl.download(f"{server.url}/nope", tmp_path / "n.bin", progress=False)


def test_download_gcs_md5_header_then_convert(tmp_path, server, monkeypatch, capsys):
    import base64
    rng = np.random.default_rng(1)
    path = fmt.write_tfrecords(tmp_path / "src.tfrecords", [fmt.example(fmt.objects_room_scene(rng, 3))] * 4)
    data = path.read_bytes()
    b64 = base64.b64encode(hashlib.md5(data).digest()).decode()
    server.files["objects_room_train.tfrecords"] = data
    server.extra["objects_room_train.tfrecords"] = {"x-goog-hash": f"crc32c=AAAAAA==, md5={b64}"}
    monkeypatch.setitem(dl.SOURCES, "objects_room", [(f"{server.url}/objects_room_train.tfrecords", None)])
    out = tmp_path / "or"
    server.cut_after = 5000
    assert main(["download", "objects_room", "--out", str(out), "--no-progress"]) == 1
    assert "re-run the command to resume" in capsys.readouterr().err
    assert not is_complete(out)
    assert main(["download", "objects_room", "--out", str(out), "--no-progress", "--test-size", "1",
                 "--val-size", "1"]) == 0
    assert (out / "download" / "objects_room_train.tfrecords").read_bytes() == data
    assert build_dataset("objects_room", out, "train")[1]["num_objects"] == 3
    # a corrupted header checksum is detected
    server.extra["objects_room_train.tfrecords"] = {"x-goog-hash": "md5=" + base64.b64encode(b"x" * 16).decode()}
    with pytest.raises(DataError, match="MD5"):
        dl.download(f"{server.url}/objects_room_train.tfrecords", tmp_path / "again.tfrecords", progress=False)


def test_download_shapestacks_extracts_and_converts(tmp_path, server, monkeypatch):
    import io
    import tarfile
    fmt.make_shapestacks(tmp_path / "tree" / "shapestacks", np.random.default_rng(2))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(tmp_path / "tree" / "shapestacks", arcname="shapestacks")
    blob = buf.getvalue()
    server.files["shapestacks-all.tar.gz"] = blob
    server.files["shapestacks-all.md5"] = f"{hashlib.md5(blob).hexdigest()}  shapestacks-all.tar.gz".encode()
    monkeypatch.setitem(dl.SOURCES, "shapestacks",
                        [(f"{server.url}/shapestacks-all.tar.gz", f"{server.url}/shapestacks-all.md5")])
    meta = dl.download_dataset("shapestacks", tmp_path / "ss", progress=False, workers=1)
    assert meta["counts"] == {"train": 4, "val": 2, "test": 2}


def test_official_sources_are_listed():
    assert dl.SOURCES["clevr6"][0][0].endswith("/clevr_with_masks/clevr_with_masks_train.tfrecords")
    assert dl.SOURCES["objects_room"][0][0].endswith("/objects_room/objects_room_train.tfrecords")
    assert {u.rsplit("/", 1)[1] for u, _ in dl.SOURCES["shapestacks"]} == {
        "shapestacks-meta.tar.gz", "shapestacks-rgb.tar.gz", "shapestacks-iseg.tar.gz"}
    assert all(m and m.endswith(".md5") for _, m in dl.SOURCES["shapestacks"])


# ------------------------------------------------------------------------------------ benchmarks
def test_bench_convert_and_loader_run(capsys):
    from sri.bench import main as bench
    assert bench(["convert", "--records", "12", "--shard-size", "5", "--too-many-every", "4"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"converted 12 CLEVR records \(kept 9\) in [\d.]+ s: \d+ records/s", out)
    assert bench(["loader", "--num", "40", "--batches", "3", "--batch-size", "8", "--workers", "0"]) == 0
    assert re.search(r"blocks train: [\d.]+ batches/s of \(8, 3, 64, 64\)", capsys.readouterr().out)
