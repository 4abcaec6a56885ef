"""`make omniboard`: Omniboard (npm `omniboard@2.16.1`, installed under `.cache/omniboard`) against
the configured MongoDB, or a local MongoDB-wire server on 127.0.0.1 when none is configured."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterable, Sequence

from sri.credentials import redact
from sri.tracking.mongo_server import stop_process

OMNIBOARD_VERSION = "2.16.1"
DEFAULT_PREFIX = Path(".cache") / "omniboard"
DEFAULT_PORT = 9000
LOCAL_DB = "sri"
LOCAL_MONGO_PORT = 27017
DEMO_STORE = "runs/demo"  # make demo's file store, shown by make omniboard
# Omniboard's express app listens on every interface and has no authentication; this preload
# makes it bind to one host (127.0.0.1 unless OMNIBOARD_HOST says otherwise).
_BIND_PRELOAD = """\
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  // Omniboard calls app.listen(process.env.PORT, callback): the port may be a numeric string.
  if (/^[0-9]+$/.test(String(args[0])) && typeof args[1] !== 'string') {
    args[0] = Number(args[0]);
    args.splice(1, 0, process.env.OMNIBOARD_HOST || '127.0.0.1');
  }
  return listen.apply(this, args);
};
"""


def omniboard_entry(prefix: str | os.PathLike = DEFAULT_PREFIX) -> Path | None:
    """Omniboard's `start.js` under an npm `--prefix` folder, or None when not installed."""
    entry = Path(prefix) / "node_modules" / "omniboard" / "dist" / "start.js"
    return entry if entry.is_file() else None


def install_omniboard(prefix: str | os.PathLike = DEFAULT_PREFIX,
                      version: str = OMNIBOARD_VERSION) -> Path:
    """`npm install --prefix PREFIX omniboard@VERSION` unless present; returns `start.js`."""
    entry = omniboard_entry(prefix)
    if entry is not None:
        return entry
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise FileNotFoundError("Omniboard needs Node.js and npm (Debian: `apt-get install -y nodejs "
                                "npm`), then `npm install --prefix .cache/omniboard omniboard@"
                                f"{version}`")
    Path(prefix).mkdir(parents=True, exist_ok=True)
    print(f"installing omniboard@{version} into {prefix} (npm)...", file=sys.stderr, flush=True)
    cmd = [npm, "install", "--prefix", str(prefix), f"omniboard@{version}", "--no-audit", "--no-fund"]
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    entry = omniboard_entry(prefix)
    if done.returncode != 0 or entry is None:
        raise RuntimeError(f"`{' '.join(cmd)}` failed (exit {done.returncode}):\n{done.stdout[-3000:]}")
    return entry


def register_metric_columns(db_url: str, db: str, metrics: Iterable[str]) -> list[str]:
    """Add Omniboard metric columns (last logged value) for `metrics` that have none yet; returns
    the names added. Omniboard keeps them in the `omniboard.metric.columns` collection."""
    import pymongo

    client = pymongo.MongoClient(db_url, serverSelectionTimeoutMS=5000)
    try:
        coll = client[db]["omniboard.metric.columns"]
        present = {d.get("metric_name") for d in coll.find({}, {"metric_name": 1})}
        added = []
        for name in metrics:
            if name not in present:
                coll.insert_one({"name": name, "metric_name": name, "extrema": "last"})
                added.append(name)
        return added
    finally:
        client.close()


