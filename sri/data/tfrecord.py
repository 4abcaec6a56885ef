"""GZIP TFRecord reading (CRC-checked) and a minimal `tf.train.Example` wire-format parser.

A TFRecord is a sequence of `uint64 length | uint32 masked_crc32c(length) | data |
uint32 masked_crc32c(data)` (little endian); `data` is a serialized `tf.train.Example`.
No TensorFlow or protobuf runtime is needed: the Example message is decoded by hand, and a
`bytes_list` of 1-byte strings (3 wire bytes per element: tag 0x0A, length 0x01, value) is
sliced with numpy in one go.
"""
from __future__ import annotations

import os
import queue
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO

import crc32c as _crc32c
import numpy as np

try:  # zlib-ng inflates this data ~5x faster than the stdlib zlib; same API
    from zlib_ng import zlib_ng as zlib_backend
except ImportError:  # pragma: no cover - optional speed-up
    try:
        from isal import isal_zlib as zlib_backend
    except ImportError:
        zlib_backend = zlib

from sri.data.errors import DataError

_MASK_DELTA = 0xA282EAD8
_READ_BYTES = 1 << 16  # small input chunks keep the inflate output cache-friendly


def masked_crc32c(data: bytes | memoryview) -> int:
    """The TFRecord checksum: crc32c rotated right by 15 bits plus a constant (mod 2^32)."""
    crc = _crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


# --------------------------------------------------------------------------- reading records
class _GzipStream:
    """Decompresses a (possibly multi-member) gzip file incrementally; tracks compressed bytes."""

    def __init__(self, fh: BinaryIO, path: str):
        self.fh, self.path = fh, path
        self.dec = zlib_backend.decompressobj(wbits=31)
        self.compressed_read = 0
        self.truncated_gzip = False

    def _read_input(self) -> bytes:
        data = self.fh.read(_READ_BYTES)
        self.compressed_read += len(data)
        return data

    def read(self, n: int) -> bytes:
        """Exactly n bytes, or fewer only at the end of the stream."""
        parts, need, stalls = [], n, 0
        while need > 0:
            if self.dec.eof:  # next gzip member (or the end of the file)
                rest = self.dec.unused_data or self.dec.unconsumed_tail
                self.dec = zlib_backend.decompressobj(wbits=31)
                data = rest or self._read_input()
                if not data:
                    break
            elif self.dec.unconsumed_tail:
                data = self.dec.unconsumed_tail
            else:
                data = self._read_input()
            try:
                out = self.dec.decompress(data, need)
            except (zlib.error, zlib_backend.error) as e:
                raise DataError(f"{self.path}: corrupt gzip data ({e}); re-download the file") from e
            if not data and not out:
                self.truncated_gzip = not self.dec.eof
                break
            stalls = 0 if out else stalls + 1
            if stalls > 1000:
                raise DataError(f"{self.path}: the gzip stream makes no progress (corrupt file); re-download it")
            parts.append(out)
            need -= len(out)
        return parts[0] if len(parts) == 1 else b"".join(parts)


