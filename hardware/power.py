"""Battery budget of the tiltguard clip: current per load, average per mode, battery life.

    python hardware/power.py          markdown tables (pasted verbatim into hardware/power.md)
    python hardware/power.py --json   the same results, machine-readable (tests read this)

Currents are in mA at the battery (the XIAO's regulator is linear, so battery current ~= load
current). Every number comes from FIGURES, and every figure names its source: a datasheet table,
a vendor page, or "design"/"estimate" with the reason. `checked=False` marks figures not read from
the source text while writing this (confirm them before relying on them).
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    value: float
    unit: str
    source: str
    checked: bool = True


S3_DS = "ESP32-S3 Series Datasheet v2.2, sec. 5.6"
LSM_DS = "LSM6DSV16X datasheet DS13510 Rev 4, sec. 4.2 Table 4"
XIAO_WIKI = "Seeed wiki 'Getting Started with XIAO ESP32S3', spec table (board level, 3.8 V)"
ESP32_DS = "ESP32 Series Datasheet (Espressif), 'Current Consumption' tables"

FIGURES: dict[str, Figure] = {
    # --- reference build: XIAO ESP32S3 (ESP32-S3R8) ---
    "s3_waiti_160": Figure(42.3, "mA", f"{S3_DS} Table 5-9: Modem-sleep 160 MHz, WAITI, Typ2 (all peripheral clocks on)"),
    "s3_run_160": Figure(54.6, "mA", f"{S3_DS} Table 5-9: 160 MHz, one core running, Typ2"),
    "s3_waiti_80": Figure(36.1, "mA", f"{S3_DS} Table 5-9: Modem-sleep 80 MHz, WAITI, Typ2"),
    "s3_run_80": Figure(42.6, "mA", f"{S3_DS} Table 5-9: 80 MHz, one core running, Typ2"),
    "s3_ble_tx": Figure(176.0, "mA", f"{S3_DS} Table 5-8: Bluetooth LE TX @ 0 dBm (peak, whole chip)"),
    "s3_ble_rx": Figure(93.0, "mA", f"{S3_DS} Table 5-8: Bluetooth LE RX (peak)"),
    "s3_flash_access": Figure(10.0, "mA", f"{S3_DS} Table 5-9 note 3: flash access, 80 Mbit/s SPI 2-line"),
    "flash_erase_ms": Figure(70.0, "ms", "ESP32-S3 Series Datasheet v2.2 Table 5-11: 4 KB sector erase, typ"),
    "flash_program_ms": Figure(0.8, "ms", "ESP32-S3 Series Datasheet v2.2 Table 5-11: 256 B page program, typ"),
    "xiao_light_sleep": Figure(2.0, "mA", f"{XIAO_WIKI}: Light-sleep 2 mA"),
    "xiao_deep_sleep": Figure(0.014, "mA", f"{XIAO_WIKI}: Deep Sleep 14 uA"),
    "xiao_ble_board": Figure(85.0, "mA", f"{XIAO_WIKI}: 'BLE enabled, active ~85 mA' (cross-check only)"),
    "idf_ble_lightsleep_xtal": Figure(3.3, "mA", "ESP-IDF examples/bluetooth/nimble/power_save README: ESP32-S3 light sleep, main XTAL "
                                      "(not in the sums: what a build with automatic light sleep could reach)"),
    "imu_hp": Figure(0.65, "mA", f"{LSM_DS}: IddHP, gyro + accel high-performance"),
    "imu_lpm1": Figure(0.004, "mA", f"{LSM_DS}: LA_IddLPM1 at 1.875 Hz (wake-on-motion while asleep)"),
    "motor": Figure(80.0, "mA", "Adafruit 1201 product page: 80 mA at 4 V (60 mA at 3 V); upper bound at 3.3 V"),
    "led": Figure(5.0, "mA", "estimate: typical indicator LED while lit (XIAO user LED, series resistor not published)", False),
    "cell_ref": Figure(500.0, "mAh", "Adafruit 1578 product page: 3.7 V 500 mAh, protection cuts at 3.0 V"),
    # --- off-the-shelf build: M5StickC Plus2 (ESP32-PICO-V3-02 + MPU6886) ---
    "esp32_idle_160": Figure(27.0, "mA", f"{ESP32_DS}: Modem-sleep 160 MHz, low end of 27-44 mA", False),
    "esp32_run_160": Figure(44.0, "mA", f"{ESP32_DS}: Modem-sleep 160 MHz, high end of 27-44 mA", False),
    "esp32_ble_tx": Figure(130.0, "mA", f"{ESP32_DS}: Bluetooth LE TX @ 0 dBm", False),
    "esp32_ble_rx": Figure(100.0, "mA", f"{ESP32_DS}: Bluetooth LE RX 95-100 mA (high end)", False),
    "esp32_light_sleep": Figure(0.8, "mA", f"{ESP32_DS}: Light-sleep", False),
    "esp32_deep_sleep": Figure(0.010, "mA", f"{ESP32_DS}: Deep-sleep, RTC timer + RTC memory", False),
    "mpu6886_on": Figure(3.8, "mA", "upper bound: MPU-6000/6050 PS Rev 3.4 sec. 6.3 gyro+accel (older family; "
                         "MPU-6886 DS-000193 v1.1 sec. 3 not read here)", False),
    "mpu6886_sleep": Figure(0.005, "mA", "upper bound: MPU-6000/6050 PS Rev 3.4 sec. 6.3 full-chip idle", False),
    "buzzer": Figure(20.0, "mA", "estimate: passive buzzer driven by GPIO2 through a transistor (not published)", False),
    "cell_m5": Figure(200.0, "mAh", "M5StickC Plus2 spec: 200 mAh internal cell"),
    # --- battery behaviour ---
    "usable_fraction": Figure(0.80, "", "estimate: XIAO 3.3 V LDO drops out near 3.5 V; cold and ageing (80-85 % usual)", False),
    "self_discharge": Figure(5.0, "%/month", "Battery University BU-802b: Li-ion 1-2 %/month + ~3 %/month protection circuit", False),
    "vbat_divider_ohm": Figure(440e3, "ohm", "firmware/board.py: 2 x 220 kOhm divider across the cell (always on)"),
    "v_cell_nominal": Figure(3.7, "V", "Adafruit 1578 product page: nominal 3.7 V"),
    # --- design choices (what the firmware is expected to do) ---
    "odr_hz": Figure(200.0, "Hz", "design: IMU output data rate (REFERENCE.md; firmware/config.py allows 200 or 208)"),
    "fifo_B_per_sample": Figure(14.0, "B", "design: accel + gyro words, 7 B each (tag + 6 B) in the LSM6DSV16X FIFO (DS13510)"),
    "m5_fifo_B_per_sample": Figure(14.0, "B", "design: MPU6886 FIFO accel + temp + gyro, 14 B per sample"),
    "i2c_hz": Figure(400e3, "Hz", "firmware/board.py i2c_freq"),
    "conn_interval_ms": Figure(30.0, "ms", "design: interval the clip asks for; the central decides (REFERENCE.md)"),
    "samples_per_notification": Figure(19.0, "", "firmware/PROTOCOL.md sec. 2.1: 19 compact samples per frame at MTU 247"),
    "notify_payload_B": Figure(244.0, "B", "firmware/PROTOCOL.md: a frame never exceeds 244 B (MTU 247 - 3)"),
    "radio_tx_ramp_us": Figure(150.0, "us", "estimate: radio settle per TX burst (not in the datasheet)", False),
    "radio_rx_window_us": Figure(250.0, "us", "estimate: RX window + settle per connection event (not in the datasheet)", False),
    "cpu_ms_per_sample": Figure(0.5, "ms", "estimate: MicroPython FIFO parse + framing + BLE host + log per sample; "
                                "measure with benchmarks/firmware_hotpath.py", False),
    "fusion_ms_per_sample": Figure(0.3, "ms", "estimate: firmware/fusion.py is a viper fixed-point filter (no floats); "
                                   "measure on the clip", False),
    "fusion_float_ms_per_sample": Figure(1.6, "ms", "REFERENCE.md: a float Madgwick update took 1.6 ms on a 168 MHz Cortex-M4F "
                                         "(sensitivity only)"),
    "wake_period_s": Figure(0.5, "s", "design: FIFO watermark every 100 samples (4.5 kB FIFO holds ~1 s)"),
    "m5_poll_period_s": Figure(0.25, "s", "design: MPU6886 1 kB FIFO holds 0.36 s at 200 Hz, no INT line routed"),
    "wake_overhead_ms": Figure(2.0, "ms", "estimate: light-sleep exit + re-entry per wake", False),
    "log_record_B": Figure(128.0, "B", "firmware/log.py: 128-byte records written in 4 kB blocks"),
    "log_samples_per_record": Figure(9.0, "", "firmware/log.py: 9 compact samples per record"),
    "flash_fs_MB": Figure(6.0, "MB", "estimate: XIAO 8 MB flash less ~2 MB MicroPython app partition", False),
    "alert_duty": Figure(0.01, "", "design budget: 1 % buzzing (firmware: 1.2 s alert, >= 300 s cooldown = 0.4 %)"),
    "led_duty": Figure(0.004, "", "design: 20 ms blink every 5 s"),
}

TARGETS = {"streaming": ("h", 6.0), "logging": ("h", 10.0), "sleep": ("d", 14.0)}


_OVERRIDE: dict[str, float] = {}


def f(key: str) -> float:
    return _OVERRIDE.get(key, FIGURES[key].value)


def log_bps() -> float:
    """Bytes per second the firmware's flash log writes at the IMU rate."""
    return f("odr_hz") / f("log_samples_per_record") * f("log_record_B")


