"""Boot: build the board from board.py + config.json, then run the asyncio tasks (nothing else).

On the clip this runs from flash. Under the MicroPython unix port (tests, end-to-end runs) the
same file runs with fakes first on MICROPYPATH and is steered by environment variables (see
README.md): TILTGUARD_BOARD, TILTGUARD_SERIAL, TILTGUARD_LINK, TILTGUARD_LOG_DIR,
TILTGUARD_CONFIG, TILTGUARD_RECORD, TILTGUARD_RUN_S, TILTGUARD_LOG_MAX_KB, TILTGUARD_STREAM
(and fake_imu's TILTGUARD_FAKE_RAW / TILTGUARD_FAKE_SPEED).
"""

import asyncio
import os
import sys
import time

import board
import wire
from app import App
from config import Config

TICK_MS = 20  # command polling and frame building
# data notifications leave in bursts (PROTOCOL.md 1.1): each host wake-up costs host CPU, so two
# compact frames share one; commands are still taken every tick
BLE_FLUSH_MS = wire.NOTIFY_BURST_MS
LOG_MS = 50
STATUS_MS = 5000
SAMPLE_POLL_MS = 20  # the FIFO watermark is 32 samples = 160 ms at 200 Hz: 20 ms polls keep it shallow


def env(name, default=None):
    try:
        v = os.getenv(name)
    except AttributeError:
        v = None
    return v if v else default


def open_imu(b):
    """(imu, fusion) or (None, None) when the chip does not answer."""
    try:
        from machine import I2C, Pin

        import fusion
        import imu as imu_pkg

        i2c = I2C(b["i2c_id"], scl=Pin(b["pin_scl"]), sda=Pin(b["pin_sda"]), freq=b["i2c_freq"])
        dev = imu_pkg.open_imu(i2c, b)
        return dev, fusion.Fusion(200, dev.ACC_G_PER_LSB, dev.GYRO_DPS_PER_LSB)
    except (OSError, ValueError, ImportError) as e:
        sys.print_exception(e) if hasattr(sys, "print_exception") else None
        return None, None


def build():
    sim = env("TILTGUARD_SERIAL") is not None or env("TILTGUARD_LOG_DIR") is not None
    cfg = Config(env("TILTGUARD_CONFIG", "/config.json"))
    bname = env("TILTGUARD_BOARD", cfg.get("board", board.DEFAULT))
    b = board.get(bname)
    if b.get("pin_hold") is not None:  # M5StickC Plus2: hold the power latch or it switches off
        from machine import Pin

        Pin(b["pin_hold"], Pin.OUT, value=1)
    imu, fus = open_imu(b)
    import log as logmod

    max_kb = env("TILTGUARD_LOG_MAX_KB")
    lg = logmod.Log(env("TILTGUARD_LOG_DIR", "/log"), max_bytes=int(max_kb) * 1024 if max_kb else None)
    from haptics import Haptics

    hap = Haptics(b["pin_motor"], b.get("haptic", "motor"))
    from power import Battery

    bat = Battery(b["pin_vbat_adc"], b.get("vbat_divider", 2.0))
    app = App(cfg, bname, imu=imu, fusion=fus, log=lg, haptics=hap, battery=bat)
    if fus is not None:
        fus.rate_hz = app.rate_hz
    link = env("TILTGUARD_LINK")
    if link is None:
        link = ("ble", "serial", "both")[cfg.get("link", 0)] if not sim else "serial"
    for kind in ("serial", "ble"):
        if link in (kind, "both"):
            add_link(app, b, kind)
    return app, b, sim


