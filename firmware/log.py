"""Flash ring log: rotating segment files of fixed-size records, written in 4 kB blocks.

A record (128 bytes) is ``magic u16 ("TG"), run u16`` followed by one PROTOCOL.md **log frame**
(``log_compact``/``log_full``: seq u32, t_us u48, n, period, samples, CRC-16) in a 124-byte slot,
zero padded: 9 compact or 6 full samples fill it exactly, and a download sends the slot as it is.
The frame's own sequence number, timestamp and CRC make the record self-checking.

Records are packed into a preallocated 4 kB block that is written and flushed (a littlefs sync)
when full, so a power loss costs at most the records of the unsynced block. At boot the newest
segment is checked and a torn or corrupt tail dropped (valid prefix copied to a temp file, then
renamed); the first torn record is kept aside in ``torn`` so a download can still show it to the host. Segments are ``RRRRR_SSSS.seg`` (run, segment). Sequence numbers are one index space for
every run and boot (the clip continues from ``end_seq`` at boot), so downloads are by seq. When the
log would exceed ``max_bytes`` the oldest segment is removed and its samples counted as lost.
Under the unix port ``root`` is any directory.
"""

import os
import struct

import micropython

import wire
from frames import crc16  # the protocol's allocation-free CRC-16/CCITT-FALSE

REC = 128
SLOT = 124  # frame bytes per record
BLOCK = 4096
PER_BLOCK = BLOCK // REC
M0 = 0x54  # "T"
M1 = 0x47  # "G"
T_LOG_C = (wire.PROTOCOL_VERSION << 4) | wire.T_LOG_COMPACT
T_LOG_F = (wire.PROTOCOL_VERSION << 4) | wire.T_LOG_FULL
CAP_COMPACT = (SLOT - wire.DATA_OVERHEAD) // wire.SAMPLE_COMPACT_SIZE  # 9
CAP_FULL = (SLOT - wire.DATA_OVERHEAD) // wire.SAMPLE_FULL_SIZE  # 6
_NAME = "%05d_%04d.seg"


@micropython.viper
def _copy(dst, off: int, src, n: int):
    """dst[off:off + n] = src[:n] without a slice object."""
    d = ptr8(dst)
    s = ptr8(src)
    i = 0
    while i < n:
        d[off + i] = s[i]
        i += 1


@micropython.viper
def _zero(dst, start: int, end: int):
    d = ptr8(dst)
    i = start
    while i < end:
        d[i] = 0
        i += 1


def frame_len(rec, off=0):
    """Length of the log frame in a record at ``rec[off:]``, or 0 when it holds no log frame."""
    vt = rec[off + 4]
    n = rec[off + 15]
    if vt == T_LOG_C and 1 <= n <= CAP_COMPACT:
        return wire.DATA_OVERHEAD + n * wire.SAMPLE_COMPACT_SIZE
    if vt == T_LOG_F and 1 <= n <= CAP_FULL:
        return wire.DATA_OVERHEAD + n * wire.SAMPLE_FULL_SIZE
    return 0


def check(rec):
    """True when a 128-byte record has the magic, a log frame header and a matching CRC."""
    if len(rec) != REC or rec[0] != M0 or rec[1] != M1:
        return False
    ln = frame_len(rec)
    if not ln:
        return False
    mv = memoryview(rec)[4:]
    return crc16(mv, ln - 2) == mv[ln - 2] | mv[ln - 1] << 8


def rec_seq(rec):
    return rec[5] | rec[6] << 8 | rec[7] << 16 | rec[8] << 24


def rec_n(rec):
    return rec[15]


def _exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


def _mkdirs(path):
    parts = path.split("/")
    cur = "/" if path.startswith("/") else ""
    for part in parts:
        if not part:
            continue
        cur = cur + part if (not cur or cur.endswith("/")) else cur + "/" + part
        if not _exists(cur):
            os.mkdir(cur)


