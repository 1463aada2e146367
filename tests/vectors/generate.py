"""Write the golden vectors tests/vectors/*.json from the host encoder.

The checked-in JSON is the contract: host tests decode it, the firmware encoder (MicroPython unix
port) must reproduce every frame byte for byte. Re-run only when the protocol changes on purpose:
    python tests/vectors/generate.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tiltguard.formats import sessionlog as sl
from tiltguard.protocol import ble
from tiltguard.protocol import commands as c
from tiltguard.protocol import frames as fr
from tiltguard.protocol import serial as ser
from tiltguard.protocol import wire as w

HERE = Path(__file__).resolve().parent


def _values(rng: np.random.Generator, n: int, mode: int) -> np.ndarray:
    """Plausible running samples in wire units, plus a few edge values."""
    k = 9 if mode == w.MODE_FULL else 6
    v = np.zeros((n, k), np.int64)
    v[:, 0] = rng.integers(-1500, 1500, n)  # tilt, 0.01 deg
    v[:, 1] = rng.integers(-800, 800, n)
    v[:, 2] = rng.integers(-1200, 1200, n)
    v[:, 3] = rng.integers(-2048 * 4, 2048 * 6, n)  # ax up to 6 g
    v[:, 4:6] = rng.integers(-4096, 4096, (n, 2))
    if k == 9:
        v[:, 6:9] = rng.integers(-16 * 600, 16 * 600, (n, 3))
    return v


def physical(values: np.ndarray, mode: int) -> dict:
    ang = values[:, :3].astype(float) * w.ANGLE_LSB_DEG
    ang[values[:, :3] == w.ANGLE_MISSING] = np.nan
    out = {
        "angles_deg": [[None if np.isnan(x) else round(float(x), 6) for x in row] for row in ang],
        "acc_g": np.round(values[:, 3:6] * w.ACC_LSB_G, 9).tolist(),
    }
    if mode == w.MODE_FULL:
        out["gyro_dps"] = np.round(values[:, 6:9] * w.GYRO_LSB_DPS, 9).tolist()
    return out


def data_vectors() -> list[dict]:
    rng = np.random.default_rng(20261122)
    cases = [
        # name, mode, mtu, log, seq, t_us, rate, n (None = what the MTU allows)
        ("compact_mtu247", w.MODE_COMPACT, 247, False, 0, 1_250_000, 200, None),
        ("compact_mtu185", w.MODE_COMPACT, 185, False, 19, 1_345_000, 200, None),
        ("compact_mtu100_208hz", w.MODE_COMPACT, 100, False, 123_456, 600_000_123, 208, None),
        ("compact_mtu23_segmented", w.MODE_COMPACT, 23, False, 1000, 5_000_000, 200, None),
        ("compact_partial_1", w.MODE_COMPACT, 247, False, 77, 9_000_000, 100, 1),
        ("compact_t48bit_seqwrap", w.MODE_COMPACT, 247, False, 0xFFFFFFF0, 18_000_000_000_000, 200, None),
        ("full_mtu247", w.MODE_FULL, 247, False, 500, 2_500_000, 200, None),
        ("full_mtu100", w.MODE_FULL, 100, False, 512, 2_560_000, 200, None),
        ("full_mtu23_segmented", w.MODE_FULL, 23, False, 9000, 45_000_000, 200, None),
        ("log_compact", w.MODE_COMPACT, 247, True, 4000, 20_000_000, 200, None),
        ("log_full_208hz", w.MODE_FULL, 247, True, 4200, 20_190_000, 208, 5),
    ]
    out = []
    for name, mode, mtu, log, seq, t_us, rate, n in cases:
        n = n or w.samples_per_frame(mtu, mode)
        v = _values(rng, n, mode)
        if name == "compact_mtu247":  # edge values: saturation and the missing-angle marker
            v[0, :6] = [32767, -32767, w.ANGLE_MISSING, 32767, -32768, 0]
            v[1, :3] = w.ANGLE_MISSING
        period = w.period_q(rate)
        frame = fr.encode_data(seq, t_us, period, v, mode, log)
        out.append(
            {
                "name": name,
                "mode": w.MODE_NAMES[mode],
                "mtu": mtu,
                "log": log,
                "type": frame[0] & 0x0F,
                "seq": seq,
                "t_us": t_us,
                "rate_hz": rate,
                "period_q": period,
                "n": n,
                "values": v.tolist(),
                "physical": physical(v, mode),
                "hex": frame.hex(),
                "notifications": [s.hex() for s in ble.segment(frame, mtu)],
                "serial_hex": ser.frame_serial(frame).hex(),
            }
        )
    return out


def control_vectors() -> dict:
    cmds = [
        ("get_status", {}),
        ("start_stream", {}),
        ("stop_stream", {}),
        ("set_rate", {"rate_hz": 208}),
        ("set_mode", {"mode": 1}),
        ("calibrate", {"still_s": 3}),
        ("buzz", {"pattern": 0, "intensity_pct": 80, "repeat": 2}),
        ("buzz", {"pattern": 3, "intensity_pct": 100, "repeat": 0, "pulses": [[20, 10], [20, 10], [60, 0]]}),
        ("time_sync", {"host_unix_us": 1_795_334_400_123_456}),
        ("list_logs", {}),
        ("download_log", {"from_seq": 123_456, "count": 0}),
        ("erase_logs", {"magic": w.ERASE_MAGIC}),
        ("set_config", {"key": w.CFG_CUE_THRESHOLD, "value": 300}),
        ("set_config", {"key": w.CFG_LINK, "value": w.LINK_SERIAL}),
        ("get_config", {"key": w.CFG_ALWAYS_LOG}),
        ("abort_download", {}),
        ("get_info", {}),
    ]
    commands = []
    for token, (name, args) in enumerate(cmds, start=1):
        pulses = [tuple(p) for p in args.get("pulses", [])]
        kw = dict(args, pulses=pulses) if pulses else args
        frame = c.encode(name, token, **kw)
        commands.append(
            {"name": name, "cmd": c.CODES[name], "token": token, "args": args, "args_hex": frame[3:-2].hex(), "hex": frame.hex()}
        )

    status = fr.Status(
        state=w.ST_STREAMING | w.ST_CALIBRATED | w.ST_BONDED,
        battery_pct=87,
        battery_mv=4012,
        log_fill_pct=12,
        mode=w.MODE_COMPACT,
        rate_hz=200,
        next_seq=720_019,
        dropped=3,
        log_lost=0,
        log_first_seq=0,
        t_us=3_600_123_456,
    )
    ok_payloads = [
        (w.CMD_GET_STATUS, vars(status)),
        (w.CMD_START_STREAM, {"next_seq": 720_000, "rate_hz": 200, "mode": 0}),
        (w.CMD_STOP_STREAM, {"next_seq": 720_019}),
        (w.CMD_SET_RATE, {"rate_hz": 208}),
        (w.CMD_SET_MODE, {"mode": 1}),
        (w.CMD_CALIBRATE, {}),
        (w.CMD_BUZZ, {}),
        (w.CMD_TIME_SYNC, {"t_us": 5_000_000_007}),
        (
            w.CMD_LIST_LOGS,
            {"first_seq": 100, "end_seq": 720_019, "lost": 100, "segments": 37, "fill_pct": 64, "mode": 0, "rate_hz": 200},
        ),
        (w.CMD_DOWNLOAD_LOG, {"first_seq": 123_456, "count": 596_563}),
        (w.CMD_ERASE_LOGS, {}),
        (w.CMD_SET_CONFIG, {"key": 3, "value": 300}),
        (w.CMD_GET_CONFIG, {"key": 2, "value": 1}),
        (w.CMD_ABORT_DOWNLOAD, {"sent": 1900}),
        (w.CMD_GET_INFO, {"protocol": 1, "board": 1, "imu": 2, "firmware": "0.1.0"}),
    ]
    replies = []
    for token, (code, fields) in enumerate(ok_payloads, start=40):
        payload = c.encode_reply_payload(code, **fields)
        frame = fr.encode_reply(token, code, w.ERR_OK, payload)
        replies.append(
            {"cmd": code, "token": token, "err": 0, "fields": fields, "payload_hex": payload.hex(), "hex": frame.hex()}
        )
    for token, (code, err) in enumerate(
        [
            (0x42, w.ERR_UNKNOWN_COMMAND),
            (w.CMD_SET_RATE, w.ERR_BAD_ARGUMENT),
            (w.CMD_SET_MODE, w.ERR_BAD_LENGTH),
            (w.CMD_CALIBRATE, w.ERR_BUSY),
            (w.CMD_ERASE_LOGS, w.ERR_NOT_BONDED),
            (w.CMD_DOWNLOAD_LOG, w.ERR_STORAGE),
            (0, w.ERR_BAD_FRAME),
            (w.CMD_START_STREAM, w.ERR_NOT_READY),
            (w.CMD_GET_STATUS, w.ERR_INTERNAL),
        ],
        start=90,
    ):
        frame = fr.encode_reply(token, code, err)
        replies.append({"cmd": code, "token": token, "err": err, "fields": {}, "payload_hex": "", "hex": frame.hex()})

    statuses = []
    for s in (status, fr.Status(0, 255, 0, 0, 1, 100, 0, 0, 0, 0, 0)):
        frame = fr.encode_status(s)
        statuses.append({"fields": vars(s), "hex": frame.hex(), "notifications_mtu23": [x.hex() for x in ble.segment(frame, 23)]})
    events = []
    for e in (
        fr.Event(w.EV_BUTTON, 1000, 5_000_000, 2),
        fr.Event(w.EV_CALIBRATION_DONE, 600, 3_000_000, w.ERR_OK),
        fr.Event(w.EV_CUE, 720_000, 3_600_000_000, 312),
        fr.Event(w.EV_LOG_ROTATED, 900_000, 4_500_000_000, -1 + 4096),
        fr.Event(w.EV_DOWNLOAD_DONE, 720_019, 3_601_000_000, 596_563),
        fr.Event(w.EV_BOOT, 0, 0, -5),
    ):
        events.append({"fields": vars(e), "hex": fr.encode_event(e).hex()})
    return {"commands": commands, "replies": replies, "status": statuses, "events": events}


def corrupt_vectors(good: bytes, status: bytes) -> list[dict]:
    bad_crc = bytearray(good)
    bad_crc[-1] ^= 0x01
    flipped = bytearray(good)
    flipped[40] ^= 0x10
    bad_version = bytearray(good)
    bad_version[0] = 0x21
    bad_version = fr.seal(bad_version[:-2])
    bad_type = fr.seal(bytes([0x1E]) + good[1:-2])
    extra = fr.seal(good[:-2] + b"\x00")
    return [
        {"name": "bad_crc", "hex": bytes(bad_crc).hex(), "reason": "bad_crc"},
        {"name": "payload_bit_flip", "hex": bytes(flipped).hex(), "reason": "bad_crc"},
        {"name": "truncated_data", "hex": good[:-7].hex(), "reason": "truncated"},
        {"name": "truncated_header", "hex": good[:9].hex(), "reason": "truncated"},
        {"name": "truncated_status", "hex": status[:-1].hex(), "reason": "truncated"},
        {"name": "empty", "hex": "", "reason": "truncated"},
        {"name": "bad_version", "hex": bad_version.hex(), "reason": "bad_version"},
        {"name": "bad_type", "hex": bad_type.hex(), "reason": "bad_type"},
        {"name": "extra_byte", "hex": extra.hex(), "reason": "bad_length"},
    ]


def serial_vectors(frames: list[bytes]) -> list[dict]:
    f0, f1, f2 = frames[:3]
    s = ser.frame_serial
    corrupted = bytearray(s(f1))
    corrupted[20] ^= 0xFF if corrupted[20] not in (0x00, 0xFF) else 0x01
    cases = [
        ("clean", s(f0) + s(f1) + s(f2), [f0, f1, f2]),
        ("text_between_frames", b"MicroPython v1.24 boot\r\n>>> " + s(f0) + b"\r\nprint\r\n" + s(f1), [f0, f1]),
        ("garbage_inside_frame", s(f0) + s(f1)[:30] + b"\x13\x37garbage" + s(f1)[30:] + s(f2), [f0, f2]),
        ("zero_inside_frame", s(f0) + s(f1)[:50] + b"\x00" + s(f1)[50:] + s(f2), [f0, f2]),
        ("bit_flip", s(f0) + bytes(corrupted) + s(f2), [f0, f2]),
        ("cut_start", s(f0)[17:] + s(f1), [f1]),
        ("cut_end_then_next", s(f0)[:-40] + s(f1), [f1]),
        ("long_garbage", bytes(range(1, 256)) * 3 + s(f2), [f2]),
        ("only_delimiters", b"\x00" * 10 + s(f0) + b"\x00" * 5, [f0]),
    ]
    return [{"name": n, "hex": b.hex(), "frames": [f.hex() for f in fs]} for n, b, fs in cases]


def sessionlog_vector(frames: list[bytes]) -> dict:
    start = 1_795_334_400_000
    recs = [(f, 100 * i + 7) for i, f in enumerate(frames)]
    body = sl._header(start) + b"".join(sl.encode_record(f, ms) for f, ms in recs)
    return {
        "start_unix_ms": start,
        "records": [{"host_ms": ms, "frame_hex": f.hex()} for f, ms in recs],
        "hex": body.hex(),
        "header_hex": sl._header(start).hex(),
    }


def main() -> None:
    data = data_vectors()
    control = control_vectors()
    frames = [bytes.fromhex(d["hex"]) for d in data]
    status = bytes.fromhex(control["status"][0]["hex"])
    (HERE / "data_frames.json").write_text(json.dumps({"protocol": w.PROTOCOL_VERSION, "vectors": data}, indent=1) + "\n")
    (HERE / "control.json").write_text(json.dumps({"protocol": w.PROTOCOL_VERSION, **control}, indent=1) + "\n")
    (HERE / "corrupt.json").write_text(
        json.dumps({"protocol": w.PROTOCOL_VERSION, "vectors": corrupt_vectors(frames[0], status)}, indent=1) + "\n"
    )
    (HERE / "serial.json").write_text(json.dumps({"protocol": w.PROTOCOL_VERSION, "vectors": serial_vectors(frames)}, indent=1) + "\n")
    mixed = frames[:3] + [bytes.fromhex(control["replies"][1]["hex"]), status, bytes.fromhex(control["events"][0]["hex"])]
    (HERE / "sessionlog.json").write_text(json.dumps({"protocol": w.PROTOCOL_VERSION, **sessionlog_vector(mixed)}, indent=1) + "\n")
    print("wrote", ", ".join(p.name for p in sorted(HERE.glob("*.json"))))


if __name__ == "__main__":
    main()