def notify_hz() -> float:
    return f("odr_hz") / f("samples_per_notification")


def ble_airtime_s(conn_interval_ms: float, notify_per_s: float, payload_b: float) -> tuple[float, float]:
    """Seconds per second the radio transmits and receives (1M PHY, one notification per event)."""
    events_hz = 1000.0 / conn_interval_ms
    us_per_byte = 8.0                       # 1 Mbit/s
    ll_overhead_b = 10                      # preamble 1 + access address 4 + header 2 + CRC 3
    data_us = (payload_b + 3 + 4 + ll_overhead_b) * us_per_byte   # + ATT 3 + L2CAP 4
    empty_us = ll_overhead_b * us_per_byte
    tx_us = (notify_per_s * (data_us + f("radio_tx_ramp_us"))
             + (events_hz - notify_per_s) * (empty_us + f("radio_tx_ramp_us")))
    rx_us = events_hz * (empty_us + f("radio_rx_window_us"))
    return tx_us * 1e-6, rx_us * 1e-6


def flash_duty(log_bps: float) -> float:
    """Fraction of time the flash erases + programs 4 KB blocks."""
    block_s = (f("flash_erase_ms") + 16 * f("flash_program_ms")) * 1e-3
    return log_bps / 4096.0 * block_s


def divider_mA() -> float:
    return f("v_cell_nominal") / f("vbat_divider_ohm") * 1e3


