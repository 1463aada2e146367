# MicroPython script (run by test_fw_*.py under the unix port): drives firmware/app.py with the
# fake machine/bluetooth/IMU and prints one JSON line. argv: check name, work dir, seed.
import json
import os
import random
import sys

import bluetooth
import fake_imu
import frames
import wire
from mpy_common import rmtree

check, work, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
random.seed(seed)
fake_imu.CLOCK.manual(0)


class _Link:
    """A connected link that takes every frame (for driving Control through a Port)."""

    connected = True
    mtu = 247

    def __init__(self, trusted):
        self.trusted = trusted

    def send(self, f, n):
        return True


def make_app(tag, ble=False, log_kb=None):
    import board
    import fusion
    import imu as imu_pkg
    import log
    from app import App
    from config import Config
    from haptics import Haptics
    from machine import I2C
    from power import Battery

    root = work + "/" + tag
    rmtree(root + "/log")
    for f in ("/config.json", "/bonds.json"):
        try:
            os.remove(root + f)
        except OSError:
            pass
    try:
        os.mkdir(root)
    except OSError:
        pass
    b = board.REFERENCE
    dev = imu_pkg.open_imu(I2C(0), b)
    fus = fusion.Fusion(200, dev.ACC_G_PER_LSB, dev.GYRO_DPS_PER_LSB)
    cfg = Config(root + "/config.json")
    lg = log.Log(root + "/log", seg_bytes=2 * log.BLOCK, max_bytes=(log_kb or 1 << 20) * 1024)
    app = App(cfg, "ref", imu=dev, fusion=fus, log=lg, haptics=Haptics(b["pin_motor"]),
              battery=Battery(b["pin_vbat_adc"]))
    port = None
    if ble:
        bluetooth.BLE.sim_reset()
        from ble import BleLink

        link = BleLink("tiltguard-test", {"manufacturer": "tiltguard", "model": "tiltguard-ref",
                                           "serial": "0001", "firmware": "0.1.0"}, bond_path=root + "/bonds.json")
        port = app.add_port(link, "ble")
    return app, port


def cmd(code, args=b"", token=1):
    buf = bytearray(wire.MAX_FRAME)
    buf[3 : 3 + len(args)] = args
    n = frames.encode_command(buf, token, code, len(args))
    return bytes(buf[:n])


def advance(app, ms):
    """Let ms of IMU time pass and move the FIFO into the ring."""
    fake_imu.CLOCK.advance_us(ms * 1000)
    got = 0
    while True:
        n = app.sample_once()
        got += n
        if n < app.imu.max_samples:
            return got


def tick(app, port, now_ms, flush=True):
    app.service(port, now_ms, flush)


def hexes(items):
    return [bytes(x).hex() for x in items]


if check == "fuzz":
    import struct

    app, _ = make_app("fuzz")
    from app import Port

    port = Port(_Link(False), "x")
    app.cfg.set("bonded_only", 0)
    ctl = app.control
    errs = {}
    bad = []
    n_frames = 0
    codes = list(wire.CMD_ARGS_FMT)
    for i in range(4000):
        kind = i % 4
        if kind == 0:  # random bytes
            f = bytes(random.getrandbits(8) for _ in range(random.randint(0, 30)))
        elif kind == 1:  # valid frame, random command code and random args
            c = random.getrandbits(8) if random.random() < 0.3 else random.choice(codes)
            f = cmd(c, bytes(random.getrandbits(8) for _ in range(random.randint(0, 15))), random.getrandbits(8))
        elif kind == 2:  # valid frame, right-length random args for a known command
            c = random.choice(codes)
            if c in (wire.CMD_ERASE_LOGS,):
                continue
            ln = struct.calcsize(wire.CMD_ARGS_FMT[c])
            f = cmd(c, bytes(random.getrandbits(8) for _ in range(ln)), random.getrandbits(8))
        else:  # a valid frame with one byte flipped
            c = random.choice(codes)
            f = bytearray(cmd(c, b"\x00" * struct.calcsize(wire.CMD_ARGS_FMT[c])))
            k = random.randint(0, len(f) - 1)
            f[k] ^= 1 << random.randint(0, 7)
            f = bytes(f)
        port._cmd = f
        try:
            buf, n = ctl.handle(f, port, trusted=bool(random.getrandbits(1)))
        except Exception as e:  # the test fails on any of these
            bad.append(repr(e))
            continue
        n_frames += 1
        r = bytes(buf[:n])
        ok = frames.check(r, n) and r[0] == (wire.PROTOCOL_VERSION << 4 | wire.T_REPLY)
        tok_ok = len(f) < 2 or r[1] == f[1]
        if not (ok and tok_ok and r[3] < len(wire.ERR_NAMES)):
            bad.append(r.hex())
        name = wire.ERR_NAMES[r[3]] if r[3] < len(wire.ERR_NAMES) else "?"
        errs[name] = errs.get(name, 0) + 1
        app.download = None
        app.calibrating = 0
    print(json.dumps({"n": n_frames, "errs": errs, "bad": bad[:5], "internal": ctl.internal}))

