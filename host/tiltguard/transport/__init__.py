"""Links to the clip behind one small async interface (bleak-like).

    async with open_transport("replay", "run/stream.tgl", speed=10) as t:
        async for item in t.frames():
            ...                      # Received (a decoded frame) or LinkEvent (connected, lost, bad input)
        await t.send_command(commands.encode("buzz", 1, pattern="alert"))

Transports only move frames; gap accounting (which sample indices are missing) and backfill requests
are done by the caller with ``protocol.stream.StreamDecoder`` (see ``tiltguard.live.pipeline``).
"""

from tiltguard.transport.base import LinkEvent, Received, Transport, open_transport

__all__ = ["LinkEvent", "Received", "Transport", "open_transport"]