def common_loads(motor_key: str) -> list[tuple[str, float, str]]:
    return [
        ("haptic cue pulses", f(motor_key) * f("alert_duty"), f"{motor_key}, alert_duty"),
        ("status LED blinks", f("led") * f("led_duty"), "led, led_duty"),
        ("battery divider", divider_mA(), "vbat_divider_ohm, v_cell_nominal"),
    ]


def ref_modes(mhz: int = 160) -> dict[str, list[tuple[str, float, str]]]:
    scale = 1e-3 * f("odr_hz") * 160 / mhz                            # work time scales with the clock
    busy_work, busy_fusion = f("cpu_ms_per_sample") * scale, f("fusion_ms_per_sample") * scale
    waiti, run = f(f"s3_waiti_{mhz}"), f(f"s3_run_{mhz}")
    mcu = [(f"MCU awake {mhz} MHz: idle + {busy_work:.0%} busy (I/O, frames, BLE host, log)",
            waiti + (run - waiti) * busy_work, f"s3_waiti_{mhz}, s3_run_{mhz}, cpu_ms_per_sample"),
           (f"fusion on the MCU ({busy_fusion:.0%} busy)", (run - waiti) * busy_fusion,
            f"s3_waiti_{mhz}, s3_run_{mhz}, fusion_ms_per_sample")]
    tx_s, rx_s = ble_airtime_s(f("conn_interval_ms"), notify_hz(), f("notify_payload_B"))
    fd = flash_duty(log_bps())
    imu = [("IMU 200 Hz accel+gyro, FIFO", f("imu_hp"), "imu_hp")]
    flash = ("flash log (200 Hz compact records)", f("s3_flash_access") * fd,
             "s3_flash_access, flash_erase_ms, flash_program_ms, log_record_B, log_samples_per_record")
    streaming = [
        *mcu,
        *imu,
        ("BLE radio TX (notifications)", f("s3_ble_tx") * tx_s,
         "s3_ble_tx, conn_interval_ms, samples_per_notification, notify_payload_B"),
        ("BLE radio RX (connection events)", f("s3_ble_rx") * rx_s, "s3_ble_rx, conn_interval_ms, radio_rx_window_us"),
        flash, *common_loads("motor"),
    ]
    # logging-only: BLE off, light sleep between FIFO watermark interrupts
    n = f("odr_hz") * f("wake_period_s")
    i2c_s = n * f("fifo_B_per_sample") * 9 / f("i2c_hz")       # 9 bit times per byte
    fusion_s = n * f("fusion_ms_per_sample") * 1e-3
    run_s = n * f("cpu_ms_per_sample") * 1e-3 + f("wake_overhead_ms") * 1e-3 + fd * f("wake_period_s")
    awake = (i2c_s + run_s + fusion_s) / f("wake_period_s")
    logging = [
        (f"MCU awake {awake:.0%}: I2C burst (idle wait)", f("s3_waiti_160") * i2c_s / f("wake_period_s"),
         "s3_waiti_160, fifo_B_per_sample, i2c_hz, wake_period_s"),
        ("MCU awake: processing, flash writes, wake-up", f("s3_run_160") * run_s / f("wake_period_s"),
         "s3_run_160, cpu_ms_per_sample, wake_overhead_ms"),
        ("fusion on the MCU", f("s3_run_160") * fusion_s / f("wake_period_s"), "s3_run_160, fusion_ms_per_sample"),
        (f"MCU light sleep {1 - awake:.0%} (board)", f("xiao_light_sleep") * (1 - awake), "xiao_light_sleep"),
        *imu, flash, *common_loads("motor"),
    ]
    logging_no_sleep = [
        *mcu,
        *imu, flash, *common_loads("motor"),
    ]
    sleep = [
        ("XIAO deep sleep (board)", f("xiao_deep_sleep"), "xiao_deep_sleep"),
        ("IMU wake-on-motion, accel 1.875 Hz", f("imu_lpm1"), "imu_lpm1"),
        ("battery divider", divider_mA(), "vbat_divider_ohm, v_cell_nominal"),
    ]
    return {"streaming": streaming, "logging": logging, "logging (no light sleep)": logging_no_sleep, "sleep": sleep}


