"""Binary session log ``stream.tgl`` (firmware/PROTOCOL.md section 6): append-only frames with host times.

File: a 24-byte header, then records ``len u8, host_ms u32, frame[len], crc u16``. The writer
truncates a torn tail before appending; the reader drops it and counts corrupt records.
"""

from __future__ import annotations

import os
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tiltguard.errors import InputError
from tiltguard.protocol import frames as fr
from tiltguard.protocol import wire as w

MAGIC = b"\x89TGL\r\n\x1a\n"
FORMAT_VERSION = 1
HEADER_FMT = "<8sHHqH"  # magic, version, header size, start_unix_ms, reserved; + crc u16
HEADER_SIZE = 24
REC_FMT = "<BI"  # len, host_ms
REC_HDR = 5
REC_OVERHEAD = REC_HDR + 2
MIN_FRAME = 5


def _header(start_unix_ms: int) -> bytes:
    body = struct.pack(HEADER_FMT, MAGIC, FORMAT_VERSION, HEADER_SIZE, start_unix_ms, 0)
    return body + struct.pack("<H", fr.crc16(body))


def _parse_header(data: bytes, name: str) -> int:
    if len(data) < HEADER_SIZE or data[:8] != MAGIC:
        raise InputError(f"{name}: not a tiltguard session log (bad magic)")
    magic, version, size, start_ms, _ = struct.unpack_from(HEADER_FMT, data)
    if fr.crc16(data[:22]) != struct.unpack_from("<H", data, 22)[0]:
        raise InputError(f"{name}: session log header is corrupt")
    if version != FORMAT_VERSION or size != HEADER_SIZE:
        raise InputError(f"{name}: session log format {version} is not supported")
    return start_ms


def encode_record(frame: bytes, host_ms: int) -> bytes:
    if not MIN_FRAME <= len(frame) <= w.MAX_FRAME:
        raise ValueError(f"frame of {len(frame)} bytes cannot be logged")
    body = struct.pack(REC_FMT, len(frame), host_ms & 0xFFFFFFFF) + bytes(frame)
    return body + struct.pack("<H", fr.crc16(body))


def _record_at(data: bytes, p: int) -> int:
    """Length of a valid record at p, 0 if none there."""
    if p + REC_OVERHEAD + MIN_FRAME > len(data):
        return 0
    n = data[p]
    end = p + REC_HDR + n + 2
    if n < MIN_FRAME or end > len(data) or (data[p + REC_HDR] >> 4) != w.PROTOCOL_VERSION:
        return 0
    if fr.crc16(data[p : end - 2]) != data[end - 2] | (data[end - 1] << 8):
        return 0
    return end - p


@dataclass
class SessionLog:
    """What a stream.tgl holds."""

    start_unix_ms: int
    frames: list[bytes] = field(default_factory=list)
    host_ms: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    corrupt: int = 0  # damaged spans skipped in the middle of the file
    torn_tail_bytes: int = 0  # bytes after the last valid record (an interrupted write), dropped
    valid_end: int = HEADER_SIZE  # file offset just after the last valid record

    def samples(self) -> fr.SampleBatch:
        return fr.decode_data_frames(self.frames, host_ms=self.host_ms)


def read_sessionlog(path: str | Path) -> SessionLog:
    """Read every valid record; a torn tail is dropped, damaged records are skipped and counted."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    log = SessionLog(start_unix_ms=_parse_header(data, path.name))
    frames, times = [], []
    p = HEADER_SIZE
    size = len(data)
    while p < size:
        k = _record_at(data, p)
        if k:
            frames.append(data[p + REC_HDR : p + k - 2])
            times.append(struct.unpack_from("<I", data, p + 1)[0])
            p += k
            log.valid_end = p
            continue
        q = p + 1  # damaged: look for the next record whose CRC checks
        while q < size and not _record_at(data, q):
            q += 1
        if q >= size:
            log.torn_tail_bytes = size - p
            break
        log.corrupt += 1
        p = q
    log.frames = frames
    log.host_ms = np.asarray(times, np.int64)
    return log


class SessionLogWriter:
    """Append frames to a stream.tgl; reopening an existing log continues it (torn tail cut off).

    Call flush() at least once a second (the live recorder does); close() flushes and fsyncs.
    """

    def __init__(self, path: str | Path, start_unix_ms: int | None = None):
        self.path = Path(path)
        if self.path.exists() and self.path.stat().st_size >= HEADER_SIZE:
            log = read_sessionlog(self.path)
            self.start_unix_ms = log.start_unix_ms
            self._fh = open(self.path, "r+b")
            self._fh.truncate(log.valid_end)
            self._fh.seek(log.valid_end)
            self.truncated_bytes = log.torn_tail_bytes
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.start_unix_ms = int(time.time() * 1000) if start_unix_ms is None else int(start_unix_ms)
            self._fh = open(self.path, "wb")
            self._fh.write(_header(self.start_unix_ms))
            self._fh.flush()
            self.truncated_bytes = 0  # (a file shorter than its header was never usable: started afresh)
        self.records = 0

    def append(self, frame: bytes | bytearray | memoryview, host_unix_ms: float | None = None) -> None:
        """Append one frame received (or sent) at host_unix_ms (default: now)."""
        now = time.time() * 1000 if host_unix_ms is None else host_unix_ms
        self._fh.write(encode_record(bytes(frame), max(0, int(now - self.start_unix_ms))))
        self.records += 1

    def flush(self, fsync: bool = False) -> None:
        self._fh.flush()
        if fsync:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self.flush(fsync=True)
            self._fh.close()

    def __enter__(self) -> "SessionLogWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_recording(path: str | Path):
    """The samples of a stream.tgl as a tiltguard.formats.raw.Recording (merged by seq)."""
    log = read_sessionlog(path)
    try:
        return fr.to_recording(log.samples(), path=Path(path))
    except InputError as exc:
        raise InputError(f"{Path(path).name}: {exc}") from None


def export_csv(tgl_path: str | Path, csv_path: str | Path) -> Path:
    """Export a stream.tgl to the raw recording CSV (docs/formats.md)."""
    from tiltguard.formats.raw import write_raw

    return write_raw(csv_path, read_recording(tgl_path))
