"""Streaming frame decoder with counters, and sample-index (seq) gap accounting."""

from __future__ import annotations

from dataclasses import dataclass, field

from tiltguard.protocol import frames as fr


class SeqTracker:
    """Which sample indices arrived: counts loss, late (reordered) and duplicate samples.

    `missing` is the list of [start, end) index ranges not (yet) received; late or backfilled
    frames fill them. Indices are compared modulo 2**32 against the highest seen.
    """

    def __init__(self) -> None:
        self.next: int | None = None  # one past the highest index seen (unwrapped)
        self.missing: list[list[int]] = []
        self.received = 0
        self.reordered = 0
        self.duplicates = 0
        self.backfilled = 0
        self.abandoned = 0  # missing indices given up on (not in the clip's log, or never issued)

    @property
    def lost(self) -> int:
        return sum(b - a for a, b in self.missing)

    def _unwrap(self, seq: int) -> int:
        if self.next is None:
            return seq
        base = self.next - (self.next & 0xFFFFFFFF)
        cand = base + seq
        if cand - self.next > (1 << 31):
            cand -= 1 << 32
        elif self.next - cand > (1 << 31):
            cand += 1 << 32
        return cand

    def add(self, seq: int, n: int, backfill: bool = False) -> int:
        """Record samples [seq, seq+n); return how many of them are new."""
        s = self._unwrap(seq)
        e = s + n
        if self.next is None:
            self.next = e
            self.received += n
            return n
        old = self.next
        new = 0
        if s < old:  # the part before the end seen so far fills holes, or is a duplicate
            hi = min(e, old)
            filled = self._fill(s, hi)
            new += filled
            if backfill:
                self.backfilled += filled
            else:
                self.reordered += filled
            self.duplicates += (hi - s) - filled
        if e > old:
            start = max(s, old)
            if start > old:
                self.missing.append([old, start])
            new += e - start
            self.next = e
        self.received += new
        return new

    def abandon(self, a: int, b: int) -> int:
        """Stop waiting for indices [a, b) (e.g. outside the clip's log after list_logs, or skipped
        at a reboot); returns how many were missing."""
        gone = self._fill(self._unwrap(a), self._unwrap(a) + (b - a))
        self.abandoned += gone
        return gone

    def _fill(self, a: int, b: int) -> int:
        filled = 0
        out = []
        for lo, hi in self.missing:
            x, y = max(lo, a), min(hi, b)
            if x >= y:
                out.append([lo, hi])
                continue
            filled += y - x
            if lo < x:
                out.append([lo, x])
            if y < hi:
                out.append([y, hi])
        self.missing = out
        return filled


@dataclass
class StreamCounters:
    frames_ok: int = 0
    rejects: dict[str, int] = field(default_factory=lambda: dict.fromkeys(fr.REJECT_REASONS, 0))

    @property
    def rejected(self) -> int:
        return sum(self.rejects.values())


class StreamDecoder:
    """Decode frames one at a time; never raises on bad input, counts instead.

    feed(frame_bytes) returns the decoded frame or None (rejected). Data frames update `seq`;
    live frames count as reordered when they fill a hole, log frames as backfilled.
    """

    def __init__(self) -> None:
        self.counters = StreamCounters()
        self.seq = SeqTracker()

    def feed(self, buf: bytes | bytearray | memoryview) -> fr.Frame | None:
        try:
            f = fr.decode_frame(buf)
        except fr.FrameError as exc:
            self.counters.rejects[exc.reason] += 1
            return None
        self.counters.frames_ok += 1
        if isinstance(f, fr.DataFrame):
            self.seq.add(f.seq, f.n, backfill=f.is_log)
        return f

    def stats(self) -> dict[str, int]:
        s = self.seq
        return {
            "frames_ok": self.counters.frames_ok,
            **{f"rejected_{k}": v for k, v in self.counters.rejects.items()},
            "samples_received": s.received,
            "samples_lost": s.lost,
            "samples_reordered": s.reordered,
            "samples_duplicate": s.duplicates,
            "samples_backfilled": s.backfilled,
            "samples_abandoned": s.abandoned,
        }
