"""Control commands (firmware/control.py + app.py): fuzzed and checked one by one."""

import struct

from tiltguard.protocol import frames as fr
from tiltguard.protocol import wire

from tests.firmware._mpyapp import run_check


def test_fuzzed_commands_never_raise_and_always_reply(tmp_path):
    r = run_check("fuzz", tmp_path, seed=3)
    assert r["bad"] == [] and r["internal"] == 0
    assert r["n"] > 3500
    errs = r["errs"]
    for name in ("bad_frame", "bad_length", "unknown_command", "bad_argument", "ok"):
        assert errs.get(name, 0) > 0, errs
    assert sum(errs.values()) == r["n"]


def _reply(h):
    f = fr.decode_frame(bytes.fromhex(h))
    assert isinstance(f, fr.Reply) and f.token == 9
    return f


def test_commands_reply_with_their_payloads_and_errors(tmp_path):
    r = run_check("commands", tmp_path)
    info = _reply(r["info"])
    assert info.err == 0 and info.payload[:3] == bytes((wire.PROTOCOL_VERSION, 0, 0))
    assert info.payload[3:].decode() == "0.1.0"
    st = _reply(r["status"])
    assert st.err == 0 and len(st.payload) == wire.STATUS_SIZE
    assert fr.parse_status_body(st.payload).rate_hz == 200
    assert _reply(r["set_rate_bad"]).err == wire.ERR_BAD_ARGUMENT
    ok = _reply(r["set_rate_100"])
    assert ok.err == 0 and struct.unpack("<H", ok.payload) == (100,)
    assert _reply(r["set_mode_full"]).payload == b"\x01"
    assert _reply(r["set_mode_bad"]).err == wire.ERR_BAD_ARGUMENT
    assert struct.unpack("<Bi", _reply(r["set_cfg"]).payload) == (wire.CFG_CUE_THRESHOLD, 350)
    assert struct.unpack("<Bi", _reply(r["get_cfg"]).payload) == (wire.CFG_CUE_THRESHOLD, 350)
    assert _reply(r["set_cfg_bad_key"]).err == wire.ERR_BAD_ARGUMENT
    assert _reply(r["erase_bad_magic"]).err == wire.ERR_BAD_ARGUMENT
    assert _reply(r["erase"]).err == 0
    assert _reply(r["buzz_custom_no_pulses"]).err == wire.ERR_BAD_ARGUMENT
    assert _reply(r["buzz_alert"]).err == 0
    assert _reply(r["bad_len"]).err == wire.ERR_BAD_LENGTH
    ts = _reply(r["time_sync"])
    assert ts.err == 0 and len(ts.payload) == 6
    start = _reply(r["start"])
    next_seq, rate, mode = struct.unpack("<IHB", start.payload)
    assert (rate, mode) == (100, 1)
    assert _reply(r["set_mode_while_streaming"]).err == wire.ERR_BUSY
    assert _reply(r["stop"]).err == 0
    # settings went to the config file (written atomically)
    assert r["cfg_file"]["rate_hz"] == 100 and r["cfg_file"]["mode"] == 1 and r["cfg_file"]["cue_threshold"] == 350