elif check == "commands":
    import struct

    app, _ = make_app("cmds")
    from app import Port

    port = Port(_Link(True), "x")
    out = {}

    def do(name, code, args=b""):
        port._cmd = c = cmd(code, args, 9)
        buf, n = app.control.handle(c, port, True)
        out[name] = bytes(buf[:n]).hex()

    do("info", wire.CMD_GET_INFO)
    do("status", wire.CMD_GET_STATUS)
    do("set_rate_bad", wire.CMD_SET_RATE, struct.pack("<H", 150))
    do("set_rate_100", wire.CMD_SET_RATE, struct.pack("<H", 100))
    do("set_mode_full", wire.CMD_SET_MODE, b"\x01")
    do("set_mode_bad", wire.CMD_SET_MODE, b"\x07")
    do("set_cfg", wire.CMD_SET_CONFIG, struct.pack("<Bi", wire.CFG_CUE_THRESHOLD, 350))
    do("set_cfg_bad_key", wire.CMD_SET_CONFIG, struct.pack("<Bi", 99, 1))
    do("get_cfg", wire.CMD_GET_CONFIG, struct.pack("<B", wire.CFG_CUE_THRESHOLD))
    do("erase_bad_magic", wire.CMD_ERASE_LOGS, struct.pack("<I", 1234))
    do("erase", wire.CMD_ERASE_LOGS, struct.pack("<I", wire.ERASE_MAGIC))
    do("buzz_custom_no_pulses", wire.CMD_BUZZ, bytes((3, 0, 0)))
    do("buzz_alert", wire.CMD_BUZZ, bytes((0, 0, 0)))
    do("time_sync", wire.CMD_TIME_SYNC, struct.pack("<q", 1_700_000_000_000_000))
    do("bad_len", wire.CMD_SET_RATE, b"\x01")
    do("start", wire.CMD_START_STREAM)
    do("set_mode_while_streaming", wire.CMD_SET_MODE, b"\x00")
    do("stop", wire.CMD_STOP_STREAM)
    cfg_file = json.load(open(work + "/cmds/config.json"))
    out["cfg_file"] = cfg_file
    print(json.dumps(out))