def m5_modes() -> dict[str, list[tuple[str, float, str]]]:
    busy_work, busy_fusion = f("cpu_ms_per_sample") * 1e-3 * f("odr_hz"), f("fusion_ms_per_sample") * 1e-3 * f("odr_hz")
    idle, run = f("esp32_idle_160"), f("esp32_run_160")
    tx_s, rx_s = ble_airtime_s(f("conn_interval_ms"), notify_hz(), f("notify_payload_B"))
    imu = ("IMU 200 Hz accel+gyro, FIFO", f("mpu6886_on"), "mpu6886_on")
    streaming = [
        (f"MCU awake 160 MHz: idle + {busy_work:.0%} busy (I/O, frames, BLE host)", idle + (run - idle) * busy_work,
         "esp32_idle_160, esp32_run_160, cpu_ms_per_sample"),
        (f"fusion on the MCU ({busy_fusion:.0%} busy)", (run - idle) * busy_fusion,
         "esp32_idle_160, esp32_run_160, fusion_ms_per_sample"),
        imu,
        ("BLE radio TX (notifications)", f("esp32_ble_tx") * tx_s,
         "esp32_ble_tx, conn_interval_ms, samples_per_notification, notify_payload_B"),
        ("BLE radio RX (connection events)", f("esp32_ble_rx") * rx_s, "esp32_ble_rx, conn_interval_ms, radio_rx_window_us"),
        *common_loads("buzzer"),
    ]
    # logging-only: poll the 1 kB FIFO from a timer, light sleep in between (fusion still on the MCU)
    n = f("odr_hz") * f("m5_poll_period_s")
    awake = min(1.0, (n * f("m5_fifo_B_per_sample") * 9 / f("i2c_hz") + n * (f("cpu_ms_per_sample") + f("fusion_ms_per_sample")) * 1e-3
                      + f("wake_overhead_ms") * 1e-3) / f("m5_poll_period_s"))
    logging = [
        (f"MCU awake {awake:.0%} (poll, fuse, log)", f("esp32_run_160") * awake,
         "esp32_run_160, m5_poll_period_s, m5_fifo_B_per_sample, cpu_ms_per_sample, fusion_ms_per_sample"),
        (f"MCU light sleep {1 - awake:.0%}", f("esp32_light_sleep") * (1 - awake), "esp32_light_sleep"),
        imu, *common_loads("buzzer"),
    ]
    sleep = [
        ("ESP32 deep sleep", f("esp32_deep_sleep"), "esp32_deep_sleep"),
        ("IMU sleep", f("mpu6886_sleep"), "mpu6886_sleep"),
        ("battery divider", divider_mA(), "vbat_divider_ohm, v_cell_nominal"),
    ]
    return {"streaming": streaming, "logging": logging, "sleep": sleep}


