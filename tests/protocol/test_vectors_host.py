"""Golden vectors decode on the host exactly as the JSON says (and the host encoder agrees)."""

import struct

import numpy as np
import pytest

from tiltguard.protocol import ble, commands, frames as fr, serial as ser, wire as w
from tiltguard.protocol.stream import StreamDecoder

from .conftest import load


def test_crc_check_value():
    assert fr.crc16(b"123456789") == 0x29B1


def test_header_layout_by_hand(data_vectors):
    """Build a frame from PROTOCOL.md's offset table with plain int.to_bytes, not the struct formats."""
    v = next(x for x in data_vectors if x["name"] == "compact_t48bit_seqwrap")
    body = bytes([0x11]) + v["seq"].to_bytes(4, "little") + v["t_us"].to_bytes(6, "little")
    body += bytes([v["n"]]) + v["period_q"].to_bytes(2, "little")
    for row in v["values"]:
        body += b"".join(int(x).to_bytes(2, "little", signed=True) for x in row)
    assert len(body) == 14 + 12 * v["n"]
    frame = body + fr.crc16(body).to_bytes(2, "little")
    assert frame.hex() == v["hex"]


def test_data_vectors_decode(data_vectors):
    assert len(data_vectors) >= 10
    for v in data_vectors:
        raw = bytes.fromhex(v["hex"])
        f = fr.decode_frame(raw)
        assert isinstance(f, fr.DataFrame), v["name"]
        assert (f.type, f.seq, f.t_us, f.period_q, f.n) == (v["type"], v["seq"], v["t_us"], v["period_q"], v["n"])
        assert f.values.tolist() == v["values"]
        assert f.is_log == v["log"] and w.MODE_NAMES[f.mode] == v["mode"]
        assert len(raw) == w.DATA_OVERHEAD + v["n"] * w.sample_size(f.mode) <= v["mtu"] - 3 or len(v["notifications"]) > 1
        # physical values through the vectorised path
        a = fr.to_arrays(fr.decode_data_frames([raw]))
        phys = v["physical"]
        exp_ang = np.array([[np.nan if x is None else x for x in r] for r in phys["angles_deg"]], float)
        np.testing.assert_allclose(a["angles_deg"], exp_ang, atol=1e-9)
        np.testing.assert_allclose(a["acc_g"], phys["acc_g"], atol=1e-9)
        if v["mode"] == "full":
            np.testing.assert_allclose(a["gyro_dps"], phys["gyro_dps"], atol=1e-9)
        else:
            assert np.isnan(a["gyro_dps"]).all()
        np.testing.assert_allclose(np.diff(a["t_s"]), 1.0 / v["rate_hz"], rtol=2e-5)
        # the host encoder produces the same bytes
        assert fr.encode_data(v["seq"], v["t_us"], v["period_q"], v["values"], f.mode, v["log"]).hex() == v["hex"]


def test_notifications_reassemble(data_vectors):
    for v in data_vectors:
        notes = [bytes.fromhex(h) for h in v["notifications"]]
        assert all(len(n) <= v["mtu"] - 3 for n in notes)
        assert [x.hex() for x in ble.segment(bytes.fromhex(v["hex"]), v["mtu"])] == v["notifications"]
        r = ble.Reassembler()
        out = [r.feed(n) for n in notes]
        assert out[-1].hex() == v["hex"] and out[:-1] == [None] * (len(notes) - 1)
        assert r.segments_lost == 0
    segmented = [v for v in data_vectors if len(v["notifications"]) > 1]
    assert segmented, "vectors must exercise segmentation"


def test_reassembler_drops_frame_with_missing_segment(data_vectors):
    v = next(x for x in data_vectors if x["name"] == "compact_mtu23_segmented")
    notes = [bytes.fromhex(h) for h in v["notifications"]]
    r = ble.Reassembler()
    got = [r.feed(n) for n in notes[:5] + notes[6:]]  # segment 5 lost
    assert all(g is None for g in got) and r.segments_lost == 1
    assert [r.feed(n) for n in notes][-1] == bytes.fromhex(v["hex"])  # next frame fine


def test_vectorised_decode_matches_single(data_vectors):
    raws = [bytes.fromhex(v["hex"]) for v in data_vectors]
    b = fr.decode_data_frames(raws)
    assert len(b) == sum(v["n"] for v in data_vectors)
    assert sum(b.rejects.values()) == 0
    single = np.concatenate([np.pad(fr.decode_frame(r).values, ((0, 0), (0, 9 - fr.decode_frame(r).values.shape[1]))) for r in raws])
    np.testing.assert_array_equal(b.values, single)
    exp_seq = np.concatenate([np.arange(v["n"]) + v["seq"] for v in data_vectors])
    np.testing.assert_array_equal(b.seq, exp_seq)
    assert b.is_log.sum() == sum(v["n"] for v in data_vectors if v["log"])


def test_command_vectors(control_vectors):
    cmds = control_vectors["commands"]
    assert {c["cmd"] for c in cmds} == set(w.CMD_NAMES)  # every command has a vector
    for c in cmds:
        raw = bytes.fromhex(c["hex"])
        assert len(raw) <= w.MAX_COMMAND
        f = fr.decode_frame(raw)
        assert isinstance(f, fr.Command) and (f.token, f.cmd, f.name) == (c["token"], c["cmd"], c["name"])
        args = commands.decode_args(f)
        exp = dict(c["args"])
        if "pulses" in exp:
            exp["pulses"] = [tuple(p) for p in exp["pulses"]]
        elif c["name"] == "buzz":
            exp["pulses"] = []
        assert args == exp
        kw = {k: (v if k != "pulses" else [tuple(p) for p in v]) for k, v in c["args"].items()}
        assert commands.encode(c["name"], c["token"], **kw).hex() == c["hex"]


