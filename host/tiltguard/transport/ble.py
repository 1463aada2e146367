"""Bluetooth LE link (bleak + bleak-retry-connector): find the clip, connect, subscribe, reconnect.

The clip is found by its service UUID, its name prefix ``tiltguard`` or a given name/address. After
connecting, notifications of the stream and status characteristics are de-segmented (``protocol.ble``)
and decoded; commands are written to the control characteristic with response (replies come back on
the stream, matched by token in the pipeline). When the link drops the transport says so and reconnects
with exponential backoff (rescanning when the clip stays away); the live pipeline then restarts the
stream and backfills the missed indices from the clip's flash log. RSSI comes from the clip's
advertisement; the MTU from BlueZ's AcquireNotify (bleak reads 23 before that), and frames of any size
are accepted anyway.
"""

from __future__ import annotations

import asyncio
import re
import time
import warnings
from dataclasses import dataclass

from tiltguard.errors import InputError
from tiltguard.protocol import ble as pble
from tiltguard.protocol import frames as fr
from tiltguard.transport.base import LinkEvent, Received, Transport

ADDRESS_RE = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$|^[0-9A-Fa-f-]{36}$")  # MAC, or a macOS UUID
_DISCONNECTED = object()


class WrongDevice(Exception):
    """Connected, but the device does not serve the tiltguard GATT service."""


@dataclass
class ClipAd:
    """One clip heard advertising; ``rssi_dbm`` from its last advertisement."""

    name: str
    address: str
    rssi_dbm: int | None
    device: object = None  # bleak BLEDevice


def is_clip(device, adv) -> bool:
    """A tiltguard clip: advertises the service UUID or a ``tiltguard`` name."""
    uuids = [u.lower() for u in (adv.service_uuids or [])]
    return pble.SERVICE_UUID in uuids or pble.is_clip_name(adv.local_name or device.name)


def _matches(target: str | None, device, adv) -> bool:
    if not target:
        return is_clip(device, adv)
    if ADDRESS_RE.match(target):
        return device.address.replace("-", ":").lower() == target.replace("-", ":").lower()
    name = (adv.local_name or device.name or "").lower()
    return name == target.lower() or (name.startswith(target.lower()) and is_clip(device, adv))


def bluetooth_error(exc: BaseException) -> InputError:
    """A one-line message for 'no adapter / no BlueZ / no D-Bus' and other scan failures."""
    text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    low = text.lower()
    missing = ("no such file", "not available", "serviceunknown", "org.bluez", "no bluetooth", "adapter",
               "dbus", "connection refused", "powered")
    if isinstance(exc, (FileNotFoundError, ConnectionRefusedError)) or any(m in low for m in missing):
        return InputError(f"Bluetooth is not available on this computer (no adapter, or BlueZ not running): {text}")
    return InputError(f"Bluetooth scan failed: {text}")


async def scan(timeout_s: float = 5.0, target: str | None = None, first: bool = False) -> list[ClipAd]:
    """Clips advertising within ``timeout_s`` (only ``target`` when given); ``first``: return at the first.

    Strongest signal first. Raises InputError (one line) when there is no usable Bluetooth.
    """
    from bleak import BleakScanner

    found: dict[str, ClipAd] = {}
    hit = asyncio.Event()

    def seen(device, adv) -> None:
        if _matches(target, device, adv):
            found[device.address] = ClipAd(adv.local_name or device.name or "?", device.address, adv.rssi, device)
            hit.set()

    try:
        async with BleakScanner(detection_callback=seen, scanning_mode="active"):
            if first:
                try:
                    await asyncio.wait_for(hit.wait(), timeout_s)
                except asyncio.TimeoutError:
                    pass
            else:
                await asyncio.sleep(timeout_s)
    except Exception as exc:  # noqa: BLE001 - bleak raises BleakError, DBusError, OSError... for a missing stack
        raise bluetooth_error(exc) from None
    return sorted(found.values(), key=lambda c: -(c.rssi_dbm if c.rssi_dbm is not None else -999))


