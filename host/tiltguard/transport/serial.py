"""USB serial link (pyserial): auto-detect the clip's port, de-frame COBS, survive garbage and unplugging.

A reader thread moves bytes into the event loop; ``protocol.serial.SerialDecoder`` resynchronises on every
0x00, so garbage loses only the chunk it is in (counted and reported, never fatal). When the port vanishes
the transport reports it and keeps trying to reopen it (re-detecting when the port was auto-detected);
the pipeline then restarts the stream and asks the clip's log for what was missed.
"""

from __future__ import annotations

import asyncio
import threading
import time

from tiltguard.errors import InputError
from tiltguard.protocol import serial as pserial
from tiltguard.transport.base import LinkEvent, Received, Transport

ESPRESSIF_VID = 0x303A  # ESP32-S3 native USB (USB-Serial/JTAG and TinyUSB CDC)
HINTS = ("tiltguard", "micropython", "esp32", "usb jtag/serial")
SILENT_S = 3.0  # a port that sends no valid frame this long after connecting is probably not a clip


def find_clip_ports() -> list[str]:
    """Serial ports that look like a clip: Espressif USB VID, or a hint in the description/product."""
    from serial.tools import list_ports

    out = []
    for p in list_ports.comports():
        text = " ".join(str(x or "") for x in (p.description, p.product, p.manufacturer, p.interface)).lower()
        if p.vid == ESPRESSIF_VID or any(h in text for h in HINTS):
            out.append(p.device)
    return out


class SerialTransport(Transport):
    kind = "serial"
    can_backfill = True

    def __init__(self, port: str | None = None, baud: int = 921600, reconnect_max_s: float = 2.0):
        super().__init__()
        self.port_name = port
        self.auto = port is None
        self.baud = baud
        self.reconnect_max_s = reconnect_max_s
        self.decoder = pserial.SerialDecoder()
        self._ser = None
        self._q: asyncio.Queue | None = None
        self._thread: threading.Thread | None = None
        self.mtu = 247

    def _detect(self) -> str:
        ports = find_clip_ports()
        if not ports:
            from serial.tools import list_ports

            seen = ", ".join(p.device for p in list_ports.comports()) or "none"
            raise InputError(f"no tiltguard clip found on USB serial (ports seen: {seen}); "
                             "plug it in or give the port: --serial PORT")
        return ports[0]

    def _open_port(self):
        import serial

        try:
            return serial.Serial(self.port_name, self.baud, timeout=0.1, write_timeout=1.0)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise InputError(f"cannot open serial port {self.port_name}: {exc}") from None

    async def open(self) -> None:
        if self.auto:
            self.port_name = self._detect()
        self._ser = self._open_port()
        self.description = f"serial {self.port_name}"

    async def close(self) -> None:
        await super().close()
        ser, self._ser = self._ser, None
        if ser is not None:
            try:
                ser.close()
            except Exception:  # noqa: BLE001 - closing a vanished port may fail; nothing to do
                pass

    def _reader(self, ser, loop, q) -> None:
        while not self._closed:
            try:
                # wait (up to the port timeout) for the first byte, then take only what has arrived: a
                # large fixed read would hold each frame until the read filled or timed out (100 ms)
                data = ser.read(1)
                if data and ser.in_waiting:
                    data += ser.read(ser.in_waiting)
            except Exception as exc:  # noqa: BLE001 - pyserial raises SerialException/OSError/TypeError
                loop.call_soon_threadsafe(q.put_nowait, exc)
                return
            if data:
                loop.call_soon_threadsafe(q.put_nowait, data)

    def _start_reader(self) -> None:
        self._q = asyncio.Queue()
        self._thread = threading.Thread(target=self._reader, args=(self._ser, asyncio.get_running_loop(), self._q),
                                        daemon=True)
        self._thread.start()

    async def _reopen(self):
        """Try to get the port back, with backoff; yields nothing, returns when open or closed."""
        delay = 0.2
        while not self._closed:
            await asyncio.sleep(delay)
            try:
                if self.auto:
                    self.port_name = self._detect()
                self._ser = self._open_port()
                self.description = f"serial {self.port_name}"
                return True
            except InputError:
                delay = min(self.reconnect_max_s, delay * 2)
        return False

    async def _run(self):
        while not self._closed:
            self._start_reader()
            yield LinkEvent("connected", self.description)
            t_conn = time.monotonic()
            got_frame = warned = False
            seen = self.decoder.stats()
            while not self._closed:
                try:
                    item = await asyncio.wait_for(self._q.get(), 0.5)
                except asyncio.TimeoutError:
                    item = b""
                if isinstance(item, Exception):
                    yield LinkEvent("disconnected", f"serial port {self.port_name} vanished ({item})")
                    break
                now_ms = time.time() * 1000.0
                for raw, f in self.decoder.feed(item) if item else ():
                    got_frame = True
                    yield Received(raw, f, now_ms)
                st = self.decoder.stats()
                bad = {k: st[k] - seen[k] for k in st if k.startswith("rejected_") and st[k] > seen[k]}
                if bad:
                    seen = st
                    yield LinkEvent("bad_input", f"{sum(bad.values())} damaged chunk(s) on {self.port_name} "
                                                 f"({', '.join(k[9:] for k in bad)}); dropped, recording goes on",
                                    {"reason": next(iter(bad))[9:], "count": sum(bad.values())})
                if not got_frame and not warned and time.monotonic() - t_conn > SILENT_S:
                    warned = True
                    yield LinkEvent("bad_input", f"{self.port_name} sends no tiltguard frames: wrong device, "
                                                 "or the clip's serial link is off?", {"reason": "no_frames",
                                                                                       "count": 0})
            ser, self._ser = self._ser, None
            if ser is not None:
                try:
                    ser.close()
                except Exception:  # noqa: BLE001
                    pass
            if self._closed or not await self._reopen():
                return

    async def _write(self, frame: bytes) -> bool:
        ser = self._ser
        if ser is None:
            return False
        try:
            ser.write(pserial.frame_serial(frame))
            return True
        except Exception:  # noqa: BLE001 - the port vanished mid-write; the reader reports it
            return False