def test_reply_vectors(control_vectors):
    replies = control_vectors["replies"]
    assert {r["cmd"] for r in replies if r["err"] == 0} == set(w.CMD_NAMES)
    assert {r["err"] for r in replies} == set(range(len(w.ERR_NAMES)))
    for r in replies:
        f = fr.decode_frame(bytes.fromhex(r["hex"]))
        assert isinstance(f, fr.Reply) and (f.token, f.cmd, f.err) == (r["token"], r["cmd"], r["err"])
        assert f.payload.hex() == r["payload_hex"]
        assert commands.parse_reply(f) == r["fields"]


def test_status_and_event_vectors(control_vectors):
    for s in control_vectors["status"]:
        raw = bytes.fromhex(s["hex"])
        assert len(raw) == 33
        f = fr.decode_frame(raw)
        assert isinstance(f, fr.Status) and vars(f) == s["fields"]
        r = ble.Reassembler()
        got = [r.feed(bytes.fromhex(n)) for n in s["notifications_mtu23"]]
        assert len(got) == 2 and got[-1] == raw
    for e in control_vectors["events"]:
        f = fr.decode_frame(bytes.fromhex(e["hex"]))
        assert isinstance(f, fr.Event) and vars(f) == e["fields"]
        assert fr.encode_frame(f).hex() == e["hex"]


def test_corrupt_vectors_rejected_with_reason():
    vec = load("corrupt.json")["vectors"]
    assert {v["reason"] for v in vec} == set(fr.REJECT_REASONS)
    dec = StreamDecoder()
    for v in vec:
        raw = bytes.fromhex(v["hex"])
        with pytest.raises(fr.FrameError) as exc:
            fr.decode_frame(raw)
        assert exc.value.reason == v["reason"], v["name"]
        assert dec.feed(raw) is None
    assert dec.counters.frames_ok == 0 and dec.counters.rejected == len(vec)
    for reason in fr.REJECT_REASONS:
        assert dec.counters.rejects[reason] == sum(v["reason"] == reason for v in vec)
    # the vectorised decoder refuses the data-shaped ones too, and keeps nothing from them
    b = fr.decode_data_frames([bytes.fromhex(v["hex"]) for v in vec])
    assert len(b) == 0 and sum(b.rejects.values()) >= 4


@pytest.mark.parametrize("chunk", [None, 1, 7, 64])
def test_serial_vectors(chunk):
    for v in load("serial.json")["vectors"]:
        stream = bytes.fromhex(v["hex"])
        d = ser.SerialDecoder()
        if chunk is None:
            got = d.feed(stream)
        else:
            got = [x for i in range(0, len(stream), chunk) for x in d.feed(stream[i : i + chunk])]
        assert [g[0].hex() for g in got] == v["frames"], v["name"]
        st = d.stats()
        rejects = sum(val for k, val in st.items() if k.startswith("rejected_"))
        if v["name"] in ("clean", "only_delimiters"):
            assert rejects == 0
        else:
            assert rejects >= 1, v["name"]


def test_serial_hex_of_data_vectors(data_vectors):
    for v in data_vectors:
        raw = bytes.fromhex(v["hex"])
        s = bytes.fromhex(v["serial_hex"])
        assert s[0] == 0 and s[-1] == 0 and 0 not in s[1:-1]
        assert len(s) == len(raw) + 3  # one COBS byte + two delimiters
        assert ser.cobs_decode(s[1:-1]) == raw


def test_sessionlog_vector(tmp_path):
    from tiltguard.formats import sessionlog as sl

    v = load("sessionlog.json")
    p = tmp_path / "stream.tgl"
    p.write_bytes(bytes.fromhex(v["hex"]))
    log = sl.read_sessionlog(p)
    assert log.start_unix_ms == v["start_unix_ms"]
    assert [f.hex() for f in log.frames] == [r["frame_hex"] for r in v["records"]]
    assert log.host_ms.tolist() == [r["host_ms"] for r in v["records"]]
    assert log.corrupt == 0 and log.torn_tail_bytes == 0
    q = tmp_path / "again.tgl"
    with sl.SessionLogWriter(q, start_unix_ms=v["start_unix_ms"]) as wr:
        for r in v["records"]:
            wr.append(bytes.fromhex(r["frame_hex"]), host_unix_ms=v["start_unix_ms"] + r["host_ms"])
    assert q.read_bytes().hex() == v["hex"]
    hdr = bytes.fromhex(v["header_hex"])
    assert hdr[:8] == b"\x89TGL\r\n\x1a\n" and struct.unpack_from("<HHq", hdr, 8) == (1, 24, v["start_unix_ms"])


def test_checked_in_vectors_match_the_generator():
    """The JSON is the contract; this catches an encoder change that was not meant to change it."""
    import importlib.util
    import json

    from .conftest import VECTORS

    spec = importlib.util.spec_from_file_location("vector_generator", VECTORS / "generate.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert json.loads(json.dumps(gen.data_vectors())) == load("data_frames.json")["vectors"]
    control = json.loads(json.dumps(gen.control_vectors()))
    assert control == {k: v for k, v in load("control.json").items() if k != "protocol"}
