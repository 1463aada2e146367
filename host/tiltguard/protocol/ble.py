"""BLE side of the protocol: GATT ids and segmentation for tiny MTUs (firmware/PROTOCOL.md 1.1-1.2)."""

from __future__ import annotations

from tiltguard.protocol import wire as w

SERVICE_UUID = w.SERVICE_UUID
STREAM_UUID = w.STREAM_UUID
CONTROL_UUID = w.CONTROL_UUID
STATUS_UUID = w.STATUS_UUID
BATTERY_LEVEL_UUID = "00002a19-0000-1000-8000-00805f9b34fb"
DIS_FIRMWARE_UUID = "00002a26-0000-1000-8000-00805f9b34fb"
DIS_MODEL_UUID = "00002a24-0000-1000-8000-00805f9b34fb"


def uuid16(short: int) -> str:
    """Full 128-bit form of a 16-bit SIG UUID (as bleak reports it)."""
    return f"0000{short:04x}-0000-1000-8000-00805f9b34fb"


def is_clip_name(name: str | None) -> bool:
    return bool(name) and name.startswith(w.NAME_PREFIX)


def segment(frame: bytes, mtu: int) -> list[bytes]:
    """Notifications for one frame: the frame itself when it fits MTU-3, else segments."""
    room = max(mtu, w.MTU_MIN) - w.ATT_HEADER
    if len(frame) <= room:
        return [bytes(frame)]
    chunk = room - 1
    out = []
    for k, pos in enumerate(range(0, len(frame), chunk)):
        seg = k & w.SEG_COUNTER_MASK
        if pos == 0:
            seg |= w.SEG_FIRST
        if pos + chunk >= len(frame):
            seg |= w.SEG_LAST
        out.append(bytes([seg]) + frame[pos : pos + chunk])
    return out


class Reassembler:
    """Notifications -> whole frames. feed() returns a frame (bytes) or None.

    `segments_lost` counts frames broken by a missing segment (each broken frame once).
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._expect = -1  # next segment counter, -1 when not inside a frame
        self._discarding = False  # skipping the rest of a broken frame
        self.segments_lost = 0

    def feed(self, value: bytes | bytearray | memoryview) -> bytes | None:
        value = bytes(value)
        if not value:
            return None
        head = value[0]
        if head >= 0x10:  # a whole frame
            self._broken_if_open()
            return value
        if head & w.SEG_FIRST:
            self._broken_if_open()
            if head & w.SEG_COUNTER_MASK:
                self._broken()
                return None
            self._buf = bytearray(value[1:])
            self._expect = 1
        elif self._expect < 0:
            if not self._discarding:  # joined mid-frame
                self._broken()
            return None
        elif (head & w.SEG_COUNTER_MASK) != (self._expect & w.SEG_COUNTER_MASK) or len(self._buf) + len(value) - 1 > w.MAX_FRAME:
            self._broken()
            return None
        else:
            self._buf += value[1:]
            self._expect += 1
        if head & w.SEG_LAST:
            out = bytes(self._buf)
            self._reset()
            return out
        return None

    def _broken_if_open(self) -> None:
        if self._expect >= 0:
            self._broken()
        self._reset()

    def _broken(self) -> None:
        self.segments_lost += 1
        self._reset()
        self._discarding = True

    def _reset(self) -> None:
        self._buf = bytearray()
        self._expect = -1
        self._discarding = False