def life(total_mA: float, cell_mAh: float) -> tuple[float, float]:
    """(hours, days) from the usable capacity, counting self-discharge as a constant drain."""
    usable = cell_mAh * f("usable_fraction")
    self_mA = cell_mAh * f("self_discharge") / 100.0 / (30 * 24)
    hours = usable / (total_mA + self_mA)
    return hours, hours / 24.0


def _total(loads) -> float:
    return sum(ma for _, ma, _ in loads)


def sensitivity() -> list[dict]:
    """Reference clip: streaming / logging life when one assumption is changed."""
    cell = f("cell_ref")

    def run(label, overrides=None, mhz=160, stream_total=None, cell_mAh=cell):
        _OVERRIDE.clear()
        _OVERRIDE.update(overrides or {})
        try:
            modes = ref_modes(mhz)
            s_mA = stream_total(modes["streaming"]) if stream_total else _total(modes["streaming"])
            l_mA = _total(modes["logging"])
            return {"scenario": label, "streaming_mA": round(s_mA, 3), "streaming_h": round(life(s_mA, cell_mAh)[0], 1),
                    "logging_mA": round(l_mA, 3), "logging_h": round(life(l_mA, cell_mAh)[0], 1)}
        finally:
            _OVERRIDE.clear()

    def seeed_board(loads):   # replace the MCU + radio rows by Seeed's measured BLE board current
        return f("xiao_ble_board") + sum(ma for name, ma, _ in loads if not name.startswith(("MCU", "BLE", "fusion")))

    return [
        run("as modelled"),
        run("fusion at float-Madgwick cost (fusion_float_ms_per_sample)",
            {"fusion_ms_per_sample": f("fusion_float_ms_per_sample")}),
        run("connection interval 15 ms (the central's choice)", {"conn_interval_ms": 15.0}),
        run("MCU at 80 MHz while streaming (s3_waiti_80, s3_run_80)", mhz=80),
        run("MCU + BLE at Seeed's board figure (xiao_ble_board)", stream_total=seeed_board),
        run("same, with a 1000 mAh cell", stream_total=seeed_board, cell_mAh=2 * cell),
    ]