class Omniboard:
    """An Omniboard process for one MongoDB database; a context manager."""

    def __init__(self, db_url: str, *, port: int = DEFAULT_PORT, host: str = "127.0.0.1",
                 prefix: str | os.PathLike = DEFAULT_PREFIX, install: bool = True,
                 log: str | os.PathLike | None = None, startup_timeout: float = 60.0) -> None:
        self.db_url, self.port, self.host = db_url, int(port), host
        self.prefix = Path(prefix)
        self.install = install
        self.log_path = Path(log) if log else self.prefix / "omniboard.log"
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        """Base URL of the web UI."""
        return f"http://{self.host}:{self.port}/"

    def command(self) -> list[str]:
        """The node command line (binds to `host` through a preload script); the database URL is passed
        in the environment by `start`."""
        entry = install_omniboard(self.prefix) if self.install else omniboard_entry(self.prefix)
        if entry is None:
            raise FileNotFoundError(f"Omniboard is not installed under {self.prefix}: run `npm install "
                                    f"--prefix {self.prefix} omniboard@{OMNIBOARD_VERSION}`")
        preload = self.prefix / "bind-host.js"
        if not preload.is_file() or preload.read_text() != _BIND_PRELOAD:
            preload.write_text(_BIND_PRELOAD)
        node = shutil.which("node")
        if node is None:
            raise FileNotFoundError("node (Node.js) is not on PATH; Debian: apt-get install -y nodejs")
        # the database URL (password included) goes in the environment (MONGO_URI, which Omniboard reads
        # when no -m/--mu is given), never on the command line that `ps` shows every user
        return [node, "--require", str(preload.resolve()), str(entry.resolve())]

    def start(self) -> "Omniboard":
        """Start Omniboard and wait until its API answers (RuntimeError with the log otherwise)."""
        cmd = self.command()
        env = dict(os.environ, PORT=str(self.port), OMNIBOARD_HOST=self.host, MONGO_URI=self.db_url)
        env.pop("OMNIBOARD_CONFIG", None)  # a config file would take precedence over MONGO_URI
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}api/v1/databases", timeout=2) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.3)
        code = self.process.poll()
        self.stop()
        tail = self.log_path.read_text(errors="replace")[-3000:] if self.log_path.is_file() else ""
        raise RuntimeError(f"Omniboard did not start on {self.url} (exit code {code}); is the port "
                           f"free? Log {self.log_path}:\n{tail}")

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate Omniboard (SIGTERM, then SIGKILL)."""
        stop_process(self.process, timeout)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "Omniboard":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def import_for_omniboard(store: str, spec: object) -> None:
    """Copy the finished runs of the file store `store` into the MongoDB `spec`; say what was done."""
    from sri.tracking.file_import import import_file_store

    res = import_file_store(store, spec)
    new = len(res["imported"])
    before = sum(1 for s in res["skipped"] if s["why"] == "imported before")
    print(f"{new} run(s) of the file store {store} imported ({before} imported before)", file=sys.stderr)
    for s in res["skipped"]:
        if s["why"] != "imported before":
            print(f"  run {s['run']} not imported: {s['why']}", file=sys.stderr)


def _answers(host: str, port: int) -> bool:
    import pymongo
    from pymongo.errors import PyMongoError

    client = pymongo.MongoClient(host, port, serverSelectionTimeoutMS=700, connectTimeoutMS=700)
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(mongo: str | None = None, port: int | None = None,
         prefix: str | os.PathLike = DEFAULT_PREFIX, mongo_dir: str | os.PathLike = ".cache/mongo",
         metric_columns: bool = True, host: str = "127.0.0.1",
         import_stores: Sequence[str] | None = None) -> int:
    """Run Omniboard in the foreground until Ctrl-C (or SIGTERM); returns the exit status.

    `import_stores`: file stores whose finished runs are copied into the database first; None means
    `runs/demo` (where `make demo` logs) when Omniboard uses the local server, nothing otherwise."""
    from sri.report.paper import EVAL_METRICS
    from sri.tracking.store import StoreSpec, resolve_store

    server = None
    target = mongo or os.environ.get("SRI_MONGO_URL")
    try:
        if target:
            spec = resolve_store(target)
            if spec.kind != "mongo":
                print(f"error: {redact(target)!r} is not a MongoDB address (use mongodb://host:port/db or "
                      f"host:port:db); Omniboard cannot show a file store", file=sys.stderr)
                return 2
        elif _answers("127.0.0.1", LOCAL_MONGO_PORT):
            spec = StoreSpec("mongo", url=f"mongodb://127.0.0.1:{LOCAL_MONGO_PORT}/", db=LOCAL_DB)
            print(f"using the MongoDB server already on 127.0.0.1:{LOCAL_MONGO_PORT}", file=sys.stderr)
        else:
            from sri.tracking.mongo_server import LocalMongoServer

            server = LocalMongoServer(mongo_dir, port=LOCAL_MONGO_PORT).start()
            spec = StoreSpec("mongo", url=server.url + "/", db=LOCAL_DB)
            print(f"started a local MongoDB-wire server at {server.url} (data in {mongo_dir}); log "
                  f"runs to it with `-m {server.host_port_db(LOCAL_DB)}` or "
                  f"SRI_MONGO_URL={server.url}/{LOCAL_DB}", file=sys.stderr)
        stores = list(import_stores) if import_stores is not None else (
            [DEMO_STORE] if target is None and Path(DEMO_STORE).is_dir() else [])
        for store in stores:
            import_for_omniboard(store, spec)
        if metric_columns:
            try:
                added = register_metric_columns(spec.db_url, spec.db, EVAL_METRICS)
                if added:
                    print(f"added Omniboard metric columns: {', '.join(added)}", file=sys.stderr)
            except Exception as e:  # only a convenience; Omniboard works without it
                print(f"warning: could not add metric columns ({redact(str(e))})", file=sys.stderr)
        board = Omniboard(spec.db_url, port=port or int(os.environ.get("PORT", DEFAULT_PORT)),
                          host=host, prefix=prefix)
        board.start()
    except (FileNotFoundError, RuntimeError, ValueError, ConnectionError) as e:
        print(f"error: {redact(str(e))}", file=sys.stderr)
        if server is not None:
            server.stop()
        return 1
    print(f"Omniboard for {spec} at {board.url} (Ctrl-C stops it)", flush=True)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        while board.process is not None and board.process.poll() is None:
            time.sleep(0.5)
        print(f"error: Omniboard exited; see {board.log_path}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)  # called in-process (tests, notebooks): leave no handler
        board.stop()
        if server is not None:
            server.stop()


def chromium_binary() -> str | None:
    """Debian's `chromium` (or another Chromium/Chrome) on PATH, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def dump_dom(url: str, *, virtual_time_ms: int = 15000, window: Sequence[int] = (4000, 1500),
             timeout: float = 120.0, profile: str | os.PathLike | None = None) -> str:
    """The DOM of `url` after its scripts ran, from a headless Chromium (`--dump-dom`)."""
    import tempfile

    browser = chromium_binary()
    if browser is None:
        raise FileNotFoundError("no Chromium on PATH (Debian: apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="sri-chromium-") as tmp:
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", f"--user-data-dir={profile or tmp}",
               f"--window-size={window[0]},{window[1]}", f"--virtual-time-budget={virtual_time_ms}",
               "--dump-dom", url]
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited with {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout
