"""Control commands for the host: build command frames, read replies (firmware/PROTOCOL.md section 3)."""

from __future__ import annotations

import struct
from typing import Any

from tiltguard.protocol import frames as fr
from tiltguard.protocol import wire as w

CODES = {name: code for code, name in w.CMD_NAMES.items()}
CONFIG_KEYS = {name: key for key, name in w.CFG_NAMES.items()}
BUZZ = {name: i for i, name in enumerate(w.BUZZ_NAMES)}

REPLY_FIELDS = w.REPLY_FIELDS


def encode(cmd: int | str, token: int = 0, **args: Any) -> bytes:
    """A command frame by code or name, e.g. encode("set_rate", 7, rate_hz=200).

    Argument names: set_rate rate_hz; set_mode mode (int or "compact"/"full"); calibrate still_s;
    buzz pattern (int or name), intensity_pct, repeat, pulses [(on_10ms, off_10ms), ...];
    time_sync host_unix_us; download_log from_seq, count; set_config key (int or name), value;
    get_config key.
    """
    code = CODES[cmd] if isinstance(cmd, str) else int(cmd)
    if code not in w.CMD_NAMES:
        raise ValueError(f"unknown command {cmd!r}")
    return fr.encode_command(token & 0xFF, code, encode_args(code, **args))


def encode_args(code: int, **a: Any) -> bytes:
    fmt = w.CMD_ARGS_FMT[code]
    if code == w.CMD_SET_RATE:
        return struct.pack(fmt, a["rate_hz"])
    if code == w.CMD_SET_MODE:
        mode = a["mode"]
        return struct.pack(fmt, w.MODE_NAMES.index(mode) if isinstance(mode, str) else mode)
    if code == w.CMD_CALIBRATE:
        return struct.pack(fmt, a.get("still_s", 0))
    if code == w.CMD_BUZZ:
        pattern = a.get("pattern", w.BUZZ_ALERT)
        pattern = BUZZ[pattern] if isinstance(pattern, str) else pattern
        pulses = list(a.get("pulses", ()))
        if len(pulses) > w.BUZZ_MAX_PULSES:
            raise ValueError(f"at most {w.BUZZ_MAX_PULSES} pulses")
        out = struct.pack(fmt, pattern, a.get("intensity_pct", 0), a.get("repeat", 0))
        return out + b"".join(struct.pack("<BB", on, off) for on, off in pulses)
    if code == w.CMD_TIME_SYNC:
        return struct.pack(fmt, a["host_unix_us"])
    if code == w.CMD_DOWNLOAD_LOG:
        return struct.pack(fmt, a.get("from_seq", 0), a.get("count", 0))
    if code == w.CMD_ERASE_LOGS:
        return struct.pack(fmt, a.get("magic", w.ERASE_MAGIC))
    if code in (w.CMD_SET_CONFIG, w.CMD_GET_CONFIG):
        key = a["key"]
        key = CONFIG_KEYS[key] if isinstance(key, str) else key
        return struct.pack(fmt, key, a["value"]) if code == w.CMD_SET_CONFIG else struct.pack(fmt, key)
    return b""


def decode_args(cmd: fr.Command) -> dict[str, Any]:
    """Arguments of a command frame as a dict (inverse of encode_args); raises FrameError."""
    code, args = cmd.cmd, cmd.args
    if code not in w.CMD_ARGS_FMT:
        raise fr.FrameError("bad_type", f"unknown command {code}")
    fmt = w.CMD_ARGS_FMT[code]
    size = struct.calcsize(fmt)
    extra = args[size:]
    if len(args) < size or (extra and code != w.CMD_BUZZ) or len(extra) % 2 or len(extra) > 2 * w.BUZZ_MAX_PULSES:
        raise fr.FrameError("bad_length", f"{w.CMD_NAMES[code]} args of {len(args)} bytes")
    v = struct.unpack_from(fmt, args)
    names = w.CMD_ARGS.get(code, ())
    out = dict(zip(names, v))
    if code == w.CMD_BUZZ:
        out["pulses"] = [(extra[i], extra[i + 1]) for i in range(0, len(extra), 2)]
    return out


def parse_reply(reply: fr.Reply) -> dict[str, Any]:
    """The fields of an OK reply's payload (empty dict for an error reply); raises FrameError."""
    if not reply.ok:
        return {}
    p = reply.payload
    if reply.cmd == w.CMD_GET_STATUS:
        return vars(fr.parse_status_body(p))
    if reply.cmd == w.CMD_GET_INFO:
        if len(p) < 3:
            raise fr.FrameError("truncated", "get_info reply")
        proto, board, imu = struct.unpack_from(w.INFO_FMT, p)
        return {"protocol": proto, "board": board, "imu": imu, "firmware": p[3:].decode("ascii", "replace")}
    fmt = w.REPLY_PAYLOAD_FMT.get(reply.cmd)
    if fmt is None:
        raise fr.FrameError("bad_type", f"reply to unknown command {reply.cmd}")
    if len(p) != struct.calcsize(fmt):
        raise fr.FrameError("bad_length", f"{w.CMD_NAMES[reply.cmd]} reply payload of {len(p)} bytes")
    v = struct.unpack(fmt, p)
    if reply.cmd == w.CMD_TIME_SYNC:
        return {"t_us": fr.from_u48(*v)}
    return dict(zip(REPLY_FIELDS[reply.cmd], v))


def encode_reply_payload(code: int, **fields: Any) -> bytes:
    """OK reply payload from named fields (for fakes and vectors)."""
    if code == w.CMD_GET_STATUS:
        return fr.status_body(fr.Status(**fields))
    if code == w.CMD_GET_INFO:
        return struct.pack(w.INFO_FMT, fields["protocol"], fields["board"], fields["imu"]) + fields[
            "firmware"
        ].encode("ascii")
    if code == w.CMD_TIME_SYNC:
        return struct.pack("<3H", *fr.u48(fields["t_us"]))
    return struct.pack(w.REPLY_PAYLOAD_FMT[code], *(fields[k] for k in REPLY_FIELDS[code]))