elif check == "ble":
    import struct

    import log as logmod

    res = {}
    app, port = make_app("ble", ble=True)
    link = port.link
    ble = bluetooth.BLE()
    res["handles"] = [link.h_stream, link.h_control, link.h_status, link.h_battery]
    res["uuids"] = [str(ble._uuids[h]) for h in res["handles"]]
    res["adv"] = [bytes(ble.adv[1]).hex(), bytes(ble.adv[2]).hex()]
    res["dis"] = [bytes(ble.gatts_read(h)).decode() for h in sorted(ble._values) if str(ble._uuids.get(h)) in (
        "0x2a29", "0x2a24", "0x2a25", "0x2a26")]
    ble.tx_buffers = 3
    ble.tx_refill_per_s = 0  # buffers only come back when the test says so
    ble.sim_refill()

    # 1) a central with MTU 100: the clip asks for an exchange; frames fit MTU-3
    c1 = ble.sim_connect(mtu=100)
    tick(app, port, 0)
    res["mtu1"] = link.mtu
    c1.write(link.h_control, cmd(wire.CMD_START_STREAM, b"", 5))
    now = 0
    for step in range(40):  # 4 s at 100 ms steps
        advance(app, 100)
        now += 100
        tick(app, port, now)
        if step % 2:
            ble.sim_refill(2)  # not enough: ENOMEM happens and frames wait in the queue
    res["enomem"] = ble.enomem_count
    # MTU goes up mid-stream (central-initiated exchange)
    c1.exchange_mtu(247)
    for step in range(30):
        advance(app, 100)
        now += 100
        tick(app, port, now)
        ble.sim_refill()
    res["c1"] = hexes(c1.payloads)
    res["mtu_after"] = link.mtu
    # 2) the link drops mid-run: sampling goes on into the log
    acked = port.acked_seq
    c1.disconnect()
    for step in range(20):
        advance(app, 100)
        now += 100
        tick(app, port, now)
        app.pump_log()
    res["logging_while_away"] = app.logging()
    res["readvertising"] = ble.adv is not None
    # 3) reconnect (tiny MTU 23: segmented frames), restart the stream, backfill from the log
    ble.tx_buffers = 24  # 13 segments per frame at MTU 23
    ble.sim_refill()
    res["log_end_before_reconnect"] = app.log.end_seq
    c2 = ble.sim_connect(mtu=23)
    tick(app, port, now)
    c2.write(link.h_control, cmd(wire.CMD_START_STREAM, b"", 6))
    tick(app, port, now)
    c2.write(link.h_control, cmd(wire.CMD_DOWNLOAD_LOG, struct.pack("<II", acked, 0), 7))
    for step in range(80):
        advance(app, 50)
        now += 50
        tick(app, port, now)
        app.pump_log()
        ble.sim_refill()
    res["c2"] = hexes(c2.payloads)
    res["next_seq_end"] = app.next_seq
    res["mtu2"] = link.mtu
    res["acked"] = acked
    res["notify_max_c2"] = max(len(p) for p in c2.payloads)
    c2.disconnect()
    tick(app, port, now)
    # 4) bonded-only: an unbonded host may read the status but not start anything
    app.cfg.set("bonded_only", 1)
    c3 = ble.sim_connect(mtu=247)
    tick(app, port, now)
    c3.write(link.h_control, cmd(wire.CMD_GET_STATUS, b"", 10))
    c3.write(link.h_control, cmd(wire.CMD_BUZZ, bytes((2, 0, 0)), 11))
    tick(app, port, now)
    c3.pair()  # encrypt + bond
    c3.write(link.h_control, cmd(wire.CMD_BUZZ, bytes((2, 0, 0)), 12))
    tick(app, port, now)
    res["c3"] = hexes(c3.payloads)
    res["bonds"] = len(link.bonds.keys)
    res["irq_errors"] = ble.irq_errors
    print(json.dumps(res))

elif check == "ble_burst":
    # firmware/main.py's own tasks (sampler, BLE link, log, status) with a central that streams and
    # buzzes. Bursts are timed on time.ticks_ms(), the clock asyncio sleeps on, which no fake can
    # speed up: so the IMU runs at real speed too (200 Hz means 200 Hz of that clock), ~4 s in all.
    import asyncio
    import time

    import board
    import main

    app, port = make_app("burst", ble=True)
    fake_imu.CLOCK.realtime(1)
    link = port.link
    ble = bluetooth.BLE()
    envs = {"TILTGUARD_RUN_S": "3.6", "TILTGUARD_LINGER_S": "0.3"}
    main.env = lambda name, default=None: envs.get(name, default)
    t0 = time.ticks_ms()
    res = {}
    central = []

    def rel(t):
        return time.ticks_diff(t, t0)

    async def host():
        await asyncio.sleep_ms(300)
        c = ble.sim_connect(mtu=247)
        central.append(c)
        await asyncio.sleep_ms(100)  # the clip asks for MTU 247 at its next tick
        c.write(link.h_control, cmd(wire.CMD_START_STREAM, b"", 5))
        await asyncio.sleep_ms(1500)
        res["t_buzz"] = rel(time.ticks_ms())
        c.write(link.h_control, cmd(wire.CMD_BUZZ, bytes((wire.BUZZ_ACK, 0, 0)), 6))

    async def run():
        asyncio.create_task(host())
        await main.main(app, board.REFERENCE, True)

    asyncio.run(run())
    c = central[0]
    res["mtu"] = link.mtu
    res["notes"] = [[rel(t), d.hex()] for (h, d), t in zip(c.notifications, c.notify_ms) if h == link.h_stream]
    res["pwm"] = [[rel(t), d] for t, f, d in app.haptics.pwm.timeline]
    res["enomem"] = ble.enomem_count
    print(json.dumps(res))

elif check == "haptics":
    import asyncio

    import machine
    from haptics import PATTERNS, Haptics

    out = {}

    async def play(kind, name, **kw):
        h = Haptics(2, kind)
        t0 = __import__("time").ticks_ms()
        ok = h.buzz(name, **kw)
        await asyncio.sleep_ms(10)
        busy_early = h.busy
        while h.busy:
            await asyncio.sleep_ms(5)
        tl = [(__import__("time").ticks_diff(t, t0), f, d) for t, f, d in h.pwm.timeline[1:]]
        return {"ok": ok, "busy_early": busy_early, "timeline": tl, "freq": h.pwm.freq()}

    async def main():
        for name in ("alert", "recovered", "ack"):
            out[name] = await play("motor", name)
        out["buzzer_ack"] = await play("buzzer", "ack")
        out["custom"] = await play("motor", "custom", pulses=[(50, 30), (20, 10)])
        out["weak"] = await play("motor", "ack", intensity_pct=50)
        out["unknown"] = Haptics(2).buzz("nope")
        # a new pattern replaces one still playing, and the motor ends off
        h = Haptics(2)
        h.buzz("alert")
        await asyncio.sleep_ms(50)
        h.buzz("ack")
        await asyncio.sleep_ms(400)
        out["replaced_last_duty"] = h.pwm.duty_u16()
        out["patterns"] = {k: list(v) for k, v in PATTERNS.items()}

    asyncio.run(main())
    print(json.dumps(out))

elif check == "power":
    import machine
    import power

    curve = [(mv, power.percent(mv)) for mv in range(3000, 4301, 10)]
    bat = power.Battery(1, 2.0)
    readings = []
    for v in (4.2, 3.84, 3.3):
        machine.ADC.set_voltage(1, v / 2.0)
        bat.mv = 0
        readings.append((bat.read_mv(), bat.percent()))
    idle = power.Idle(idle_s=0)
    print(json.dumps({"curve": curve, "readings": readings, "table": list(power.CURVE_MV_PCT),
                      "never": idle.should_sleep(False)}))

elif check == "config":
    from config import Config

    path = work + "/cfg.json"
    for p in (path, path + ".tmp"):
        try:
            os.remove(p)
        except OSError:
            pass
    c = Config(path)
    defaults_rate = c["rate_hz"]
    c.set("rate_hz", 100)
    c.set("mount", {"mount_q": [1, 0, 0, 0], "gyro_bias_dps": [0, 0, 0]})
    # crash between the write and the rename: a half-written temp file is all that changed
    with open(path + ".tmp", "w") as f:
        f.write('{"rate_hz": 2')
    c2 = Config(path)
    tmp_gone = path + ".tmp" not in [work + "/" + n for n in os.listdir(work)]
    # crash after a complete temp write but before the rename: the old file still wins
    with open(path + ".tmp", "w") as f:
        f.write('{"rate_hz": 208}')
    c3 = Config(path)
    # a torn main file (cannot happen with rename, but never crash on it): defaults
    with open(path, "w") as f:
        f.write("{not json")
    c4 = Config(path)
    print(json.dumps({"default_rate": defaults_rate, "after_crash": c2["rate_hz"], "mount": c2["mount"],
                      "tmp_gone": tmp_gone, "after_crash2": c3["rate_hz"], "torn": c4["rate_hz"]}))