class Log:
    def __init__(self, root="/log", seg_bytes=16 * BLOCK, max_bytes=None, reserve=16 * BLOCK):
        if seg_bytes % BLOCK or seg_bytes <= 0:
            raise ValueError("seg_bytes must be a multiple of 4096")
        self.root = root.rstrip("/") or "/"
        self.seg_bytes = seg_bytes
        self._block = bytearray(BLOCK)
        self._bmv = memoryview(self._block)
        self._fill = 0  # bytes used in the RAM block
        self._f = None
        self._seg = 0
        self._seg_used = 0
        self.run = None  # run being written, None when idle
        self.lost = 0  # samples lost to rotation since the last erase
        self.rotations = 0
        self.torn_records = 0
        self.records_written = 0
        self.writes = 0  # blocks (or partial blocks) moved from RAM to flash: readers rescan after one
        self.end_seq = 0  # one past the newest logged sample
        self._rbuf = bytearray(REC)
        _mkdirs(self.root)
        self._segs = self._scan()  # sorted [[run, seg, size_bytes]]
        self._recover()
        self._load_lost()
        self.first_seq, self.end_seq = self._bounds()
        self._empty = not self._segs
        self.max_bytes = max_bytes if max_bytes is not None else self._flash_budget(reserve)

    # -- files -----------------------------------------------------------------------------
    def _path(self, run, seg):
        return self.root + "/" + _NAME % (run, seg)

    def _scan(self):
        out = []
        for name in os.listdir(self.root):
            if name.endswith(".seg") and len(name) == 14:
                try:
                    run, seg = int(name[:5]), int(name[6:10])
                except ValueError:
                    continue
                out.append([run, seg, os.stat(self.root + "/" + name)[6]])
            elif name.endswith(".tmp"):
                os.remove(self.root + "/" + name)  # crash during recovery: the original is intact
        out.sort()
        return out

    def _flash_budget(self, reserve):
        try:
            st = os.statvfs(self.root)
            free = st[0] * st[4]
        except (OSError, AttributeError):
            free = 1 << 20
        return max(2 * self.seg_bytes, free + self.used_bytes() - reserve)

    def used_bytes(self):
        n = 0
        for s in self._segs:
            n += s[2]
        return n

    def _load_lost(self):
        try:
            with open(self.root + "/lost", "rb") as f:
                b = f.read(4)
            self.lost = b[0] | b[1] << 8 | b[2] << 16 | b[3] << 24
        except (OSError, IndexError):
            self.lost = 0

    def _save_lost(self):
        tmp = self.root + "/lost.tmp"
        with open(tmp, "wb") as f:
            f.write(struct.pack("<I", self.lost))
        os.rename(tmp, self.root + "/lost")

    def _read_at(self, run, seg, off):
        """Record at byte ``off`` of a segment into the shared buffer, or None."""
        try:
            with open(self._path(run, seg), "rb") as f:
                f.seek(off)
                if f.readinto(self._rbuf) != REC or not check(self._rbuf):
                    return None
        except OSError:
            return None
        return self._rbuf

    def _bounds(self):
        """(first_seq, end_seq) of the records on flash."""
        first = end = 0
        for s in self._segs:
            r = self._read_at(s[0], s[1], 0)
            if r is not None:
                first = rec_seq(r)
                break
        for s in reversed(self._segs):
            if s[2] >= REC:
                r = self._read_at(s[0], s[1], s[2] - REC)
                if r is not None:
                    end = rec_seq(r) + rec_n(r)
                    break
        return first, end

    def _valid_prefix(self, path):
        """Bytes of whole valid records at the start of ``path`` (sequence numbers must increase)."""
        buf = self._rbuf
        good = 0
        last = -1
        with open(path, "rb") as f:
            while f.readinto(buf) == REC:
                if not check(buf):
                    break
                seq = rec_seq(buf)
                if seq < last:
                    break
                last = seq + rec_n(buf)
                good += REC
        return good

    def _recover(self):
        """Drop a torn/corrupt tail of the newest segment (the only one open at a power loss)."""
        if not self._segs:
            return
        s = self._segs[-1]
        path = self._path(s[0], s[1])
        good = self._valid_prefix(path)
        if good == s[2]:
            return
        self.torn_records += (s[2] - good + REC - 1) // REC
        self._keep_torn(path, good)
        if good == 0:
            os.remove(path)
            self._segs.pop()
            return
        tmp = path + ".tmp"
        left = good
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            while left:
                n = min(src.readinto(self._block), left)
                dst.write(self._bmv[:n])
                left -= n
        os.rename(tmp, path)
        s[2] = good

    def _keep_torn(self, path, good):
        """Append the record cut short at ``good`` (its header intact) to ``torn``, keyed by the segment
        it ends, padded with 0xFF as erased flash reads: read(damaged=True) sends it after that segment."""
        buf = bytearray(REC)  # boot only: may allocate
        with open(path, "rb") as f:
            f.seek(good)
            n = f.readinto(buf) or 0
        if n < 16 or buf[0] != M0 or buf[1] != M1 or not frame_len(buf):
            return  # garbage or erased flash, not a record
        for k in range(n, REC):
            buf[k] = 0xFF
        if check(buf):
            return  # only zero padding was cut: no sample is damaged (dropped as before)
        s = self._segs[-1]
        prev = self._read_at(s[0], s[1], good - REC) if good else None
        if good and (prev is None or rec_seq(prev) + rec_n(prev) != rec_seq(buf)):
            return  # does not continue the segment: not a record of it
        owner = s if good else (self._segs[-2] if len(self._segs) > 1 else None)
        if owner is not None:
            with open(self.root + "/torn", "ab") as f:
                f.write(struct.pack("<HH", owner[0], owner[1]))
                f.write(buf)

    def _torn(self):
        """{(run, seg): [record bytes]} of the records _keep_torn set aside."""
        out = {}
        try:
            with open(self.root + "/torn", "rb") as f:
                data = f.read()
        except OSError:
            return out
        for o in range(0, len(data) - REC - 3, REC + 4):
            key = (data[o] | data[o + 1] << 8, data[o + 2] | data[o + 3] << 8)
            out.setdefault(key, []).append(data[o + 4 : o + 4 + REC])
        return out

    # -- writing ---------------------------------------------------------------------------
    def start_run(self):
        """Begin a new run (its own segment files); returns its id."""
        self.stop_run()
        self.run = ((self._segs[-1][0] + 1) if self._segs else 1) & 0xFFFF
        self._open_seg(0)
        return self.run

    def _open_seg(self, seg):
        self._make_room()
        self._seg = seg
        self._segs.append([self.run, seg, 0])
        self._f = open(self._path(self.run, seg), "wb")
        self._seg_used = 0

    def _make_room(self):
        # Keep the newest data: drop whole oldest segments until a new one fits.
        dropped = 0
        while self._segs and self.used_bytes() + self.seg_bytes > self.max_bytes:
            run, seg, size = self._segs[0]
            last = self._read_at(run, seg, size - REC) if size >= REC else None
            end = rec_seq(last) + rec_n(last) if last is not None else self.first_seq
            first = self._read_at(run, seg, 0)
            start = rec_seq(first) if first is not None else end
            self._segs.pop(0)
            os.remove(self._path(run, seg))
            dropped += max(0, end - start)
            self.rotations += 1
        if dropped:
            self.lost += dropped
            self._save_lost()
        if self._segs:
            r = self._read_at(self._segs[0][0], self._segs[0][1], 0)
            if r is not None:
                self.first_seq = rec_seq(r)
        return dropped

    def slot(self):
        """Memoryview of the next record's 124-byte frame slot (encode a log frame into it)."""
        return self._bmv[self._fill + 4 : self._fill + REC]

    def commit(self):
        """Seal the record whose slot was just filled (it must hold a valid log frame)."""
        if self.run is None:
            raise OSError(9)  # EBADF: no run open
        b = self._block
        o = self._fill
        b[o] = M0
        b[o + 1] = M1
        b[o + 2] = self.run & 0xFF
        b[o + 3] = self.run >> 8
        _zero(b, o + 4 + frame_len(b, o), o + REC)  # no stale bytes from an older record
        seq = b[o + 5] | b[o + 6] << 8 | b[o + 7] << 16 | b[o + 8] << 24
        if self._empty:
            self.first_seq = seq
            self._empty = False
        self.end_seq = seq + b[o + 15]
        self._fill = o + REC
        self.records_written += 1
        if self._fill == BLOCK:
            self._write_block(BLOCK)

    def put(self, frame, n):
        """Copy a log frame (n bytes) into the next record and seal it; no allocation."""
        _copy(self._block, self._fill + 4, frame, n)
        self.commit()

    def append(self, frame):
        """Copy a complete log frame (bytes) into a record (tests, tools)."""
        self.put(frame, len(frame))

    def _write_block(self, nbytes):
        # One 4 kB write + sync: the CPU may stall here for tens of ms (FIFO budget in README).
        self._f.write(self._block if nbytes == BLOCK else self._bmv[:nbytes])
        self._f.flush()
        self._seg_used += nbytes
        self._segs[-1][2] = self._seg_used
        self._fill = 0
        self.writes += 1
        if self._seg_used >= self.seg_bytes:
            self._f.close()
            self._open_seg(self._seg + 1)

    def sync(self):
        """Write out a partial block (at the end of a run)."""
        if self._f is not None and self._fill:
            self._f.write(self._bmv[: self._fill])
            self._f.flush()
            self._seg_used += self._fill
            self._segs[-1][2] = self._seg_used
            self._fill = 0
            self.writes += 1

    def stop_run(self):
        if self._f is not None:
            self.sync()
            self._f.close()
            self._f = None
            if self._segs and self._segs[-1][2] == 0:
                s = self._segs.pop()
                os.remove(self._path(s[0], s[1]))
        self.run = None

    # -- reading ---------------------------------------------------------------------------
    def read(self, from_seq=0, count=0, buf=None, damaged=False):
        """Yield valid records (one reused 128-byte ``buf``) holding samples ``[from_seq, from_seq+count)``.

        ``count`` 0 = to the end. Resumable: a reader that stopped starts again from the next seq it
        needs. Records still in the RAM block are included, so a live host can backfill up to now.
        The writer may go on while a download is consumed: when the segment just read grew or the
        RAM block reached flash meanwhile, the reader rescans from the next sample it has not
        yielded (segments that opened or rotated away are followed), so no record is skipped or
        sent twice.
        ``damaged``: also yield records whose header still names a log frame but whose CRC fails (a
        partial last record is padded with 0xFF, as erased flash reads): a download sends what the
        flash holds and the host's CRC check reports it instead of the record silently vanishing.
        The record the boot recovery cut off a segment (``torn``) follows that segment's records.
        """
        buf = buf if buf is not None else bytearray(REC)
        stop = from_seq + count if count else 0xFFFFFFFF + 1
        torn = self._torn() if damaged else None
        nxt = from_seq  # every verified record ending at or before nxt has been yielded
        while True:
            s = self._seg_after(None)
            grown = False
            while s is not None:
                run, seg, size = s
                after = self._seg_after(s)
                if after is not None:  # skip whole segments that end before nxt
                    r = self._read_at(after[0], after[1], 0)
                    if r is not None and rec_seq(r) <= nxt:
                        s = after
                        continue
                try:
                    f = open(self._path(run, seg), "rb")
                except OSError:
                    f = None  # rotated away meanwhile
                if f is not None:
                    with f:
                        left = (size + REC - 1) // REC if damaged else size // REC
                        while left:
                            got = f.readinto(buf)
                            if got != REC:
                                if not damaged or not got or got < 16:
                                    break
                                for k in range(got, REC):
                                    buf[k] = 0xFF
                            left -= 1
                            if not check(buf):
                                if not (damaged and buf[0] == M0 and buf[1] == M1 and frame_len(buf)):
                                    continue
                                if not (rec_seq(buf) + rec_n(buf) > nxt and rec_seq(buf) < stop):
                                    continue  # an unverified index outside the range: nothing to place it by
                                yield buf
                                continue
                            seq = rec_seq(buf)
                            if seq >= stop:
                                return
                            e = seq + rec_n(buf)
                            if e > nxt:
                                yield buf
                                nxt = e
                for t in torn.get((run, seg), ()) if torn else ():
                    buf[:] = t
                    if rec_seq(buf) + rec_n(buf) > nxt and rec_seq(buf) < stop:
                        yield buf
                if s[2] != size:  # the writer appended to it meanwhile: rescan from nxt
                    grown = True
                    break
                s = self._seg_after(s)
            if not grown:
                writes = self.writes
                off = 0
                while self.writes == writes and off < self._fill:
                    _copy(buf, 0, self._bmv[off:], REC)
                    off += REC
                    seq = rec_seq(buf)
                    if seq >= stop:
                        return
                    e = seq + rec_n(buf)
                    if e > nxt:
                        yield buf
                        nxt = e
                if self.writes == writes:
                    return
            # records reached flash while this pass ran: rescan from nxt (damaged and torn records
            # were sent by the first pass; the records written since are all fresh and verified)
            damaged = False
            torn = None

    def _seg_after(self, s):
        """The segment entry after ``s`` (None: the oldest); the list may have changed since ``s``."""
        segs = self._segs
        if s is None:
            return segs[0] if segs else None
        for i in range(len(segs)):
            if segs[i] is s:
                return segs[i + 1] if i + 1 < len(segs) else None
        return segs[0] if segs else None  # s rotated away: its successors are the oldest now

    def erase(self):
        """Remove every segment but the one being written; resets the loss counter."""
        keep = []
        for s in self._segs:
            if self._f is not None and s[0] == self.run and s[1] == self._seg:
                keep.append(s)
            else:
                os.remove(self._path(s[0], s[1]))
        self._segs = keep
        self.lost = 0
        self._save_lost()
        try:
            os.remove(self.root + "/torn")
        except OSError:
            pass
        if not keep:
            self.first_seq = self.end_seq
            self._empty = True

    def empty(self):
        """True when no record was committed since the log was created or last erased."""
        return self._empty

    def fill_pct(self):
        return min(100, (self.used_bytes() + self._fill) * 100 // self.max_bytes) if self.max_bytes else 0

    def last_mode_rate(self):
        """(mode, period) of the newest record, or (None, None)."""
        if self._fill:
            r = self._bmv[self._fill - REC : self._fill]
        else:
            r = None
            for s in reversed(self._segs):
                if s[2] >= REC:
                    r = self._read_at(s[0], s[1], s[2] - REC)
                    break
        if r is None:
            return None, None
        mode = wire.MODE_FULL if r[4] == T_LOG_F else wire.MODE_COMPACT
        return mode, r[16] | r[17] << 8
