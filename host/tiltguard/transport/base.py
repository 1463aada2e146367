"""The transport interface: an async context manager that yields frames and link events."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import AsyncIterator

from tiltguard.errors import InputError
from tiltguard.protocol import frames as fr


@dataclass
class Received:
    """One frame as it came off the link: its exact bytes, the decoded frame and the host time (ms)."""

    raw: bytes
    frame: fr.Frame
    host_unix_ms: float


@dataclass
class LinkEvent:
    """Something about the link itself: ``kind`` is connected, disconnected, bad_input, info or end."""

    kind: str
    message: str = ""
    data: dict = field(default_factory=dict)
    host_unix_ms: float = field(default_factory=lambda: time.time() * 1000.0)


class Transport:
    """Base class. Subclasses implement ``_run`` (an async generator of Received / LinkEvent) and
    ``_write`` (bytes of one command frame, already framed for the link where needed).

    ``can_backfill``: whether the other end has a flash log that can resend missing samples.
    ``rssi_dbm`` / ``mtu``: link quality figures when the link knows them (else None).
    """

    kind = "base"
    can_backfill = False

    def __init__(self) -> None:
        self.rssi_dbm: float | None = None
        self.mtu: int | None = None
        self.description = self.kind
        self.commands_sent = 0
        self._closed = False

    async def __aenter__(self) -> "Transport":
        await self.open()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def open(self) -> None:
        """Prepare (find the device, load the file); raise TiltguardError with a one-line reason."""

    async def close(self) -> None:
        self._closed = True

    def frames(self) -> AsyncIterator[Received | LinkEvent]:
        """Frames in arrival order, interleaved with link events; ends when the source ends or on close()."""
        return self._run()

    async def _run(self) -> AsyncIterator[Received | LinkEvent]:  # pragma: no cover - abstract
        raise NotImplementedError
        yield

    async def send_command(self, frame: bytes) -> bool:
        """Write one command frame (``protocol.commands.encode``); False when the link is down."""
        ok = await self._write(bytes(frame))
        if ok:
            self.commands_sent += 1
        return ok

    async def _write(self, frame: bytes) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError


def open_transport(kind: str, target: str | None = None, **kw) -> Transport:
    """A transport by kind: ``replay`` (target = file or session folder), ``serial`` (target = port or
    None to auto-detect) or ``ble`` (target = name or address or None for the first clip found)."""
    if kind == "replay":
        from tiltguard.transport.replay import ReplayTransport

        if target is None:
            raise InputError("replay needs a file or session folder")
        return ReplayTransport(target, **kw)
    if kind == "serial":
        from tiltguard.transport.serial import SerialTransport

        return SerialTransport(target, **kw)
    if kind == "ble":
        from tiltguard.transport.ble import BleTransport

        return BleTransport(target, **kw)
    raise InputError(f"unknown transport {kind!r} (use ble, serial or replay)")