elif check in ("backfill_fast", "backfill_slow"):
    # a streaming host dies, the clip logs from the ring; the host comes back while the log writer
    # still holds unpacked samples and a pending record. fast: the link takes the whole download
    # before the log task runs again; slow: the download is consumed while the writer goes on
    # (blocks reach flash, segments roll over). Either way every sample must come back.
    import struct

    import log as logmod

    class _Host:
        """A link whose host can vanish and that takes at most ``per_tick`` frames per tick."""

        mtu = 247
        trusted = True

        def __init__(self):
            self.connected = True
            self.alive = True
            self.per_tick = 100
            self.left = 100
            self.got = []

        def send(self, f, n):
            if not self.alive or not self.left:
                return False
            self.left -= 1
            self.got.append(bytes(f[:n]))
            return True

        def poll(self):
            return None

    app, _ = make_app("backfill")
    app.calibrated = True
    link = _Host()
    port = app.add_port(link, "serial")
    app.handle_command(port, cmd(wire.CMD_START_STREAM, b"", 1))
    now = 0

    def step(ms, log=True):
        global now
        advance(app, ms)
        now += ms
        link.left = link.per_tick
        app.service(port, now)
        if log:
            app.pump_log()

    for _ in range(50):  # 5 s streamed
        step(100, log=False)
    seen = len(link.got)
    link.alive = False  # the host stops reading...
    for _ in range(20):
        step(100, log=False)
    link.connected = False  # ...and the link notices (serial: LOST_MS without a write)
    for _ in range(80):  # 8 s logged without a host
        step(100)
    writes_before = getattr(app.log, "writes", 0)
    advance(app, 37)  # sampled, not yet packed by the log writer (it runs every 50 ms)
    now += 37
    pending = [app.next_seq - app.log_seq, app.lenc.n, app.log.end_seq, app.next_seq]
    link.alive = link.connected = True  # a new host: start_stream, then backfill
    slow = check == "backfill_slow"
    link.per_tick = link.left = 1 if slow else 1000
    live = [bytes(x) for x in link.got[:seen]]
    link.got = live
    app.handle_command(port, cmd(wire.CMD_START_STREAM, b"", 2))
    last = max(struct.unpack_from("<I", f, 1)[0] + f[11] for f in live if f[0] & 0x0F == wire.T_DATA_COMPACT)
    app.handle_command(port, cmd(wire.CMD_DOWNLOAD_LOG, struct.pack("<II", last, 0), 3))
    for _ in range(5):  # link ticks come more often than log ticks (20 vs 50 ms)
        step(5, log=False)
    steps = 0
    while app.download is not None and steps < 3000:
        step(50 if slow else 20)  # slow: 1 record sent per 1.1 records logged
        steps += 1
    for _ in range(40):
        step(20)
    print(json.dumps({"frames": hexes(link.got), "pending": pending, "steps": steps,
                      "writes_during": getattr(app.log, "writes", 0) - writes_before, "segs": len(app.log._segs),
                      "download_left": app.download is not None}))