class BleTransport(Transport):
    kind = "ble"
    can_backfill = True

    def __init__(self, target: str | None = None, scan_timeout_s: float = 10.0, reconnect_max_s: float = 5.0,
                 connect_attempts: int = 2, use_start_notify: bool = False):
        super().__init__()
        self.target = target
        self.scan_timeout_s = scan_timeout_s
        self.reconnect_max_s = reconnect_max_s
        self.connect_attempts = connect_attempts
        self.use_start_notify = use_start_notify  # False: BlueZ AcquireNotify (a socket, no D-Bus per packet)
        self.clip: ClipAd | None = None
        self.battery_pct: int | None = None  # Battery Level characteristic, read at each connection
        self.client = None
        self.connects = 0
        self.segments_lost = 0
        self._q: asyncio.Queue | None = None
        self._gen = 0

    async def open(self) -> None:
        clips = await scan(self.scan_timeout_s, self.target, first=True)
        if not clips:
            what = f"{self.target!r}" if self.target else "(service UUID or name tiltguard-*)"
            raise InputError(f"no tiltguard clip {what} heard within {self.scan_timeout_s:g} s: is it on, near, "
                             "and not connected to another host? (`tiltguard devices` lists clips in range)")
        self.clip = clips[0]
        self.rssi_dbm = self.clip.rssi_dbm
        self.description = f"ble {self.clip.name} {self.clip.address}"

    async def close(self) -> None:
        await super().close()
        client, self.client = self.client, None
        if self._q is not None:
            self._q.put_nowait(_DISCONNECTED)
        if client is not None:
            try:
                await asyncio.wait_for(client.disconnect(), 5.0)
            except Exception:  # noqa: BLE001 - already gone; nothing to do
                pass

    # ------------------------------------------------------------------ connection
    async def _connect(self) -> None:
        from bleak import BleakClient
        from bleak_retry_connector import establish_connection

        self._gen += 1
        gen, q = self._gen, self._q

        def on_disconnect(_client) -> None:
            if gen == self._gen:  # a late callback of an older connection must not end this one
                q.put_nowait(_DISCONNECTED)

        def on_notify(role: str):
            def cb(_char, data: bytearray) -> None:
                q.put_nowait((role, bytes(data), time.time() * 1000.0))
            return cb

        client = await establish_connection(BleakClient, self.clip.device, self.clip.name,
                                            disconnected_callback=on_disconnect,
                                            max_attempts=self.connect_attempts)
        try:
            backend = getattr(client, "_backend", None)
            if hasattr(backend, "_acquire_mtu"):  # BlueZ: the real MTU is known only once acquired
                try:
                    await backend._acquire_mtu()
                except Exception:  # noqa: BLE001 - keep the default; frames of any size are accepted
                    pass
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.mtu = int(client.mtu_size)
            kw = {"bluez": {"use_start_notify": self.use_start_notify}}
            if client.services.get_characteristic(pble.STREAM_UUID) is None:
                raise WrongDevice(f"{self.clip.name} ({self.clip.address}) has no tiltguard stream characteristic: "
                                  "wrong device, or firmware without the tiltguard service?")
            await client.start_notify(pble.STREAM_UUID, on_notify("stream"), **kw)
            try:
                await client.start_notify(pble.STATUS_UUID, on_notify("status"), **kw)
            except Exception:  # noqa: BLE001 - status is optional for recording
                pass
            try:
                self.battery_pct = int((await client.read_gatt_char(pble.BATTERY_LEVEL_UUID))[0])
            except Exception:  # noqa: BLE001 - no Battery service: the status frames carry it too
                pass
        except Exception:
            try:
                await client.disconnect()
            except Exception:  # noqa: BLE001
                pass
            raise
        self.client = client
        self.connects += 1

    async def _rescan(self) -> None:
        """BlueZ may have forgotten the clip while it was away: look for it again, briefly."""
        try:
            clips = await scan(2.0, self.clip.address, first=True)
        except InputError:
            return
        if clips:
            self.clip = clips[0]
            self.rssi_dbm = self.clip.rssi_dbm

    async def _run(self):
        self._q = asyncio.Queue()
        delay, failures = 0.25, 0
        while not self._closed:
            try:
                await self._connect()
            except WrongDevice as exc:
                # never fatal: the user may still switch the clip on or fix its firmware; say it once
                failures += 1
                if failures == 1:
                    yield LinkEvent("bad_input", str(exc), {"reason": "wrong_device", "count": 0})
                await asyncio.sleep(self.reconnect_max_s)
                continue
            except Exception as exc:  # noqa: BLE001 - any failure to connect: wait and try again
                if self._closed:
                    return
                failures += 1
                if failures == 1 or failures % 5 == 0:
                    why = (str(exc) or type(exc).__name__).splitlines()[0][-90:]
                    yield LinkEvent("info", f"cannot reach {self.clip.name} yet ({why}); retrying "
                                            f"(attempt {failures})")
                await asyncio.sleep(delay)
                delay = min(self.reconnect_max_s, delay * 2)
                if failures % 3 == 0:
                    await self._rescan()
                continue
            delay, failures = 0.25, 0
            yield LinkEvent("connected", f"{self.description} (MTU {self.mtu}, RSSI {self.rssi_dbm} dBm)",
                            {"mtu": self.mtu, "rssi_dbm": self.rssi_dbm})
            async for item in self._pump():
                yield item
            client, self.client = self.client, None
            if client is not None:
                try:
                    await asyncio.wait_for(client.disconnect(), 2.0)
                except Exception:  # noqa: BLE001 - the link is already gone
                    pass
            if self._closed:
                return
            yield LinkEvent("disconnected", f"{self.description} out of reach; reconnecting")

    async def _pump(self):
        """Frames from the notification queue until the link drops or the transport closes."""
        reasm = {"stream": pble.Reassembler(), "status": pble.Reassembler()}
        q = self._q
        while not self._closed:
            item = await q.get()
            if item is _DISCONNECTED:
                return
            role, data, t_ms = item
            r = reasm[role]
            lost = r.segments_lost
            raw = r.feed(data)
            if r.segments_lost > lost:
                self.segments_lost += r.segments_lost - lost
                yield LinkEvent("bad_input", "a frame lost a BLE segment; dropped",
                                {"reason": "truncated", "count": r.segments_lost - lost})
            if raw is None:
                continue
            try:
                f = fr.decode_frame(raw)
            except fr.FrameError as exc:
                yield LinkEvent("bad_input", f"damaged frame from {self.clip.name} ({exc.reason}); dropped",
                                {"reason": exc.reason, "count": 1})
                continue
            yield Received(raw, f, t_ms)

    async def _write(self, frame: bytes) -> bool:
        client = self.client
        if client is None or not client.is_connected:
            return False
        try:
            await client.write_gatt_char(pble.CONTROL_UUID, frame, response=True)
            return True
        except Exception:  # noqa: BLE001 - the link dropped mid-write; the disconnect callback reports it
            return False
