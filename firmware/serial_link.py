"""The same frames over a byte stream (USB CDC on the board) with COBS framing (PROTOCOL.md 1.3).

The stream is injected: on the board ``open_stream("usb")`` gives the USB CDC port (stdin/stdout
buffers, with Ctrl-C disabled since 0x03 may appear in COBS data); under the unix port
``open_stream("fd:N")`` or a pty path, so a host can talk to the firmware over a pseudo-terminal.
"""

import select
import sys
import time

import cobs
import wire


def open_stream(spec):
    """(rx, tx) binary streams for "usb"/"stdio", "fd:N" or a device path."""
    if spec in ("usb", "stdio"):
        try:
            import micropython

            micropython.kbd_intr(-1)
        except (ImportError, AttributeError):
            pass
        rx = getattr(sys.stdin, "buffer", sys.stdin)
        tx = getattr(sys.stdout, "buffer", sys.stdout)
        return rx, tx
    if spec.startswith("fd:"):
        f = open(int(spec[3:]), "r+b")
    else:
        f = open(spec, "r+b")
    return f, f


LOST_MS = 2000  # nothing could be written for this long: the host is gone (log what it misses)


class SerialLink:
    """Frames in and out of a byte stream; ``poll()`` returns a received command frame or None.

    Writes never block the app: a frame is only written when the port polls writable, else
    ``send`` returns False and the frame waits in the queue (a host that stopped reading, e.g. a
    killed process on a pty, would otherwise stall sampling). After LOST_MS without a write the
    link counts as disconnected (the app then logs what the host misses); the next frame received
    from a host reconnects it.
    """

    def __init__(self, rx, tx):
        self.rx = rx
        self.tx = tx
        self._poll = select.poll()
        self._poll.register(rx, select.POLLIN)
        self._wpoll = select.poll()
        try:
            self._wpoll.register(tx, select.POLLOUT)
        except (OSError, TypeError, AttributeError):
            self._wpoll = None  # a stream that cannot be polled: write and hope
        self._last_ok = time.ticks_ms()
        self._one = bytearray(1)
        self._deframer = cobs.Deframer(cap=2 * wire.MAX_COMMAND)
        self._out = bytearray(wire.SERIAL_MAX_ENCODED + 4)
        mv = memoryview(self._out)
        self._views = [mv[:i] for i in range(len(self._out) + 1)]  # no slice object per frame
        self.mtu = wire.MTU_MAX  # serial frames use the MTU 247 sizing
        self._flush = getattr(tx, "flush", None)
        self.connected = True
        self.trusted = True  # a cable is physical access
        self.sent = 0
        self.rx_bytes = 0
        self.errors = 0

    @property
    def rejects(self):
        return self._deframer.rejects

    def poll(self, budget=256):
        """Read what is waiting (at most ``budget`` bytes); return a complete frame (bytes) or None."""
        d = self._deframer
        try:
            while budget and next(self._poll.ipoll(0), None) is not None:  # ipoll: no allocation
                if self.rx.readinto(self._one) != 1:
                    break
                budget -= 1
                self.rx_bytes += 1
                n = d.feed(self._one[0])
                if n:
                    self.connected = True  # a host talks to us (again)
                    self._last_ok = time.ticks_ms()
                    return bytes(memoryview(d.out)[:n])
        except OSError:
            self.errors += 1
        return None

    def room(self):
        return wire.MAX_FRAME

    def send(self, frame, n):
        """Write 0x00 + COBS(frame[:n]) + 0x00; False if the port is full or refused it."""
        if self._wpoll is not None and next(self._wpoll.ipoll(0), None) is None:
            if time.ticks_diff(time.ticks_ms(), self._last_ok) > LOST_MS:
                self.connected = False
            return False
        m = cobs.frame_into(frame, n, self._out)
        try:
            self.tx.write(self._views[m])
            if self._flush is not None:
                try:
                    self._flush()
                except OSError:
                    self._flush = None  # ptys refuse it (EINVAL) and need none: stop asking
        except OSError:
            self.errors += 1
            if time.ticks_diff(time.ticks_ms(), self._last_ok) > LOST_MS:
                self.connected = False
            return False
        self._last_ok = time.ticks_ms()
        self.sent += 1
        return True

    async def wait(self, ms):
        import asyncio

        await asyncio.sleep_ms(ms)
