"""Start and stop a local MongoDB-wire server (for tests, `make omniboard` and local runs).

The server is an external program run as a separate process: `secantusd-py` (PyPI package
`secantusdb`, GPL-2.0, therefore never imported here) or a real `mongod` when one is installed.
"""
from __future__ import annotations

import argparse
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

SERVER_NAMES = ("secantusd-py", "mongod")
INSTALL_HINT = ("no MongoDB-wire server found: install one with `pip install secantusdb` "
                "(provides `secantusd-py`) or put a `mongod` binary on PATH")


def find_server_binary() -> str | None:
    """Path of `secantusd-py` (next to this Python, then on PATH) or else `mongod`; None if absent."""
    bin_dir = Path(sys.executable).parent
    for name in SERVER_NAMES:
        beside = bin_dir / name
        if beside.is_file() and os.access(beside, os.X_OK):
            return str(beside)
        found = shutil.which(name)
        if found:
            return found
    return None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise RuntimeError(f"port {host}:{port} is already in use (another MongoDB server?): "
                               f"stop it or choose another port ({exc})") from None


def _tail(path: Path, n_chars: int = 3000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no server log)"
    return text[-n_chars:] if text.strip() else "(server log is empty)"


def stop_process(process: subprocess.Popen | None, timeout: float) -> None:
    """SIGTERM a child process, SIGKILL it after `timeout` seconds, and reap it."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class LocalMongoServer:
    """A MongoDB-wire server process on 127.0.0.1, usable as a context manager.

    `directory` holds the data (`<directory>/db`) and the server log (`<directory>/server.log`);
    it defaults to a temporary directory that `stop()` removes. `port=None` picks a free port.
    """

    def __init__(self, directory: str | os.PathLike | None = None, *, port: int | None = None,
                 host: str = "127.0.0.1", binary: str | None = None,
                 startup_timeout: float = 60.0) -> None:
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self.binary = binary
        self.startup_timeout = float(startup_timeout)
        self._given_dir = Path(directory) if directory is not None else None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.directory: Path | None = None
        self.process: subprocess.Popen | None = None
        self._log_file = None

    # -- public API ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """`mongodb://host:port` of the running server."""
        self._require_running()
        return f"mongodb://{self.host}:{self.port}"

    def host_port_db(self, db: str) -> str:
        """Sacred's `-m host:port:db` form for database `db`."""
        if not db or ":" in db or "/" in db:
            raise ValueError(f"invalid database name {db!r}: use a plain name such as 'sri'")
        self._require_running()
        return f"{self.host}:{self.port}:{db}"

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self.process is not None and self.process.poll() is None

    def start(self) -> "LocalMongoServer":
        """Launch the server and block until it answers `ping` (raises RuntimeError on failure)."""
        if self.running:
            return self
        binary = self.binary or find_server_binary()
        if binary is None:
            raise FileNotFoundError(INSTALL_HINT)
        resolved = shutil.which(binary)
        if resolved is None:
            raise FileNotFoundError(f"MongoDB server executable {binary!r} not found or not "
                                    f"executable; {INSTALL_HINT}")
        self.binary = resolved
        if self._given_dir is not None:
            self.directory = self._given_dir.resolve()
            self.directory.mkdir(parents=True, exist_ok=True)
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="sri-mongo-")
            self.directory = Path(self._tmp.name)
        (self.directory / "db").mkdir(exist_ok=True)

        # A port chosen by free_port() can be taken by someone else before the server binds it;
        # retry with a new port in that case (only when the caller did not fix the port).
        attempts = 1 if self.requested_port is not None else 3
        error: RuntimeError | None = None
        for _ in range(attempts):
            self.port = self.requested_port or free_port(self.host)
            try:
                # Otherwise a ping could be answered by whatever already listens there.
                _check_port_free(self.host, self.port)
                self._launch()
                self._wait_ready()
                atexit.register(self.stop)
                return self
            except RuntimeError as exc:
                error = exc
                self._kill_process()
                if "in use" not in str(exc).lower():
                    break
        self.stop()
        assert error is not None
        raise error

    def stop(self, timeout: float = 30.0) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after `timeout` s) and wait for it."""
        atexit.unregister(self.stop)
        stop_process(self.process, timeout)
        self.process = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        self._cleanup_dir()

    def __enter__(self) -> "LocalMongoServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = f"{self.host}:{self.port}" if self.running else "stopped"
        return f"LocalMongoServer({where}, directory={self.directory}, binary={self.binary})"

    # -- internals ----------------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        assert self.directory is not None
        return self.directory / "server.log"

    def _command(self) -> list[str]:
        assert self.binary is not None and self.directory is not None
        db_dir = str(self.directory / "db")
        if Path(self.binary).name.startswith("mongod"):
            return [self.binary, "--bind_ip", self.host, "--port", str(self.port),
                    "--dbpath", db_dir]
        # An explicit empty config stops secantusd-py from picking up a stray ./secantusd.toml;
        # --standalone makes it look like a default (non-replica-set) mongod to drivers.
        config = self.directory / "secantusd.toml"
        if not config.exists():
            config.write_text("# settings come from the command line (sri.tracking.mongo_server)\n")
        return [self.binary, "--config", str(config), "--standalone", "--host", self.host,
                "--port", str(self.port), "--storage-path", db_dir]

    def _launch(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
        self._log_file = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self._command(), stdout=self._log_file, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=str(self.directory))

    def _wait_ready(self) -> None:
        import pymongo
        from pymongo.errors import PyMongoError

        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise RuntimeError(
                    f"MongoDB server {self.binary} exited with code {code} before answering "
                    f"on {self.host}:{self.port}. Server log tail:\n{_tail(self.log_path)}")
            client = pymongo.MongoClient(self.host, self.port, serverSelectionTimeoutMS=500,
                                         connectTimeoutMS=500)
            try:
                client.admin.command("ping")
                return
            except PyMongoError as exc:
                last_error = exc
                time.sleep(0.1)
            finally:
                client.close()
        raise RuntimeError(
            f"MongoDB server {self.binary} did not answer ping on {self.host}:{self.port} within "
            f"{self.startup_timeout:.0f} s (last error: {last_error}); raise startup_timeout if "
            f"the machine is slow. Server log tail:\n{_tail(self.log_path)}")

    def _kill_process(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def _cleanup_dir(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _require_running(self) -> None:
        if not self.running:
            raise RuntimeError("the MongoDB server is not running: call start() or use "
                               "`with LocalMongoServer() as server:`")


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run a server in the foreground until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m sri.tracking.mongo_server",
        description="Run a local MongoDB-wire server (secantusd-py or mongod) on 127.0.0.1 "
                    "until Ctrl-C; data persists in --dir.")
    parser.add_argument("--port", type=int, default=27017, help="TCP port (default 27017)")
    parser.add_argument("--dir", default=".cache/mongo",
                        help="data and log directory (default .cache/mongo)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; the server has no auth)")
    parser.add_argument("--binary", default=None, help="server executable (default: auto-detect)")
    parser.add_argument("--startup-timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: --host {args.host} lets other machines reach this server, which has no "
              f"authentication: anyone who can connect can read and change every run. Bind to "
              f"127.0.0.1 and tunnel (ssh -L) instead, or run a real MongoDB with users.", file=sys.stderr)

    server = LocalMongoServer(args.dir, port=args.port, host=args.host, binary=args.binary,
                              startup_timeout=args.startup_timeout)
    try:
        server.start()
    except (FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, _raise_interrupt)}
    # Ctrl-C / SIGINT stops the server even when the parent started it with SIGINT ignored (a
    # background job of a shell script, or a test runner that ignores it): Python then keeps
    # SIG_IGN and would never raise KeyboardInterrupt
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:  # the banner inside: a Ctrl-C right after it (a client saw it and stops us) is handled
        print(f"MongoDB-wire server ({Path(server.binary or '').name}) at {server.url}, data in "
              f"{server.directory}; Sacred: -m {server.host_port_db('sri')}. Ctrl-C stops it.",
              flush=True)
        while server.running:
            time.sleep(0.5)
        print(f"error: the server exited. Log tail:\n{_tail(server.log_path)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopping the server...", flush=True)
        return 0
    finally:
        for sig, handler in previous.items():  # called in-process (tests, notebooks): leave no handler
            signal.signal(sig, handler)
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
