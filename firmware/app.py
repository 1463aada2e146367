"""The clip's application state: sample ring, consumers (links, log), commands, status, events.

Data path (no per-sample heap allocation; see README.md for the FIFO/flash sums):

  IMU FIFO --read_fifo--> raw (int16) --Fusion--> angles --_to_ring (viper)--> sample ring
  sample ring --(link cursor)--> DataEncoder --> link tx queue --> BLE notify / serial COBS
  sample ring --(log cursor)---> DataEncoder(log) --> Log record slot --> 4 kB block --> flash

The sampler only writes the ring; the link and log consumers each keep their own sequence
cursor, so a slow link or a flash stall never blocks sampling (the ring holds RING samples, about
5 s at 200 Hz; beyond that the slow consumer skips ahead and the skipped samples count as dropped).
"""

import struct
import time
from array import array

import micropython
from micropython import const

import frames
import wire
from control import Control
from log import _copy

RING = const(2048)  # samples (power of two): 10 s at 200 Hz, 55 kB with the time stamps
_W = const(9)  # int16 per ring sample: tilt, obl, rot (cdeg); ax, ay, az (1/2048 g); gx, gy, gz (1/16 dps)
_TXQ = const(12)  # frames queued per link
_VT = wire.PROTOCOL_VERSION << 4
FIRMWARE_VERSION = "0.1.0"
BOARD_IDS = {"ref": 0, "m5": 1}
IMU_IDS = {"LSM6DSV16X": 0, "MPU6886": 1}
_FRAME_DUE_MS = const(100)  # a partial data frame goes out after this long (PROTOCOL.md 2.1)


@micropython.viper
def _to_ring(raw: ptr16, ang: ptr16, n: int, ring: ptr16, slot: int, amul: int, gmul: int, have_ang: int):
    """n raw samples (6 int16) + angles (3 int16) -> wire units in ring slots from ``slot`` (wraps)."""
    mask = RING - 1
    i = 0
    while i < n:
        d = ((slot + i) & mask) * _W
        s = i * 6
        if have_ang:
            a = i * 3
            d0 = ang[a]
            d1 = ang[a + 1]
            d2 = ang[a + 2]
        else:
            d0 = 0x8000
            d1 = 0x8000
            d2 = 0x8000
        ring[d] = d0
        ring[d + 1] = d1
        ring[d + 2] = d2
        j = 0
        while j < 6:
            v = (raw[s + j] ^ 0x8000) - 0x8000  # sign-extend int16
            v = (v * (amul if j < 3 else gmul)) >> 14
            if v > 32767:
                v = 32767
            if v < -32767:
                v = -32767
            ring[d + 3 + j] = v
            j += 1
        i += 1


@micropython.viper
def _times(tst: ptr32, thi: ptr32, tlo: ptr32, slot: int, n: int):
    """Per-sample u48 time (t_hi << 24 | t_lo, us) into ring slots; tst = [t_hi, t_lo, frac_ns, period_ns]."""
    mask = RING - 1
    hi = tst[0]
    lo = tst[1]
    fr = tst[2]
    p = tst[3]
    pu = p // 1000
    pf = p - pu * 1000
    i = 0
    while i < n:
        k = (slot + i) & mask
        thi[k] = hi
        tlo[k] = lo
        lo += pu
        fr += pf
        if fr >= 1000:
            fr -= 1000
            lo += 1
        if lo >= 0x1000000:
            lo -= 0x1000000
            hi += 1
        i += 1
    tst[0] = hi
    tst[1] = lo
    tst[2] = fr


class Clock48:
    """Microseconds since boot as (t_hi, t_lo) small ints (ticks_us wraps every 17.9 min on the ESP32)."""

    def __init__(self):
        self._last = time.ticks_us()
        self.hi = 0
        self.lo = 0

    def now(self):
        now = time.ticks_us()
        self.lo += time.ticks_diff(now, self._last)
        self._last = now
        while self.lo >= 0x1000000:
            self.lo -= 0x1000000
            self.hi += 1
        return self.hi, self.lo


