"""Command frames in, reply frames out (PROTOCOL.md 3); the handler never raises.

``Control.handle(frame, port, trusted)`` checks the frame (length, CRC, version, type), the
argument length against ``wire.CMD_ARGS_FMT``, the bonded-only rule, unpacks the arguments and
calls ``app.cmd_<name>(args, port, out)``, which packs its payload at ``out[4:]`` and returns
``(err, payload_len)``. Any exception becomes an ``internal`` error reply.
"""

import struct

import frames
import wire

_VT_CMD = (wire.PROTOCOL_VERSION << 4) | wire.T_COMMAND
_OPEN = (wire.CMD_GET_STATUS, wire.CMD_GET_INFO)  # allowed for anyone when bonded_only is set
_SIZES = {k: struct.calcsize(v) for k, v in wire.CMD_ARGS_FMT.items()}


class Control:
    def __init__(self, app):
        self.app = app
        self.out = bytearray(wire.MAX_FRAME)
        self.handled = 0
        self.errors = 0  # replies with err != ok
        self.internal = 0  # handler exceptions turned into ERR_INTERNAL

    def handle(self, frame, port=None, trusted=True):
        """Return (buf, n): the reply frame for one received command frame."""
        self.handled += 1
        tok = cmd = 0
        try:
            n = len(frame)
            if n >= 2:
                tok = frame[1]
            if n >= 3:
                cmd = frame[2]
            err, plen = self._dispatch(frame, n, cmd, port, trusted)
        except Exception:  # noqa: BLE001 - the contract: never raise out of the handler
            self.internal += 1
            err, plen = wire.ERR_INTERNAL, 0
        if err:
            self.errors += 1
        try:
            return self.out, frames.encode_reply(self.out, tok, cmd, err, plen)
        except Exception:  # noqa: BLE001 - a payload length gone wrong: still answer
            return self.out, frames.encode_reply(self.out, tok, cmd, wire.ERR_INTERNAL, 0)

    def _dispatch(self, frame, n, cmd, port, trusted):
        if n < wire.CMD_HDR_SIZE + wire.CRC_SIZE or frame[0] != _VT_CMD or not frames.check(frame, n):
            return wire.ERR_BAD_FRAME, 0
        need = _SIZES.get(cmd)
        if need is None:
            return wire.ERR_UNKNOWN_COMMAND, 0
        nargs = n - wire.CMD_HDR_SIZE - wire.CRC_SIZE
        if cmd == wire.CMD_BUZZ:
            extra = nargs - need
            if extra < 0 or extra & 1 or extra > 2 * wire.BUZZ_MAX_PULSES:
                return wire.ERR_BAD_LENGTH, 0
        elif nargs != need:
            return wire.ERR_BAD_LENGTH, 0
        if not trusted and cmd not in _OPEN and self.app.bonded_only():
            return wire.ERR_NOT_BONDED, 0
        args = struct.unpack_from(wire.CMD_ARGS_FMT[cmd], frame, wire.CMD_HDR_SIZE)
        return getattr(self.app, "cmd_" + wire.CMD_NAMES[cmd])(args, port, self.out)
