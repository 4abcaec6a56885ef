"""FID's Inception weights: downloaded on first use with a hash check; a clear message otherwise (issue 26)."""
import hashlib
import http.server
import threading
from functools import partial

import pytest

import sri.metrics.fid as F


@pytest.fixture
def server(tmp_path):
    """A local HTTP server over `tmp_path/www`: (base URL, folder)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a, **k: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", www
    srv.shutdown()


def test_a_good_file_is_downloaded_and_a_tampered_one_refused(server, tmp_path):
    url, www = server
    good = b"inception weights stand-in" * 1000
    (www / "w.pth").write_bytes(good)
    digest = hashlib.sha256(good).hexdigest()
    dest = tmp_path / "hub" / "checkpoints" / "w.pth"
    got = F.download_inception_weights(dest, url=f"{url}/w.pth", sha256=digest, progress=False)
    assert got == dest and dest.read_bytes() == good
    assert F.download_inception_weights(tmp_path / "p.pth", url=f"{url}/w.pth", sha256=None,
                                        sha256_prefix=digest[:8], progress=False).is_file()
    (www / "bad.pth").write_bytes(good + b"x")
    with pytest.raises(F.InceptionWeightsMissing, match="hash mismatch"):
        F.download_inception_weights(tmp_path / "bad.pth", url=f"{url}/bad.pth", sha256=digest, progress=False)
    assert not (tmp_path / "bad.pth").exists() and not list(tmp_path.glob("*.part"))


def test_no_network_and_offline_say_what_failed(server, tmp_path, monkeypatch):
    url, _ = server
    with pytest.raises(F.InceptionWeightsMissing, match="no network"):
        F.download_inception_weights(tmp_path / "w.pth", url="http://127.0.0.1:9/none.pth", progress=False, timeout=5)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(F.WEIGHTS_ENV, raising=False)
    monkeypatch.setenv(F.OFFLINE_ENV, "1")
    with pytest.raises(F.InceptionWeightsMissing, match="downloads are off") as e:
        F.resolve_inception_weights()
    assert F.INCEPTION_WEIGHTS_URL in str(e.value) and "cannot be downloaded on this machine" not in str(e.value)
    # online: the default location is filled on first use
    payload = b"w" * 4096
    (server[1] / "w.pth").write_bytes(payload)
    monkeypatch.setenv(F.OFFLINE_ENV, "0")
    monkeypatch.setattr(F, "INCEPTION_WEIGHTS_URL", f"{url}/w.pth")
    monkeypatch.setattr(F, "download_inception_weights",
                        partial(F.download_inception_weights, url=f"{url}/w.pth",
                                sha256=hashlib.sha256(payload).hexdigest(), progress=False))
    path = F.resolve_inception_weights()
    assert path == F.default_inception_weights_path() and path.read_bytes() == payload