def add_link(app, b, kind):
    """Open the serial or BLE link and give it a port (a queue) in the app."""
    if kind == "serial":
        from serial_link import SerialLink, open_stream

        rx, tx = open_stream(env("TILTGUARD_SERIAL", "usb"))
        return app.add_port(SerialLink(rx, tx), "serial")
    from ble import BleLink

    try:
        import machine
        import ubinascii

        uid = ubinascii.hexlify(machine.unique_id()).decode()
    except (ImportError, AttributeError):
        uid = "0000"
    name = "%s-%s" % (wire.NAME_PREFIX, uid[-4:])
    info = {"manufacturer": "tiltguard", "model": b["name"], "serial": uid, "firmware": "0.1.0"}
    return app.add_port(BleLink(name, info), "ble")


def link_switcher(app, b):
    """config link (0 BLE, 1 serial, 2 both) takes effect at once: open what is missing, pause the rest."""

    async def apply(value):
        await asyncio.sleep_ms(200)  # let the set_config reply leave on the old link first
        want = (("ble",), ("serial",), ("ble", "serial"))[value]
        for kind in want:
            if not any(p.name == kind for p in app.ports):
                try:
                    p = add_link(app, b, kind)
                except (OSError, ImportError, ValueError):
                    continue
                asyncio.create_task(link_task(app, p, BLE_FLUSH_MS if kind == "ble" else TICK_MS))
        for p in app.ports:
            p.enabled = p.name in want
            if not p.enabled and p.link.connected and hasattr(p.link, "disconnect"):
                p.link.disconnect()

    return lambda value: asyncio.create_task(apply(value))


async def sampler(app, stop_after):
    imu = app.imu
    # a sped-up fake IMU fills its FIFO faster: poll as often in IMU time as the board would
    poll_ms = max(1, int(SAMPLE_POLL_MS / float(env("TILTGUARD_FAKE_SPEED", "1"))))
    while True:
        n = app.sample_once() if imu is not None else 0
        if stop_after and app.next_seq >= stop_after:
            return
        await asyncio.sleep_ms(0 if imu is not None and n == imu.max_samples else poll_ms)


async def link_task(app, port, flush_ms):
    # flushes keep a fixed beat on the clock: 190 ms is not a whole number of ticks, and a wake-up
    # by a BLE event (a command write) must neither count as a tick nor delay the next burst
    due = time.ticks_ms()
    while True:
        now = time.ticks_ms()
        late = time.ticks_diff(now, due)
        if late >= 0:
            due = time.ticks_add(due if late < flush_ms else now, flush_ms)
        flush = late >= 0 or port.free() < 3  # early when the queue runs low (a download)
        if port.enabled:
            app.service(port, now, flush)
        await port.link.wait(max(1, min(TICK_MS, time.ticks_diff(due, time.ticks_ms()))))


async def log_task(app):
    while True:
        if app.sampling and not app.streaming and app.log is not None and app.log.run is None and (
                app.recording or app.cfg.get("always_log")):
            app.start_logging()
        busy = app.pump_log() == 32  # behind (a sped-up simulation): come back at once
        await asyncio.sleep_ms(0 if busy else LOG_MS)


LOW_BATTERY_MV = 3500  # ~5 % left under load: tell the host and the runner once


async def status_task(app):
    warned = False
    while True:
        if app.battery is not None:
            pct = 0
            try:
                pct = app.battery.percent()
            except OSError:
                pass
            mv = app.battery.mv
            if 0 < mv < LOW_BATTERY_MV and not warned:
                warned = True
                app.event(wire.EV_LOW_BATTERY, mv)
                if app.haptics is not None:
                    app.haptics.buzz("error")
            elif mv > LOW_BATTERY_MV + 100:
                warned = False
            for p in app.ports:
                if hasattr(p.link, "set_battery"):
                    p.link.set_battery(pct)
        n = app.status_frame()
        for p in app.ports:
            if hasattr(p.link, "set_status"):
                p.link.set_status(app.fbuf, n, notify=True)
            elif p.link.connected and p is app.stream_port:
                p.push(app.fbuf, n)
        await asyncio.sleep_ms(STATUS_MS)