def results() -> dict:
    out = {}
    for name, modes, cell_key in (("ref", ref_modes(), "cell_ref"), ("m5", m5_modes(), "cell_m5")):
        res = {}
        for mode, loads in modes.items():
            total = sum(ma for _, ma, _ in loads)
            hours, days = life(total, f(cell_key))
            base = mode.split(" ")[0]
            unit, target = TARGETS[base]
            value = days if unit == "d" else hours
            res[mode] = {"loads": [{"load": n, "mA": round(ma, 3), "figures": k} for n, ma, k in loads],
                         "total_mA": round(total, 3), "hours": round(hours, 1), "days": round(days, 1),
                         "target": f">= {target:g} {unit}", "met": bool(value >= target)}
        out[name] = {"cell_mAh": f(cell_key), "modes": res}
    log = {"log_Bps": round(log_bps(), 1), "capacity_min": round(f("flash_fs_MB") * 1e6 / log_bps() / 60, 1)}
    return {"variants": out, "sensitivity": sensitivity(), "flash_log": log,
            "figures": {k: vars(v) for k, v in FIGURES.items()}}


def _life_str(m: dict, mode: str) -> str:
    return f"{m['days']:.0f} d ({m['days'] / 7:.0f} weeks)" if mode == "sleep" else f"{m['hours']:.1f} h"


def markdown(r: dict) -> str:
    lines = []
    titles = {"ref": "Reference clip (XIAO ESP32S3 + LSM6DSV16X)", "m5": "Off-the-shelf (M5StickC Plus2)"}
    for name, v in r["variants"].items():
        cell = v["cell_mAh"]
        usable = cell * f("usable_fraction")
        lines.append(f"### {titles[name]}: {cell:.0f} mAh cell, {usable:.0f} mAh usable")
        lines.append("")
        lines.append("| mode | average current | battery life | target | met |")
        lines.append("| --- | ---: | ---: | --- | --- |")
        for mode, m in v["modes"].items():
            lines.append(f"| {mode} | {m['total_mA']:.3f} mA | {_life_str(m, mode)} | {m['target']} | "
                         f"{'yes' if m['met'] else 'NO'} |")
        lines.append("")
        for mode, m in v["modes"].items():
            lines.append(f"{name} / {mode}:")
            lines.append("")
            lines.append("| load | mA | figures used |")
            lines.append("| --- | ---: | --- |")
            for ld in m["loads"]:
                lines.append(f"| {ld['load']} | {ld['mA']:.3f} | {ld['figures']} |")
            lines.append(f"| **total** | **{m['total_mA']:.3f}** | |")
            lines.append("")
    fl = r["flash_log"]
    lines.append(f"Flash log (reference clip): {fl['log_Bps']:.0f} B/s at 200 Hz; a {f('flash_fs_MB'):g} MB file system "
                 f"holds {fl['capacity_min']:.0f} min (figures: log_record_B, log_samples_per_record, flash_fs_MB).")
    lines.append("")
    lines.append("### Sensitivity (reference clip): one assumption changed at a time")
    lines.append("")
    lines.append("| scenario | streaming | logging (light sleep) |")
    lines.append("| --- | ---: | ---: |")
    for row in r["sensitivity"]:
        lines.append(f"| {row['scenario']} | {row['streaming_mA']:.1f} mA, {row['streaming_h']:.1f} h | "
                     f"{row['logging_mA']:.1f} mA, {row['logging_h']:.1f} h |")
    lines.append("")
    lines.append("### Figures and sources")
    lines.append("")
    lines.append("| figure | value | unit | source | read from source |")
    lines.append("| --- | ---: | --- | --- | --- |")
    for k, fig in FIGURES.items():
        lines.append(f"| {k} | {fig.value:g} | {fig.unit} | {fig.source} | {'yes' if fig.checked else 'no'} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    r = results()
    if "--json" in argv:
        print(json.dumps(r, indent=1))
    else:
        print(markdown(r))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