def iter_records(path: str | os.PathLike, *, compressed: bool | None = None, skip: Callable[[int], bool] | None = None,
                 progress: Callable[[int], None] | None = None) -> Iterator[tuple[int, bytes | None]]:
    """Yield `(index, data)` for every record of a TFRecord file, checking both CRCs.

    `compressed=None` detects GZIP from the magic bytes. When `skip(index)` is true the data CRC
    is not computed and `None` is yielded (resume: finished records are only framed).
    `progress(n)` is called with the number of compressed bytes read so far.
    Raises `DataError` naming the file and record on truncation or CRC mismatch.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        if compressed is None:
            compressed = fh.read(2) == b"\x1f\x8b"
            fh.seek(0)
        stream = _GzipStream(fh, path) if compressed else None
        index = 0
        while True:
            if stream is not None:
                head = stream.read(12)
            else:
                head = fh.read(12)
            if progress is not None:
                progress(stream.compressed_read if stream is not None else fh.tell())
            if not head:
                if stream is not None and stream.truncated_gzip:
                    raise DataError(f"{path}: gzip stream is truncated after record {index - 1}; "
                                    "the download is incomplete, re-run `sri data download`")
                return
            if len(head) < 12:
                raise DataError(f"{path}: truncated record {index} (header has {len(head)} of 12 bytes)")
            length, len_crc = struct.unpack("<QI", head)
            if masked_crc32c(head[:8]) != len_crc:
                raise DataError(f"{path}: CRC mismatch in the length header of record {index} "
                                "(corrupt file; re-download it)")
            if stream is None and length > size - fh.tell():  # a damaged header would ask for terabytes
                raise DataError(f"{path}: truncated record {index}: it declares {length} bytes but only "
                                f"{size - fh.tell()} remain in the file (corrupt or truncated file; re-download it)")
            body = stream.read(length + 4) if stream is not None else fh.read(length + 4)
            if len(body) < length + 4:
                raise DataError(f"{path}: truncated record {index} (expected {length + 4} bytes, "
                                f"file ends after {len(body)})")
            if skip is not None and skip(index):
                yield index, None
            else:
                data = memoryview(body)[:length]
                (data_crc,) = struct.unpack("<I", body[length:])
                if masked_crc32c(data) != data_crc:
                    raise DataError(f"{path}: CRC mismatch in the data of record {index} "
                                    "(corrupt file; re-download it)")
                yield index, data
            index += 1


def iter_records_threaded(path: str | os.PathLike, *, depth: int = 8, **kw) -> Iterator[tuple[int, bytes | None]]:
    """`iter_records` run in a background thread (zlib and crc32c release the GIL)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    _END = object()

    def work() -> None:
        try:
            for item in iter_records(path, **kw):
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_END)
        except BaseException as e:  # re-raised in the consumer
            q.put(e)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        t.join(timeout=5)


