"""Atomic checkpoint files and rebuilding a model from one."""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from sri.credentials import redact


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write `state` with torch.save to a temp file in the same folder, then rename (atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            try:
                torch.save(state, f)
            except RuntimeError as e:  # torch reports a full disk as RuntimeError ("unexpected pos ...")
                if _disk_nearly_full(path.parent):
                    raise OSError(errno.ENOSPC, f"no space left while writing {path.name} ({e})") from e
                raise
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _disk_nearly_full(folder: Path, slack: int = 1 << 20) -> bool:
    """Whether the file system of `folder` has less than `slack` bytes free."""
    import shutil

    try:
        return shutil.disk_usage(folder).free < slack
    except OSError:
        return False


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete `ckpt_*.pt.*.tmp` files that a killed checkpoint write left (call with the run lock held)."""
    removed = []
    for p in Path(folder).glob("ckpt_*.pt.*.tmp"):
        try:
            p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used (missing, truncated, not a sri checkpoint)."""


class CheckpointCorrupt(CheckpointError):
    """The file exists but cannot be read (truncated, damaged, or not a checkpoint at all)."""


class CheckpointUntrusted(CheckpointError):
    """An old-format checkpoint that only a full (code-running) unpickle can read."""


TRUST_HINT = ("pass --trust-checkpoint (Python: trust_checkpoint=True) only if you trust where the "
              "file came from; the trainer re-saves it in the safe format at its next checkpoint")


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu", *,
                    trust: bool = False) -> dict[str, Any]:
    """Load a checkpoint dict safely (`torch.load(weights_only=True)`).

    Files that need a full unpickle (old format, or crafted to run code) raise CheckpointUntrusted
    unless `trust` is True; unreadable files raise CheckpointCorrupt.
    """
    import pickle

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path} (train a model first, e.g. "
                                f"`python experiments/table3_ablation.py with smoke`)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        # "Unsupported global": the file names Python objects to rebuild (old format or crafted);
        # any other unpickling error is a damaged file
        needs_pickle = "unsupported global" in str(e).lower()
        if not needs_pickle and not trust:
            raise CheckpointCorrupt(f"checkpoint {path} could not be read ({type(e).__name__}: "
                                    f"{_first_line(e)}); it may be truncated or not a sri checkpoint") from e
        if not trust:
            raise CheckpointUntrusted(
                f"checkpoint {path} is not in the safe format: loading it would run code stored in "
                f"the file. If it is an old sri checkpoint, {TRUST_HINT}") from None
        try:
            ckpt = torch.load(path, map_location=map_location, weights_only=False)
        except Exception as e2:  # noqa: BLE001
            raise CheckpointCorrupt(f"checkpoint {path} could not be read ({type(e2).__name__}: "
                                    f"{_first_line(e2)})") from e2
    except Exception as e:  # corrupt / truncated file
        raise CheckpointCorrupt(f"checkpoint {path} could not be read ({type(e).__name__}: "
                                f"{_first_line(e)}); it may be truncated or not a sri checkpoint") from e
    if not isinstance(ckpt, dict):
        raise CheckpointCorrupt(f"checkpoint {path} holds a {type(ckpt).__name__}, not a sri "
                                f"checkpoint dict")
    return ckpt


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else ""


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu", *,
               trust: bool = False):
    """Rebuild the model stored in a checkpoint and load its weights; returns (model, ckpt)."""
    from sri.models import build_model

    ckpt = load_checkpoint(path, map_location, trust=trust)
    for key in ("model_name", "model_options", "model_state"):
        if key not in ckpt:
            raise CheckpointCorrupt(f"checkpoint {path} has no {key!r}: not a sri checkpoint")
    model = build_model(ckpt["model_name"], **ckpt["model_options"])
    model.load_state_dict(ckpt["model_state"])
    model.to(map_location)
    model.eval()
    return model, ckpt


class RunDirLocked(RuntimeError):
    """Another process is training into the same run folder."""


LOCK_NAME = ".lock"