elif check == "alloc":
    # heap bytes allocated by the consumers of the sample ring (stream framing + serial send,
    # log records) in steady state; the IMU read + fusion belong to benchmarks/firmware_hotpath.py
    import gc

    import log as logmod
    from serial_link import SerialLink

    app, _ = make_app("alloc")
    app.log.seg_bytes = 256 * logmod.BLOCK  # no segment rollover (a file open) inside the window
    link = SerialLink(open("/dev/null", "rb"), open("/dev/null", "wb"))
    port = app.add_port(link, "serial")
    app.handle_command(port, cmd(wire.CMD_START_STREAM))
    app.start_logging()
    app.calibrated = True

    def step():
        fake_imu.CLOCK.advance_us(50_000)
        app.sample_once()

    for _ in range(40):
        step()
        app.service(port, 0)
        app.pump_log()
    import app as A

    for window in range(2):  # the first window pays one-off costs
        gc.collect()
        gc.disable()
        consumers = 0
        ring = 0
        parts = [0, 0, 0]
        seq0 = app.next_seq
        sent0 = link.sent
        for _ in range(200):
            fake_imu.CLOCK.advance_us(50_000)
            n = app.imu.read_fifo(app.raw)
            app.fusion.update(app.raw, n, app.ang)
            m0 = gc.mem_alloc()
            slot = app.next_seq & (A.RING - 1)
            A._to_ring(app.raw, app.ang, n, app.ring, slot, app.amul, app.gmul, 1)
            A._times(app.tst, app.thi, app.tlo, slot, n)
            app.next_seq += n
            m1 = gc.mem_alloc()
            app.pump_stream(0)
            ma = gc.mem_alloc()
            port.flush()
            mb = gc.mem_alloc()
            app.pump_log()
            m2 = gc.mem_alloc()
            ring += m1 - m0
            consumers += m2 - m1
            parts[0] += ma - m1
            parts[1] += mb - ma
            parts[2] += m2 - mb
    gc.enable()
    print(json.dumps({"samples": app.next_seq - seq0, "ring_bytes": ring, "consumer_bytes": consumers,
                      "frames_sent": link.sent - sent0, "records": app.log.records_written,
                      "blocks": app.log.used_bytes() // logmod.BLOCK, "parts": parts}))

elif check == "cue":
    from array import array

    import cue as cuemod
    from cue import Cue

    RING = 1024
    events = []
    c = Cue(300, lambda e: events.append(("alert", c.strides, e)), lambda e: events.append(("recovered", c.strides, e)))
    ring = array("h", bytes(2 * RING * 9))
    rate = 200
    stride_s = 0.72
    slot = 0
    t = 0
    drift_start_s, drift_end_s = 200, 500
    total_s = 800

    def tilt_at(ts):
        base = 800 + int(250 * __import__("math").sin(4 * 3.14159 * ts / stride_s))  # 2 tilt cycles/stride
        if drift_start_s < ts < drift_end_s:
            base += min(600, int((ts - drift_start_s) * 6))  # +6 deg over 100 s, then a plateau
        return base

    step_every = int(rate * stride_s / 2)
    n_total = int(total_s * rate)
    while t < n_total:
        k = min(32, n_total - t)
        for i in range(k):
            o = ((slot + i) & (RING - 1)) * 9
            ts = (t + i) / rate
            ring[o] = tilt_at(ts)
            ring[o + 3] = 6000 if (t + i) % step_every == 0 else 1800
        c.feed(ring, slot, k)
        slot += k
        t += k
    # uncalibrated angles are ignored
    c2 = Cue(300)
    for i in range(len(ring) // 9):
        ring[i * 9] = -32768
    c2.feed(ring, 0, 1024)
    print(json.dumps({"events": events, "strides": c.strides, "baseline": c.baseline,
                      "stride_s": stride_s, "warm": cuemod.WARM, "base": cuemod.BASE, "c2_strides": c2.strides}))

elif check == "ui":
    import asyncio
    import time

    import machine
    import ui

    calls = []
    btn = ui.Button(3, lambda: calls.append(("short", time.ticks_ms())), lambda: calls.append(("long", time.ticks_ms())))
    led = ui.Led(21, active_low=True)
    pin = btn.pin

    async def press(ms):
        pin.drive(0)
        await asyncio.sleep_ms(ms)
        pin.drive(1)
        await asyncio.sleep_ms(100)

    async def main():
        t1 = asyncio.create_task(btn.run())
        t2 = asyncio.create_task(led.run())
        await asyncio.sleep_ms(50)
        await press(200)  # short
        await press(10)  # a bounce: ignored
        await press(ui.LONG_MS + 300)  # long: fires once, while held
        led.show("streaming")
        await asyncio.sleep_ms(1200)
        on_stream = [v for _, v in led.pin.history[-3:]]
        led.show("idle")
        await asyncio.sleep_ms(3100)
        t1.cancel()
        t2.cancel()
        return on_stream

    on_stream = asyncio.run(main())
    print(json.dumps({"calls": [c[0] for c in calls], "presses": btn.presses, "on_stream": on_stream,
                      "idle_writes": len(led.pin.history)}))