# ---------------------------------------------------------------------- parsing tf.train.Example
def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("varint runs past the end of the message")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: memoryview) -> Iterator[tuple[int, int, object]]:
    """Yield (field number, wire type, value) of one protobuf message."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        num, wt = key >> 3, key & 7
        if wt == 2:
            n, pos = _varint(buf, pos)
            if pos + n > end:
                raise ValueError("length-delimited field runs past the end of the message")
            yield num, wt, buf[pos: pos + n]
            pos += n
        elif wt == 0:
            v, pos = _varint(buf, pos)
            yield num, wt, v
        elif wt == 5:
            yield num, wt, buf[pos: pos + 4]
            pos += 4
        elif wt == 1:
            yield num, wt, buf[pos: pos + 8]
            pos += 8
        else:
            raise ValueError(f"unsupported wire type {wt}")


_ONE_BYTE = np.dtype([("tl", "<u2"), ("v", "u1")])


def _bytes_list(payload: memoryview, copy: bool = True) -> np.ndarray | list[bytes]:
    """A BytesList: uint8 array when every value is a single byte, else a list of bytes.

    With `copy=False` the array is a read-only strided view into the record buffer."""
    if len(payload) == 0:
        return np.zeros(0, np.uint8)
    if len(payload) % 3 == 0:
        # each element is (tag 0x0A, length 0x01, value): check tag+length as one uint16 per element
        s = np.frombuffer(payload, dtype=_ONE_BYTE)
        if (s["tl"] == 0x010A).all():
            return s["v"].copy() if copy else s["v"]
    values = [bytes(v) for num, wt, v in _fields(payload) if num == 1 and wt == 2]
    if all(len(v) == 1 for v in values):
        return np.frombuffer(b"".join(values), np.uint8).copy()
    return values


def _float_list(payload: memoryview) -> np.ndarray:
    parts = []
    for num, wt, v in _fields(payload):
        if num != 1:
            continue
        if wt == 2:  # packed
            parts.append(np.frombuffer(v, dtype="<f4"))
        elif wt == 5:
            parts.append(np.frombuffer(v, dtype="<f4"))
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


def _int64_list(payload: memoryview) -> np.ndarray:
    vals: list[int] = []
    for num, wt, v in _fields(payload):
        if num != 1:
            continue
        if wt == 2:  # packed varints
            pos = 0
            while pos < len(v):
                x, pos = _varint(v, pos)
                vals.append(x)
        elif wt == 0:
            vals.append(v)
    arr = np.array(vals, dtype=np.uint64)
    return arr.astype(np.int64)  # two's complement for negatives


def parse_example(data: bytes | memoryview, wanted: set[str] | None = None,
                  copy: bool = True) -> dict[str, np.ndarray | list[bytes]]:
    """Decode a serialized `tf.train.Example` into `{feature name: flat numpy array}`.

    bytes_list of 1-byte strings -> uint8, float_list -> float32, int64_list -> int64.
    Only the features in `wanted` are decoded (all when None); `copy=False` returns uint8
    features as read-only views into `data` (no copy). Raises `ValueError` on bad wire data.
    """
    buf = memoryview(data)
    out: dict[str, np.ndarray | list[bytes]] = {}
    for num, wt, features in _fields(buf):
        if num != 1 or wt != 2:
            continue
        for fnum, fwt, entry in _fields(features):
            if fnum != 1 or fwt != 2:
                continue
            key, value = None, None
            for enum, ewt, ev in _fields(entry):
                if enum == 1 and ewt == 2:
                    key = bytes(ev).decode("utf-8")
                elif enum == 2 and ewt == 2:
                    value = ev
            if key is None or (wanted is not None and key not in wanted):
                continue
            arr: np.ndarray | list[bytes] = np.zeros(0, np.uint8)
            if value is not None:
                for knum, kwt, payload in _fields(value):
                    if kwt != 2:
                        continue
                    if knum == 1:
                        arr = _bytes_list(payload, copy)
                    elif knum == 2:
                        arr = _float_list(payload)
                    elif knum == 3:
                        arr = _int64_list(payload)
            out[key] = arr
    return out


# ------------------------------------------------------------------------------------ writing
def _key(num: int, wt: int) -> bytes:
    return _enc_varint((num << 3) | wt)


def _enc_varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _ld(num: int, payload: bytes) -> bytes:
    return _key(num, 2) + _enc_varint(len(payload)) + payload


def encode_example(features: dict[str, np.ndarray]) -> bytes:
    """Serialize `{name: array}` as a `tf.train.Example` the way DeepMind's files store it.

    uint8 arrays become a bytes_list of 1-byte strings (C order), floating arrays a packed
    float_list, integer arrays a packed int64_list. Used by the conversion benchmark.
    """
    entries = []
    for name, arr in features.items():
        a = np.asarray(arr)
        if a.dtype == np.uint8:
            flat = a.reshape(-1)
            body = np.empty((flat.size, 3), np.uint8)
            body[:, 0], body[:, 1], body[:, 2] = 0x0A, 0x01, flat
            lst = _ld(1, body.tobytes())
        elif np.issubdtype(a.dtype, np.floating):
            lst = _ld(2, _ld(1, a.astype("<f4").reshape(-1).tobytes()))
        else:
            lst = _ld(3, _ld(1, b"".join(_enc_varint(int(x) & 0xFFFFFFFFFFFFFFFF) for x in a.reshape(-1))))
        entries.append(_ld(1, _ld(1, name.encode()) + _ld(2, lst)))
    return _ld(1, b"".join(entries))


def frame_record(data: bytes) -> bytes:
    """One TFRecord frame around `data`."""
    head = struct.pack("<Q", len(data))
    return head + struct.pack("<I", masked_crc32c(head)) + data + struct.pack("<I", masked_crc32c(data))