class RunDirLock:
    """An exclusive, advisory lock on a run folder (`flock` on `<dir>/.lock`).

    The lock file names the holder (pid, host, start time, command). The operating system drops
    the lock when the holder exits, even on a crash or `kill -9`, so a stale `.lock` file never
    blocks anyone. `acquire` raises RunDirLocked naming the other process.
    """

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    def holder(self) -> str:
        """What the lock file says about its holder (may be stale when nobody holds the lock)."""
        try:
            return redact(self.path.read_text().strip()) or "unknown process"
        except OSError:
            return "unknown process"

    def acquire(self) -> "RunDirLock":
        """Take the lock without waiting; RunDirLocked if another process holds it."""
        import fcntl
        import socket
        import sys
        import time

        if self._fd is not None:
            return self
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.fchmod(fd, 0o600)  # lock files of older versions were 0644
        except OSError:
            os.close(fd)
            raise RunDirLocked(
                f"run folder {self.run_dir} is in use by another training process ({self.holder()}); "
                f"wait for it to finish (or stop it), or pass run_dir=... for a separate folder") from None
        info = (f"pid {os.getpid()} on {socket.gethostname()}, since "
                f"{time.strftime('%Y-%m-%d %H:%M:%S')}: {redact(' '.join(sys.argv))[:300]}")
        os.ftruncate(fd, 0)
        os.write(fd, (info + "\n").encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Drop the lock (the file stays; it only says who held it last)."""
        import fcntl

        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunDirLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class RunDirNotWritable(RuntimeError):
    """A folder the run must write to is read-only, full, or otherwise unusable."""


def _cast(obj: Any, dtype: torch.dtype) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(dtype) if obj.is_floating_point() and obj.dim() > 0 else obj
    if isinstance(obj, dict):
        return {k: _cast(v, dtype) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cast(v, dtype) for v in obj)
    return obj


def export_checkpoint(src: str | Path, dst: str | Path, *, keep_optimizer: bool = True) -> Path:
    """A trainer checkpoint -> a compact one (fp16 weights, bf16 Adam moments, and the goal schedule,
    RNG and data position, so that a trainer can resume from it; no optimiser or resume state with
    `keep_optimizer=False`: a file to evaluate rather than to continue)."""
    ck = load_checkpoint(src)
    opt = ck.get("optimizer_state") if keep_optimizer else None
    out = {"step": int(ck["step"]), "model_name": ck["model_name"], "model_options": ck["model_options"],
           "model_state": _cast(ck["model_state"], torch.float16),
           "optimizer_state": None if opt is None else {"state": _cast(opt["state"], torch.bfloat16),
                                                        "param_groups": opt["param_groups"]},
           "gecos": ck.get("gecos", {}), "config": ck.get("config", {})}
    if keep_optimizer:
        out.update({k: ck[k] for k in ("goal_schedule", "rng", "data_position", "world_size") if k in ck})
    return save_checkpoint(dst, out)


def write_error_reason(e: OSError) -> str:
    """A short human reason for a failed write ("disk full", "read-only file system", ...)."""
    import errno

    reasons = {errno.ENOSPC: "disk full", errno.EROFS: "read-only file system",
               errno.EACCES: "permission denied", errno.EPERM: "permission denied",
               errno.EDQUOT: "disk quota exceeded", errno.ENOTDIR: "a path component is a file",
               errno.ELOOP: "a symbolic-link loop in the path",
               errno.EEXIST: "a file (or a broken or looping symbolic link) is in the way of the folder"}
    return reasons.get(e.errno, e.strerror or str(e))


def check_writable(folder: str | os.PathLike, need_bytes: int = 0, what: str = "checkpoints") -> None:
    """Create `folder`, write and delete a small probe file, and check `need_bytes` are free.

    Raises RunDirNotWritable with one line ("cannot write checkpoints to DIR: disk full").
    """
    import shutil

    folder = Path(folder)
    try:
        if folder.exists() and not folder.is_dir():
            raise RunDirNotWritable(f"cannot write {what} to {folder}: it is a file, not a folder; "
                                    f"remove it or choose another run_dir=...")
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".write-probe.", dir=folder)
        try:
            os.write(fd, b"\0" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(tmp)
        free = shutil.disk_usage(folder).free
    except OSError as e:
        raise RunDirNotWritable(f"cannot write {what} to {folder}: {write_error_reason(e)}") from None
    if need_bytes and free < need_bytes:
        raise RunDirNotWritable(f"cannot write {what} to {folder}: disk full ({free / 1e6:.0f} MB free, "
                                f"about {need_bytes / 1e6:.0f} MB needed); free some space or use a "
                                f"folder on another disk")
