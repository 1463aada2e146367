# Board variants and pin map: the single source the hardware docs and BOM are checked against
# (tests/test_hardware.py). Plain dicts so CPython tests can import it too.

# Reference clip: Seeed Studio XIAO ESP32S3 + LSM6DSV16X breakout, coin vibration motor on a
# low-side N-MOSFET with a flyback diode, one button, the board's user LED, LiPo on the board charger.
REFERENCE = {
    "name": "tiltguard-ref",
    "mcu_board": "Seeed Studio XIAO ESP32S3",
    "imu": "LSM6DSV16X",
    "imu_addr": 0x6A,       # SDO/SA0 tied to GND
    "i2c_id": 0,
    "i2c_freq": 400_000,    # 400 kHz: a 32-sample FIFO burst at 200 Hz uses < 15 % of the bus
    "pin_sda": 5,           # D4
    "pin_scl": 6,           # D5
    "pin_imu_int1": 4,      # D3, FIFO watermark interrupt
    "pin_motor": 2,         # D1, PWM into the MOSFET gate
    "pin_button": 3,        # D2, to GND, internal pull-up
    "pin_led": 21,          # on-board user LED, active low
    "led_active_low": True,
    "pin_vbat_adc": 1,      # D0, from a 2 x 220 kOhm divider across the cell
    "vbat_divider": 2.0,
    "pin_hold": None,       # no power-hold latch
    "haptic": "motor",
}

# Off-the-shelf clip: M5StickC Plus2 (ESP32-PICO-V3-02 + MPU6886); no soldering, a buzzer instead of a motor.
M5STICKC_PLUS2 = {
    "name": "tiltguard-m5",
    "mcu_board": "M5StickC Plus2",
    "imu": "MPU6886",
    "imu_addr": 0x68,
    "i2c_id": 0,
    "i2c_freq": 400_000,
    "pin_sda": 21,
    "pin_scl": 22,
    "pin_imu_int1": None,   # the MPU6886 interrupt line is not routed on the Plus2
    "pin_motor": 2,         # passive buzzer
    "pin_button": 37,       # button A
    "pin_led": 19,          # red LED, active high
    "led_active_low": False,
    "pin_vbat_adc": 38,
    "vbat_divider": 2.0,
    "pin_hold": 4,          # must be driven high at boot or the Plus2 powers off
    "haptic": "buzzer",
}

VARIANTS = {"ref": REFERENCE, "m5": M5STICKC_PLUS2}
DEFAULT = "ref"


def get(name=None):
    return VARIANTS[name or DEFAULT]
