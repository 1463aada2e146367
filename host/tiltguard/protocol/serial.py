"""Serial framing (firmware/PROTOCOL.md 1.3): 0x00 + COBS(frame) + 0x00, and an incremental de-framer."""

from __future__ import annotations

from tiltguard.protocol import frames as fr
from tiltguard.protocol import wire as w
from tiltguard.protocol.stream import StreamDecoder

MAX_CHUNK = w.MAX_FRAME + 2  # COBS of a 244-byte frame is 245 bytes; longer chunks are garbage


def cobs_encode(data: bytes) -> bytes:
    """COBS without delimiters (works per zero-free run, not per byte)."""
    out = bytearray()
    for part in bytes(data).split(b"\x00"):
        while len(part) >= 254:
            out.append(0xFF)
            out += part[:254]
            part = part[254:]
        out.append(len(part) + 1)
        out += part
    return bytes(out)


def cobs_decode(chunk: bytes) -> bytes | None:
    """Inverse of cobs_encode; None if the chunk is not valid COBS."""
    out = bytearray()
    i, n = 0, len(chunk)
    while i < n:
        code = chunk[i]
        end = i + code
        if code == 0 or end > n:
            return None
        out += chunk[i + 1 : end]
        i = end
        if code < 0xFF and i < n:
            out.append(0)
    return bytes(out)


def frame_serial(frame: bytes) -> bytes:
    """The bytes to write on the port for one frame."""
    return b"\x00" + cobs_encode(frame) + b"\x00"


class Deframer:
    """feed(bytes) -> list of COBS-decoded chunks; resynchronises on every 0x00.

    Counts `bad_cobs` (undecodable chunks) and `oversize` (runs longer than any frame, e.g. text
    or garbage); empty chunks (the double delimiter between frames) are ignored.
    """

    def __init__(self) -> None:
        self._pending = bytearray()
        self._skipping = False
        self.bad_cobs = 0
        self.oversize = 0

    @property
    def rejects(self) -> int:
        return self.bad_cobs + self.oversize

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        parts = bytes(data).split(b"\x00")
        out: list[bytes] = []
        for j, part in enumerate(parts):
            last = j == len(parts) - 1
            if not self._skipping:
                self._pending += part
                if len(self._pending) > MAX_CHUNK:
                    self.oversize += 1
                    self._pending.clear()
                    self._skipping = True
            if last:
                break
            # a delimiter follows this part: the chunk is complete
            if not self._skipping and self._pending:
                dec = cobs_decode(bytes(self._pending))
                if dec is None or not dec:
                    self.bad_cobs += 1
                elif len(dec) > w.MAX_FRAME:
                    self.oversize += 1
                else:
                    out.append(dec)
            self._pending.clear()
            self._skipping = False
        return out


class SerialDecoder:
    """Bytes from a serial port -> (frame bytes, decoded frame) pairs, with all rejects counted."""

    def __init__(self) -> None:
        self.deframer = Deframer()
        self.decoder = StreamDecoder()

    def feed(self, data: bytes | bytearray | memoryview) -> list[tuple[bytes, fr.Frame]]:
        out = []
        for chunk in self.deframer.feed(data):
            f = self.decoder.feed(chunk)
            if f is not None:
                out.append((chunk, f))
        return out

    def stats(self) -> dict[str, int]:
        return {
            **self.decoder.stats(),
            "rejected_bad_cobs": self.deframer.bad_cobs,
            "rejected_oversize": self.deframer.oversize,
        }