class Port:
    """A link (BLE or serial) with its own queue of outgoing frames (preallocated slots)."""

    def __init__(self, link, name):
        self.link = link
        self.name = name
        self.q = [bytearray(wire.MAX_FRAME) for _ in range(_TXQ)]
        self.txbuf = bytearray(wire.MAX_FRAME)  # the frame being sent, as an exact-length view
        mv = memoryview(self.txbuf)
        self.views = [mv[:i] for i in range(wire.MAX_FRAME + 1)]
        self.qn = array("H", [0] * _TXQ)
        self.qend = array("I", [0] * _TXQ)  # data frames: end seq (0 for other frames)
        self.head = 0  # next to send
        self.count = 0
        self.acked_seq = 0  # end of the last data frame the link took
        self.was_connected = False
        self.enabled = True
        self._cmd = b""
        self.sent_frames = 0

    def free(self):
        return _TXQ - self.count

    def push(self, buf, n, end_seq=0):
        if self.count >= _TXQ:
            return False
        k = (self.head + self.count) % _TXQ
        _copy(self.q[k], 0, buf, n)
        self.qn[k] = n
        self.qend[k] = end_seq
        self.count += 1
        return True

    def flush(self, limit=8):
        """Send queued frames until the link refuses (ENOMEM: retried next tick); returns frames sent."""
        sent = 0
        while self.count and sent < limit:
            k = self.head
            n = self.qn[k]
            _copy(self.txbuf, 0, self.q[k], n)
            if not self.link.send(self.views[n], n):
                break
            if self.qend[k]:
                self.acked_seq = self.qend[k]
            self.head = (k + 1) % _TXQ
            self.count -= 1
            sent += 1
        self.sent_frames += sent
        return sent

    def clear(self):
        self.head = self.count = 0


