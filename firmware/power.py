"""Battery voltage -> percentage (LiPo discharge curve) and sleep when idle."""

import time

import machine

# Single-cell LiPo at a light load (~20 mA), resting voltage in mV -> state of charge %.
CURVE_MV_PCT = (
    (3270, 0), (3610, 5), (3690, 10), (3710, 15), (3730, 20), (3750, 25), (3770, 30),
    (3790, 35), (3800, 40), (3820, 45), (3840, 50), (3850, 55), (3870, 60), (3910, 65),
    (3950, 70), (3980, 75), (4020, 80), (4080, 85), (4110, 90), (4150, 95), (4200, 100),
)


def percent(mv):
    """State of charge 0..100 from the cell voltage in mV (linear between table points)."""
    if mv <= CURVE_MV_PCT[0][0]:
        return 0
    for i in range(1, len(CURVE_MV_PCT)):
        v1, p1 = CURVE_MV_PCT[i]
        if mv <= v1:
            v0, p0 = CURVE_MV_PCT[i - 1]
            return p0 + (mv - v0) * (p1 - p0) // (v1 - v0)
    return 100


class Battery:
    def __init__(self, pin, divider=2.0):
        self.adc = machine.ADC(machine.Pin(pin))
        try:
            self.adc.atten(machine.ADC.ATTN_11DB)  # up to ~3.1 V at the pin
        except (AttributeError, TypeError):
            pass
        self.divider = divider
        self.mv = 0

    def read_mv(self, n=8):
        """Cell voltage in mV, averaged over n reads; smoothed so the motor's sag does not jump it."""
        tot = 0
        for _ in range(n):
            tot += self.adc.read_uv()
        mv = int(tot // n * self.divider // 1000)
        self.mv = mv if not self.mv else (3 * self.mv + mv) // 4
        return self.mv

    def percent(self):
        return percent(self.read_mv())


class Idle:
    """Sleeps the clip after ``idle_s`` with no host, no logging and no button press."""

    def __init__(self, idle_s=600, wake_pin=None):
        self.idle_s = idle_s
        self.wake_pin = wake_pin
        self.touch()

    def touch(self):
        self._last = time.ticks_ms()

    def idle_for_s(self):
        return time.ticks_diff(time.ticks_ms(), self._last) // 1000

    def should_sleep(self, busy):
        if busy:
            self.touch()
            return False
        return self.idle_s > 0 and self.idle_for_s() >= self.idle_s

    def sleep(self):
        """Deep sleep until the button (wake_pin, active low) is pressed."""
        try:
            import esp32

            if self.wake_pin is not None:
                esp32.wake_on_ext0(machine.Pin(self.wake_pin), esp32.WAKEUP_ALL_LOW)
        except ImportError:
            pass
        machine.deepsleep()