def led_state(app):
    if app.calibrating:
        return "calibrating"
    if app.battery is not None and 0 < app.battery.mv < 3500:
        return "low_battery"
    if app.streaming:
        return "streaming"
    if app.logging():
        return "logging"
    if any(p.link.connected and p.name == "ble" for p in app.ports):
        return "connected"
    return "idle" if app.imu is not None else "error"


async def ui_task(app, led, idle):
    """LED follows the state; deep sleep after idle_sleep_s with no host, run or button press."""
    while True:
        led.show(led_state(app))
        idle.idle_s = app.cfg.get("idle_sleep_s", 600)
        busy = app.sampling or any(p.link.connected and p.name == "ble" for p in app.ports)
        if idle.should_sleep(busy):
            led.show("off")
            app.stop_logging()
            idle.sleep()
        await asyncio.sleep_ms(200)


async def main(app, b, sim):
    stop_after = 0
    run_s = env("TILTGUARD_RUN_S")
    if run_s:
        stop_after = app.next_seq + int(float(run_s) * app.rate_hz)
    try:
        import machine

        cause = machine.reset_cause()
    except (ImportError, AttributeError):
        cause = 0
    app.event(wire.EV_BOOT, cause)  # the host re-anchors device time after a boot
    if env("TILTGUARD_RECORD") == "1":
        app.toggle_recording()
    if env("TILTGUARD_STREAM") == "1" and app.ports:
        app.handle_command(app.ports[0], _local_cmd(wire.CMD_START_STREAM))
    app.on_link_change = link_switcher(app, b)
    app.resync()  # whatever piled up in the FIFO during boot is not a loss
    tasks = [asyncio.create_task(log_task(app)), asyncio.create_task(status_task(app))]
    for p in app.ports:
        tasks.append(asyncio.create_task(link_task(app, p, BLE_FLUSH_MS if p.name == "ble" else TICK_MS)))
    if not sim:
        from power import Idle
        from ui import Button, Led

        idle = Idle(app.cfg.get("idle_sleep_s", 600), b["pin_button"])

        def short():
            idle.touch()
            app.toggle_recording()

        def long():
            idle.touch()
            app.long_press()

        tasks.append(asyncio.create_task(Button(b["pin_button"], short, long).run()))
        led = Led(b["pin_led"], b.get("led_active_low", False))
        tasks.append(asyncio.create_task(led.run()))
        tasks.append(asyncio.create_task(ui_task(app, led, idle)))
    await sampler(app, stop_after)
    # a timed (sim) run ends here: log everything sampled, send everything queued and a last
    # status, then linger so the host reads it all before the port closes (a pty drops unread data)
    app.pump_log(max_records=1 << 20)
    app.stop_logging()
    linger_ms = int(float(env("TILTGUARD_LINGER_S", "1")) * 1000)
    t_end = None
    status_sent = False
    for _ in range(500):
        pending = any(p.count for p in app.ports if p.link.connected)
        if app.stream_port is not None and (app.link_seq < app.next_seq or app.enc.n):
            pending = True
            app._finish_stream_frame(app.stream_port) if app.link_seq >= app.next_seq else None
        if not pending and not status_sent:
            n = app.status_frame()
            for p in app.ports:
                if p.link.connected:
                    p.push(app.fbuf, n)
            status_sent = True
            continue
        if not pending and t_end is None:
            t_end = time.ticks_add(time.ticks_ms(), linger_ms)
        if t_end is not None and time.ticks_diff(time.ticks_ms(), t_end) >= 0:
            break
        await asyncio.sleep_ms(20)
    for t in tasks:
        t.cancel()


def _local_cmd(cmd):
    import frames

    buf = bytearray(8)
    n = frames.encode_command(buf, 0, cmd, 0)
    return bytes(buf[:n])


def run():
    app, b, sim = build()
    try:
        asyncio.run(main(app, b, sim))
    finally:
        app.stop_logging()
    return app


if __name__ == "__main__":
    run()
