"""Replay a recorded session (stream.tgl, raw CSV or a session folder) as if a clip were sending it.

A binary log is replayed frame by frame at its recorded arrival times; a raw CSV is first re-encoded into
the data frames a clip would send (wire units, consecutive sample indices, a jump in the index where the
recording has a gap), so both go through exactly the same live pipeline. ``speed`` is a factor of real
time (1 = real time) or ``None`` for as fast as possible.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np

from tiltguard.errors import InputError
from tiltguard.protocol import frames as fr
from tiltguard.protocol import wire as w
from tiltguard.transport.base import LinkEvent, Received, Transport

BOOT_US = 1_000_000  # device clock of the first re-encoded sample (the clip has been on for a second)


def _source_file(path: Path) -> Path:
    if path.is_dir():
        from tiltguard.formats.session import find_raw

        return find_raw(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    return path


def notify_time_s(t_last_s):
    """When a clip sends a frame whose last sample was taken at ``t_last_s`` (s from the stream's first sample):
    at the next notification burst (``wire.NOTIFY_BURST_MS``, PROTOCOL.md 1.1). Frames of one burst arrive
    together."""
    burst_s = w.NOTIFY_BURST_MS / 1000.0
    return np.ceil(np.asarray(t_last_s, dtype=np.float64) / burst_s - 1e-9) * burst_s


def encode_recording(rec, mode: int | None = None) -> tuple[list[bytes], np.ndarray]:
    """Data frames for a Recording, and when a clip would send each (s from the first sample) for pacing:
    the burst after its last sample (:func:`notify_time_s`).

    Sample indices advance by the number of nominal intervals between rows (at least 1), so a gap in
    the recording becomes a jump in ``seq`` exactly as a lost stretch of a live stream would.
    """
    rate = float(np.round(rec.fs_hz))
    if mode is None:
        mode = w.MODE_FULL if rec.gyro_dps is not None else w.MODE_COMPACT
    n = len(rec.t_s)
    k = 9 if mode == w.MODE_FULL else 6
    vals = np.zeros((n, k), np.int64)
    if rec.angles_deg is not None:
        a = np.round(np.asarray(rec.angles_deg, float) / w.ANGLE_LSB_DEG)
        vals[:, 0:3] = np.where(np.isfinite(a), np.clip(np.nan_to_num(a), -32767, 32767), w.ANGLE_MISSING)
    else:
        vals[:, 0:3] = w.ANGLE_MISSING
    vals[:, 3:6] = np.clip(np.round(np.nan_to_num(rec.acc_g) / w.ACC_LSB_G), -32767, 32767)
    if k == 9:
        g = rec.gyro_dps if rec.gyro_dps is not None else np.zeros((n, 3))
        vals[:, 6:9] = np.clip(np.round(np.nan_to_num(g) / w.GYRO_LSB_DPS), -32767, 32767)
    steps = np.maximum(1, np.round(np.diff(rec.t_s) * rate)).astype(np.int64)
    seq = np.concatenate([[0], np.cumsum(steps)])
    t_us = BOOT_US + np.round((rec.t_s - rec.t_s[0]) * 1e6).astype(np.int64)
    period_q = int(round(4e6 / rate))
    breaks = np.flatnonzero(steps != 1) + 1
    frames: list[bytes] = []
    pace: list[float] = []
    per = w.samples_per_frame(w.MTU_MAX, mode)
    for a, b in zip(np.concatenate([[0], breaks]), np.concatenate([breaks, [n]])):  # per gap, not per sample
        a, b = int(a), int(b)
        # a frame carries its first sample's time; later samples follow at the nominal period
        frames += fr.encode_data_frames(vals[a:b], int(seq[a]), t_us[a:b], period_q, mode)
        last = np.minimum(np.arange(a, b, per) + per - 1, b - 1)   # each frame's last sample: when it can leave
        pace += (rec.t_s[last] - rec.t_s[0]).tolist()
    return frames, notify_time_s(pace)


class ReplayTransport(Transport):
    """Frames from a file, paced at ``speed`` x real time (None = as fast as possible).

    ``skip_to_seq``: data frames entirely before this sample index are skipped without waiting (used
    when a session is resumed: what the log already holds is not replayed again).
    """

    kind = "replay"

    def __init__(self, path, speed: float | None = None, skip_to_seq: int | None = None):
        super().__init__()
        self.path = Path(path)
        if speed is not None and not speed > 0:
            raise InputError(f"replay speed must be > 0 (got {speed})")
        self.speed = speed
        self.skip_to_seq = skip_to_seq
        self.sent: list[bytes] = []  # commands "written" (nothing listens on a replay)
        self._frames: list[bytes] = []
        self._pace = np.zeros(0)
        self.mode = "compact"
        self.rate_hz: float | None = None
        self.source_meta: dict = {}
        self.damaged = (0, 0)  # (corrupt records skipped, torn tail bytes) of a replayed log

    async def open(self) -> None:
        src = _source_file(self.path)
        self.description = f"replay of {src}"
        if src.name.endswith(".tgl"):
            from tiltguard.formats.sessionlog import read_sessionlog

            log = read_sessionlog(src)
            self.damaged = (log.corrupt, log.torn_tail_bytes)
            keep = [i for i, f in enumerate(log.frames) if (f[0] & 0x0F) != w.T_COMMAND]
            self._frames = [log.frames[i] for i in keep]
            self._pace = log.host_ms[keep].astype(float) / 1000.0
            if not self._frames:
                raise InputError(f"{src}: the session log holds no frames")
            self.mode = "full" if any(f[0] & 0x0F in fr.FULL_TYPES for f in self._frames[:50]) else "compact"
        else:
            from tiltguard.formats.raw import read_raw

            rec = read_raw(src)
            self._frames, self._pace = encode_recording(rec)
            self.mode = "full" if rec.gyro_dps is not None else "compact"
            self.rate_hz = float(np.round(rec.fs_hz))
        if src.parent.is_dir() and (src.parent / "session.json").exists():
            try:
                from tiltguard.formats.session import read_session_meta

                self.source_meta = read_session_meta(src.parent)
            except Exception:  # noqa: BLE001 - the metadata of the source is a nicety only
                self.source_meta = {}

    @property
    def n_frames(self) -> int:
        return len(self._frames)

    def _start_index(self) -> int:
        if self.skip_to_seq is None:
            return 0
        for i, f in enumerate(self._frames):
            if (f[0] & 0x0F) in fr.DATA_TYPES and len(f) >= w.DATA_OVERHEAD:
                seq = int.from_bytes(f[1:5], "little")
                if seq + f[11] > self.skip_to_seq:
                    return i
        return len(self._frames)

    async def _run(self):
        yield LinkEvent("connected", self.description)
        if self.damaged[0]:
            yield LinkEvent("bad_input", f"{self.damaged[0]} damaged record(s) in the replayed log skipped",
                            {"reason": "bad_crc", "count": self.damaged[0]})
        if self.damaged[1]:
            yield LinkEvent("info", f"the replayed log ends in a torn record ({self.damaged[1]} bytes dropped)")
        i0 = self._start_index()
        if i0:
            yield LinkEvent("info", f"resuming the replay at frame {i0} of {len(self._frames)}")
        t_wall0 = time.monotonic()
        p0 = self._pace[i0] if i0 < len(self._pace) else 0.0
        for i in range(i0, len(self._frames)):
            if self._closed:
                return
            if self.speed is not None:
                due = t_wall0 + (self._pace[i] - p0) / self.speed
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif i % 64 == 0:
                await asyncio.sleep(0)  # let the dashboard and flush timer run
            raw = self._frames[i]
            try:
                f = fr.decode_frame(raw)
            except fr.FrameError as exc:
                yield LinkEvent("bad_input", f"replay frame {i}: {exc}", {"reason": exc.reason})
                continue
            yield Received(raw, f, time.time() * 1000.0)
        yield LinkEvent("end", "end of the recording")

    async def _write(self, frame: bytes) -> bool:
        self.sent.append(frame)
        return True