class App:
    def __init__(self, cfg, board_name, imu=None, fusion=None, log=None, haptics=None, battery=None):
        self.cfg = cfg
        self.board_name = board_name
        self.imu = imu
        self.fusion = fusion
        self.log = log
        self.haptics = haptics
        self.battery = battery
        self.clock = Clock48()
        self.ports = []
        self.control = Control(self)
        self.ring = array("h", bytes(2 * RING * _W))
        self.thi = array("i", bytes(4 * RING))
        self.tlo = array("i", bytes(4 * RING))
        self.tst = array("i", [0, 0, 0, 5_000_000])  # t_hi, t_lo, frac_ns, period_ns
        ms = imu.max_samples if imu else 32
        self.raw = array("h", bytes(12 * ms))
        self.ang = array("h", bytes(6 * ms))
        self.amul = self.gmul = 1 << 14
        self.rate_hz = cfg.get("rate_hz", 200)
        self.mode = cfg.get("mode", wire.MODE_COMPACT)
        self.period_q = wire.period_q(self.rate_hz)
        self.next_seq = log.end_seq if log else 0  # never reuse an index the log holds
        self.dropped = 0
        self.streaming = False
        self.recording = False  # button run: log without a host
        self.stream_port = None
        self.link_seq = 0
        self.log_seq = 0
        self.log_until = None  # stop logging once this seq is logged (stream resumed)
        self.sampling = False
        self.calibrating = 0  # samples still to collect
        self.calibrator = None
        self.calibrated = False
        self._imu_next = 0
        self._imu_seen = 0
        self.gaps = []  # (start, end) seq ranges lost to FIFO overflows
        self.enc = frames.DataEncoder(self.mode)
        self._enc_t0 = 0
        self._enc_seq0 = 0
        self.lenc = frames.DataEncoder(self.mode, log=True)
        self._lenc_cap()
        self.download = None  # [port, record generator or None, from_seq, count] while downloading
        self.log_flush_to = None  # a download waits until the log writer has committed up to here
        self.dl_sent = 0
        self.fbuf = bytearray(wire.MAX_FRAME)  # events and status
        self._rot_seen = log.rotations if log else 0
        self._status_dirty = True
        self.cue = None
        self.on_link_change = None  # set by main: f(wire.LINK_*)
        if haptics is not None:
            from cue import Cue

            self.cue = Cue(cfg.get("cue_threshold", 400), self._cue_alert, self._cue_recovered, RING, _W)
        if fusion is not None and cfg.get("mount"):
            try:
                import fusion as fz

                fusion.set_calibration(fz.calibration_from_dict(cfg.get("mount")))
                self.calibrated = True
            except (ValueError, TypeError, ImportError):
                pass
        if imu is not None:
            self._setup_imu(self.rate_hz)

    # -- setup -------------------------------------------------------------------------------
    def add_port(self, link, name):
        p = Port(link, name)
        self.ports.append(p)
        return p

    def _lenc_cap(self):
        import log as lg

        self.lenc.set_mode(self.mode)
        self.lenc.cap = lg.CAP_FULL if self.mode == wire.MODE_FULL else lg.CAP_COMPACT

    def _setup_imu(self, rate_hz):
        imu = self.imu
        imu.init(rate_hz)  # ValueError for a rate the chip lacks
        self.rate_hz = rate_hz
        self.tst[3] = imu.period_ns
        self.period_q = (imu.period_ns + 125) // 250
        self.amul = int(imu.ACC_G_PER_LSB * 2048 * 16384 + 0.5)
        self.gmul = int(imu.GYRO_DPS_PER_LSB * 16 * 16384 + 0.5)
        self._imu_next = self._imu_seen = 0
        if self.fusion is not None:
            self.fusion.rate_hz = rate_hz

    def resync(self):
        """Drain the IMU FIFO without counting a loss (boot, rate change): sampling starts clean."""
        if self.imu is None:
            return
        for _ in range(64):
            n = self.imu.read_fifo(self.raw)
            if not n:
                break
            self._discard(n)

    def _discard(self, n):
        """Drop n samples just read, keeping the device clock in step with the IMU."""
        end = self.imu.seq + n
        self._skip_time(end - self._imu_seen)
        self._imu_next = self._imu_seen = end

    def bonded_only(self):
        return bool(self.cfg.get("bonded_only"))

    def now(self):
        return self.clock.now()

    # -- sampling (never waits on a link or the flash) -----------------------------------------
    def sample_once(self):
        """Move what the IMU FIFO holds into the ring; returns samples moved."""
        imu = self.imu
        n = imu.read_fifo(self.raw)
        if not n:
            return 0
        if not self.sampling:  # idle: keep the FIFO empty so a start never begins with an overflow
            self._discard(n)
            return 0
        gap = imu.seq - self._imu_next
        if gap > 0:  # FIFO overflow: the timeline keeps its length, seq skips the lost samples
            self.dropped += gap
            self.gaps.append((self.next_seq, self.next_seq + gap))  # consumers must not frame across it
            self.next_seq += gap
            self._skip_time(gap)
            while self.gaps and self.gaps[0][1] < self.next_seq - 2 * RING:
                self.gaps.pop(0)
        self._imu_next = self._imu_seen = imu.seq + n
        if self.calibrating:  # first: a calibration that ends here already applies to this batch
            self._calib_add(n)
        have = 0
        if self.fusion is not None:
            self.fusion.update(self.raw, n, self.ang)
            have = 1 if self.calibrated else 0
        slot = self.next_seq & (RING - 1)
        _to_ring(self.raw, self.ang, n, self.ring, slot, self.amul, self.gmul, have)
        _times(self.tst, self.thi, self.tlo, slot, n)
        self.next_seq += n
        if self.cue is not None and self.recording and not self.streaming:
            self.cue.feed(self.ring, slot, n)
        return n

    def _skip_time(self, k):
        ns = self.tst[2] + k * self.tst[3]  # rare path: may allocate
        us = ns // 1000
        self.tst[2] = ns - us * 1000
        lo = self.tst[1] + us
        self.tst[0] += lo >> 24
        self.tst[1] = lo & 0xFFFFFF

    def _calib_add(self, n):
        take = min(n, self.calibrating)
        try:
            self.calibrator.add(self.raw, take)
        except ValueError:
            self.calibrating = take
        self.calibrating -= take
        if not self.calibrating:
            self._calib_finish()

    def _calib_finish(self):
        import fusion as fz

        try:
            cal = self.calibrator.finish()
        except ValueError:
            self.event(wire.EV_CALIBRATION_DONE, wire.ERR_NOT_READY)
            if self.haptics:
                self.haptics.buzz("error")
            return
        self.fusion.set_calibration(cal)
        self.calibrated = True
        try:
            self.cfg.set("mount", fz.calibration_to_dict(cal))
        except OSError:
            pass
        self.event(wire.EV_CALIBRATION_DONE, wire.ERR_OK)
        if self.haptics:
            self.haptics.buzz("ack")

    def oldest_seq(self):
        return max(0, self.next_seq - RING + 64)  # keep a margin from the writer

    # -- consumers ---------------------------------------------------------------------------
    def _fill(self, enc, cursor, limit_seq):
        """Add ring samples [cursor, limit_seq) to enc until it is full; returns the new cursor."""
        ring = self.ring
        mask = RING - 1
        if enc.n == 0:
            k = cursor & mask
            enc.begin(cursor, self.thi[k], self.tlo[k], self.period_q)
        while cursor < limit_seq:
            o = (cursor & mask) * _W
            full = enc.add(ring[o], ring[o + 1], ring[o + 2], ring[o + 3], ring[o + 4], ring[o + 5],
                           ring[o + 6], ring[o + 7], ring[o + 8])
            cursor += 1
            if full:
                break
        return cursor

    def _gap(self, cursor):
        """The first FIFO-overflow gap (start, end) not yet passed by ``cursor``, or None."""
        if self.gaps:
            for g in self.gaps:
                if g[1] > cursor:
                    return g
        return None

    def pump_stream(self, now_ms):
        """Frame new samples for the streaming port (only when its queue has room)."""
        p = self.stream_port
        if p is None or not self.streaming:
            return
        if self.link_seq < self.oldest_seq():  # the link fell a ring behind: skip, count, re-anchor
            self._finish_stream_frame(p)
            self.dropped += self.oldest_seq() - self.link_seq
            self.link_seq = self.oldest_seq()
        enc = self.enc
        while p.free() > 2 and self.link_seq < self.next_seq:
            limit = self.next_seq
            g = self._gap(self.link_seq)
            if g is not None:
                if self.link_seq >= g[0]:  # jump the hole; the next frame re-anchors seq and time
                    self._finish_stream_frame(p)
                    self.link_seq = g[1]
                    continue
                limit = g[0]
            if enc.n == 0:
                self._enc_t0 = now_ms
                self._enc_seq0 = self.link_seq
            self.link_seq = self._fill(enc, self.link_seq, limit)
            if enc.n >= enc.cap or self.link_seq == limit and g is not None:
                self._finish_stream_frame(p)
        if enc.n and time.ticks_diff(now_ms, self._enc_t0) >= _FRAME_DUE_MS and p.free() > 2:
            self._finish_stream_frame(p)

    def _finish_stream_frame(self, p):
        enc = self.enc
        if enc.n:
            f = enc.finish()
            p.push(f, len(f), self.link_seq)
            enc.n = 0

    def logging(self):
        return self.log is not None and self.log.run is not None

    def pump_log(self, max_records=32):
        """Pack logged samples into records; a full 4 kB block is written (and may stall)."""
        lg = self.log
        if lg is None or lg.run is None:
            return 0
        if self.log_seq < self.oldest_seq():
            self.lenc.n = 0
            self.dropped += self.oldest_seq() - self.log_seq
            self.log_seq = self.oldest_seq()
        end = self.next_seq if self.log_until is None else min(self.next_seq, self.log_until)
        enc = self.lenc
        recs = 0
        while self.log_seq < end and recs < max_records:
            limit = end
            g = self._gap(self.log_seq)
            if g is not None:
                if self.log_seq >= g[0]:
                    self._commit_log()
                    self.log_seq = g[1]
                    continue
                limit = min(end, g[0])
            self.log_seq = self._fill(enc, self.log_seq, limit)
            if enc.n >= enc.cap or self.log_seq == limit and g is not None:
                self._commit_log()
                recs += 1
        if self.log_flush_to is not None and self.log_seq >= self.log_flush_to:
            self._commit_log()  # close the pending record early: a download is waiting for it
            self.log_flush_to = None
        if self.log_until is not None and self.log_seq >= self.log_until:
            self.stop_logging()
        if lg.rotations != self._rot_seen:
            self._rot_seen = lg.rotations
            self.event(wire.EV_LOG_ROTATED, lg.lost)
        return recs

    def _commit_log(self):
        enc = self.lenc
        if not enc.n:
            return
        f = enc.finish()
        self.log.put(f, len(f))
        enc.n = 0

    def start_logging(self, from_seq=None):
        if self.log is None or self.log.run is not None:
            self.log_until = None
            return
        self.log_seq = self.next_seq if from_seq is None else max(from_seq, self.oldest_seq())
        self.lenc.n = 0
        self.log_until = None
        try:
            self.log.start_run()
        except OSError:
            pass

    def stop_logging(self):
        if self.log is None or self.log.run is None:
            return
        self._commit_log()
        self.log.stop_run()
        self.log_until = None
        self.log_flush_to = None

    def pump_download(self, port):
        """Queue log frames of a running download while the port has room."""
        d = self.download
        if d is None or d[0] is not port:
            return
        gen = d[1]
        if gen is None:  # the range reaches samples the log writer still holds: wait for it (log task)
            if self.log_flush_to is not None and self.logging():
                return
            gen = d[1] = self.log.read(d[2], d[3], damaged=True) if d[3] is not None else iter(())
        while port.free() > 2:
            try:
                rec = next(gen)
            except StopIteration:
                self.download = None
                self.event(wire.EV_DOWNLOAD_DONE, self.dl_sent, only=port)
                return
            import log as lg

            ln = lg.frame_len(rec)
            port.push(memoryview(rec)[4 : 4 + ln], ln)
            self.dl_sent += lg.rec_n(rec) if lg.check(rec) else 0  # a damaged record's samples are not sent

    # -- frames to the host ------------------------------------------------------------------
    def event(self, code, value, only=None):
        hi, lo = self.now()
        n = frames.encode_event(self.fbuf, code, self.next_seq, hi, lo, value)
        for p in self.ports:
            if (only is None or p is only) and p.link.connected:
                p.push(self.fbuf, n)

    def state_flags(self):
        s = 0
        if self.streaming:
            s |= wire.ST_STREAMING
        if self.logging():
            s |= wire.ST_LOGGING
        if self.calibrating:
            s |= wire.ST_CALIBRATING
        if self.download is not None:
            s |= wire.ST_DOWNLOADING
        if self.calibrated:
            s |= wire.ST_CALIBRATED
        for p in self.ports:
            if getattr(p.link, "bonded", False) and p.link.connected:
                s |= wire.ST_BONDED
        if self.battery is not None and 0 < self.battery.mv < 3500:
            s |= wire.ST_LOW_BATTERY
        return s

    def status_into(self, buf, off):
        lg = self.log
        mv = self.battery.mv if self.battery else 0
        import power

        pct = power.percent(mv) if mv else 255
        hi, lo = self.now()
        frames.status_body(buf, off, self.state_flags(), pct, mv, lg.fill_pct() if lg else 0, self.mode,
                           self.rate_hz, self.next_seq, self.dropped, lg.lost if lg else 0,
                           lg.first_seq if lg else 0, hi, lo)

    def status_frame(self):
        self.fbuf[0] = _VT | wire.T_STATUS
        self.status_into(self.fbuf, 1)
        return frames.seal(self.fbuf, 1 + wire.STATUS_SIZE)

    # -- commands (called by control.Control; the payload goes to out[4:]) ---------------------
    def _need_imu(self):
        return self.imu is not None

    def cmd_get_status(self, args, port, out):
        self.status_into(out, 4)
        return wire.ERR_OK, wire.STATUS_SIZE

    def cmd_start_stream(self, args, port, out):
        if not self._need_imu():
            return wire.ERR_NOT_READY, 0
        if self.streaming and self.stream_port is port:
            # already streaming here (a host that restarted): carry on, nothing is dropped; the
            # reply says where the data frames that follow it begin
            start = self._enc_seq0 if self.enc.n else self.link_seq
        else:
            if self.streaming:
                self._finish_stream_frame(self.stream_port)
            self.streaming = True
            self.stream_port = port
            self.enc.set_mtu(getattr(port.link, "mtu", wire.MTU_MAX))
            self.enc.n = 0
            self.link_seq = start = self.next_seq
        self.sampling = True
        if self.logging() and not (self.recording or self.cfg.get("always_log")):
            self.log_until = self.next_seq  # log up to here (the host backfills it), then stop
        elif self.cfg.get("always_log"):
            self.start_logging()
        struct.pack_into("<IHB", out, 4, start, self.rate_hz, self.mode)
        return wire.ERR_OK, 7

    def cmd_stop_stream(self, args, port, out):
        if self.streaming and self.stream_port is not None:
            self._finish_stream_frame(self.stream_port)
        self.streaming = False
        self.stream_port = None
        if not self.recording and not self.logging():
            self.sampling = False
        struct.pack_into("<I", out, 4, self.link_seq)
        return wire.ERR_OK, 4

    def cmd_set_rate(self, args, port, out):
        rate = args[0]
        if rate not in wire.RATES_HZ:
            return wire.ERR_BAD_ARGUMENT, 0
        if self.streaming or self.recording or self.calibrating:
            return wire.ERR_BUSY, 0
        if self.imu is not None and rate != self.rate_hz:
            old = self.rate_hz
            try:
                self._setup_imu(rate)
            except (ValueError, OSError):
                self._setup_imu(old)
                return wire.ERR_BAD_ARGUMENT, 0
        self.rate_hz = rate
        self.cfg.set("rate_hz", rate)
        struct.pack_into("<H", out, 4, rate)
        return wire.ERR_OK, 2

    def cmd_set_mode(self, args, port, out):
        mode = args[0]
        if mode not in (wire.MODE_COMPACT, wire.MODE_FULL):
            return wire.ERR_BAD_ARGUMENT, 0
        if mode != self.mode:
            if self.streaming or self.logging():
                return wire.ERR_BUSY, 0
            self.mode = mode
            self.enc.set_mode(mode)
            self._lenc_cap()
            self.cfg.set("mode", mode)
        struct.pack_into("<B", out, 4, mode)
        return wire.ERR_OK, 1

    def cmd_calibrate(self, args, port, out):
        if self.calibrating:
            return wire.ERR_BUSY, 0
        if self.imu is None or self.fusion is None:
            return wire.ERR_NOT_READY, 0
        self.start_calibration(args[0] or 3)
        return wire.ERR_OK, 0

    def start_calibration(self, still_s=3):
        import fusion as fz

        if self.calibrator is None:
            self.calibrator = fz.Calibrator(self.imu.ACC_G_PER_LSB, self.imu.GYRO_DPS_PER_LSB)
        self.calibrator.reset()
        self.calibrating = min(still_s * self.rate_hz, 16000)
        self.sampling = True

    def cmd_buzz(self, args, port, out):
        pat, intensity, repeat = args
        if pat > wire.BUZZ_CUSTOM or intensity > 100:
            return wire.ERR_BAD_ARGUMENT, 0
        pulses = None
        if pat == wire.BUZZ_CUSTOM:
            raw = port._cmd[6:-2] if port is not None else b""
            if not raw:
                return wire.ERR_BAD_ARGUMENT, 0
            pulses = [(raw[i] * 10, raw[i + 1] * 10) for i in range(0, len(raw), 2)]
        if self.haptics is None:
            return wire.ERR_NOT_READY, 0
        self.haptics.buzz(wire.BUZZ_NAMES[pat], intensity, repeat, pulses)
        return wire.ERR_OK, 0

    def cmd_time_sync(self, args, port, out):
        hi, lo = self.now()
        frames.put_u48(out, 4, hi, lo)
        return wire.ERR_OK, 6

    def cmd_list_logs(self, args, port, out):
        lg = self.log
        if lg is None:
            return wire.ERR_STORAGE, 0
        mode, period = lg.last_mode_rate()
        rate = (4_000_000 + period // 2) // period if period else self.rate_hz
        struct.pack_into("<IIIHBBH", out, 4, lg.first_seq, lg.end_seq, lg.lost, len(lg._segs),
                         lg.fill_pct(), self.mode if mode is None else mode, rate)
        return wire.ERR_OK, 18

    def cmd_download_log(self, args, port, out):
        lg = self.log
        if lg is None:
            return wire.ERR_STORAGE, 0
        if self.download is not None:
            return wire.ERR_BUSY, 0
        from_seq, count = args
        end = lg.end_seq  # one past the newest committed record
        lo = lg.first_seq
        if self.logging():
            # a backfill wants everything sampled up to now: the samples the writer has not yet
            # packed or committed (up to ~50 ms, at most the ring) are served once it has, so the
            # log task commits its pending record early and the download waits for it (sampling
            # never waits; the reply already counts them)
            live = self.next_seq if self.log_until is None else min(self.next_seq, self.log_until)
            if lg.empty():
                lo = self.log_seq - self.lenc.n  # the first record is still being packed
            if live > end:
                end = live
        if count:
            end = min(end, from_seq + count)
        first = max(from_seq, lo)
        self.log_flush_to = end if self.logging() and end > lg.end_seq else None
        if self.logging():  # serve up to `end`, never chase the writer (a slow link would never finish)
            count = end - from_seq if end > from_seq else None
        self.download = [port, None, from_seq, count]  # the generator starts in pump_download
        self.dl_sent = 0
        struct.pack_into("<II", out, 4, first, max(0, end - first))
        return wire.ERR_OK, 8

    def cmd_erase_logs(self, args, port, out):
        if args[0] != wire.ERASE_MAGIC:
            return wire.ERR_BAD_ARGUMENT, 0
        if self.log is None:
            return wire.ERR_STORAGE, 0
        if self.download is not None:
            return wire.ERR_BUSY, 0
        try:
            self.log.erase()
        except OSError:
            return wire.ERR_STORAGE, 0
        return wire.ERR_OK, 0

    _CFG = {1: ("link", 0, 2), 2: ("always_log", 0, 1), 3: ("cue_threshold", 0, 3000),
            4: ("bonded_only", 0, 1), 5: ("idle_sleep_s", 0, 86400)}

    def cmd_set_config(self, args, port, out):
        key, value = args
        spec = self._CFG.get(key)
        if spec is None or not spec[1] <= value <= spec[2]:
            return wire.ERR_BAD_ARGUMENT, 0
        try:
            self.cfg.set(spec[0], value)
        except OSError:
            return wire.ERR_STORAGE, 0
        if self.cue is not None and key == wire.CFG_CUE_THRESHOLD:
            self.cue.threshold_cdeg = value
        if key == wire.CFG_LINK and self.on_link_change is not None:
            self.on_link_change(value)  # takes effect once this reply has gone out
        struct.pack_into("<Bi", out, 4, key, value)
        return wire.ERR_OK, 5

    def cmd_get_config(self, args, port, out):
        key = args[0]
        spec = self._CFG.get(key)
        if spec is None:
            return wire.ERR_BAD_ARGUMENT, 0
        struct.pack_into("<Bi", out, 4, key, int(self.cfg.get(spec[0], 0) or 0))
        return wire.ERR_OK, 5

    def cmd_abort_download(self, args, port, out):
        self.download = None
        struct.pack_into("<I", out, 4, self.dl_sent)
        return wire.ERR_OK, 4

    def cmd_get_info(self, args, port, out):
        imu_name = getattr(self.imu, "NAME", None) or (type(self.imu).__name__ if self.imu else "")
        struct.pack_into("<BBB", out, 4, wire.PROTOCOL_VERSION, BOARD_IDS.get(self.board_name, 255),
                         IMU_IDS.get(imu_name, 255))
        fw = FIRMWARE_VERSION.encode()[:12]
        out[7 : 7 + len(fw)] = fw
        return wire.ERR_OK, 3 + len(fw)

    def _cue_alert(self, excess_cdeg):
        self.haptics.buzz("alert")
        self.event(wire.EV_CUE, excess_cdeg)

    def _cue_recovered(self, excess_cdeg):
        self.haptics.buzz("recovered")

    # -- user actions (button) ------------------------------------------------------------------
    def toggle_recording(self):
        if self.recording:
            self.recording = False
            if not self.cfg.get("always_log") or not self.streaming:
                self.stop_logging()
            if not self.streaming:
                self.sampling = False
            if self.haptics:
                self.haptics.buzz("recovered")
        else:
            self.recording = True
            self.sampling = True
            self.start_logging()
            if self.cue is not None:
                self.cue.reset()
            if self.haptics:
                self.haptics.buzz("ack")
        self.event(wire.EV_BUTTON, 1)

    def long_press(self):
        if self.imu is not None and self.fusion is not None and not self.calibrating:
            self.start_calibration(3)
        self.event(wire.EV_BUTTON, 2)

    # -- link housekeeping -----------------------------------------------------------------------
    def on_link_lost(self, port):
        """A streaming host vanished: keep sampling and log from what it may have missed.

        The stream stops (a host that comes back sends start_stream, then backfills the hole
        with download_log); the run goes on in the log until a host or the button stops it.
        """
        port.clear()
        if self.download is not None and self.download[0] is port:
            self.download = None
        if self.streaming and self.stream_port is port:
            self.enc.n = 0
            self.streaming = False
            self.stream_port = None
            # what the host may not have read: BLE notifications in flight; on serial, a port buffer
            # (a pty holds ~20 kB) that a dead host never read: log all the ring still holds
            margin = 64 if port.name == "ble" else RING
            resend_from = max(port.acked_seq - margin, self.oldest_seq())
            self.start_logging(resend_from)
            self.recording = True  # the run goes on without the host

    def service(self, port, now_ms, flush=True):
        """One tick of a link: take commands, notice connects/drops and MTU changes, build and send frames."""
        link = port.link
        cmd = link.poll()
        while cmd is not None:
            self.handle_command(port, cmd)
            cmd = link.poll()
        if port.was_connected and not link.connected:
            self.on_link_lost(port)
        port.was_connected = link.connected
        if not link.connected:
            return
        if self.stream_port is port and self.enc.mtu != link.mtu:  # MTU exchanged: resize frames
            self._finish_stream_frame(port)
            self.enc.set_mtu(link.mtu)
        self.pump_stream(now_ms)
        self.pump_download(port)
        if flush:
            # an unpaced link (serial) drains what is pending now; a sped-up simulation needs it
            for _ in range(16):
                if not port.flush(limit=_TXQ) or (self.stream_port is not port or self.link_seq >= self.next_seq) \
                        and self.download is None:
                    break
                self.pump_stream(now_ms)
                self.pump_download(port)

    def handle_command(self, port, frame):
        port._cmd = frame
        buf, n = self.control.handle(frame, port, getattr(port.link, "trusted", True))
        port.push(buf, n)
