"""Fake ``machine`` module for running the firmware under the MicroPython unix port.

Each peripheral records what the firmware did with it (PWM timeline, sleeps...) so tests can
assert on it; inputs (pin levels, ADC voltage) are set by the tests. Time comes from
``time.ticks_ms`` so the records line up with the firmware's own clock.
"""

import time

try:
    from fake_imu import I2C, SoftI2C  # noqa: F401  (fw-sense's register/FIFO emulation)
except ImportError:  # the fake IMU may not be there yet: a bus with nothing on it

    class I2C:
        def __init__(self, *a, **kw):
            self.args = (a, kw)

        def scan(self):
            return []

        def readfrom_mem_into(self, addr, reg, buf, *a):
            raise OSError(19)  # ENODEV: nobody answers

        def readfrom_mem(self, addr, reg, n, *a):
            raise OSError(19)

        def writeto_mem(self, addr, reg, buf, *a):
            raise OSError(19)

    SoftI2C = I2C

EVENTS = []  # (t_ms, what, detail): resets, sleeps, freq changes


def _log(what, detail=None):
    EVENTS.append((time.ticks_ms(), what, detail))


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 2
    IRQ_RISING = 1
    _all = {}

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        self.mode = mode
        self.pull = pull
        self._value = 1 if pull == Pin.PULL_UP else 0
        self._handler = None
        self._trigger = 0
        self.history = []  # (t_ms, value) of writes
        if value is not None:
            self.value(value)
        Pin._all[id] = self

    def init(self, mode=-1, pull=-1, value=None):
        self.mode, self.pull = mode, pull
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            return self._value
        self._value = 1 if v else 0
        self.history.append((time.ticks_ms(), self._value))

    __call__ = value

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=3, **kw):
        self._handler = handler
        self._trigger = trigger

    # test hook: drive an input pin from outside, firing the IRQ like the hardware would
    def drive(self, v):
        old, self._value = self._value, 1 if v else 0
        if self._handler is None or old == self._value:
            return
        edge = Pin.IRQ_RISING if self._value else Pin.IRQ_FALLING
        if self._trigger & edge:
            self._handler(self)

    @classmethod
    def get(cls, id):
        return cls._all.get(id)


class PWM:
    """Records (t_ms, freq_hz, duty_u16) every time the output changes."""

    _all = {}

    def __init__(self, pin, freq=1000, duty_u16=0, **kw):
        self.pin = pin
        self._freq = freq
        self._duty = duty_u16
        self.timeline = [(time.ticks_ms(), freq, duty_u16)]
        self.active = True
        PWM._all[getattr(pin, "id", pin)] = self

    def _rec(self):
        self.timeline.append((time.ticks_ms(), self._freq, self._duty))

    def freq(self, f=None):
        if f is None:
            return self._freq
        self._freq = f
        self._rec()

    def duty_u16(self, d=None):
        if d is None:
            return self._duty
        self._duty = d
        self._rec()

    def duty(self, d=None):  # 10-bit legacy API
        if d is None:
            return self._duty >> 6
        self.duty_u16(d << 6)

    def init(self, freq=None, duty_u16=None, **kw):
        if freq is not None:
            self._freq = freq
        if duty_u16 is not None:
            self._duty = duty_u16
        self._rec()

    def deinit(self):
        self._duty = 0
        self.active = False
        self._rec()


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3
    WIDTH_12BIT = 3
    voltage_uv = {}  # pin id -> microvolts at the ADC pin; set by tests

    def __init__(self, pin, atten=None):
        self.pin_id = getattr(pin, "id", pin)
        self.atten = atten

    def atten(self, a):
        pass

    def width(self, w):
        pass

    def read_uv(self):
        return int(ADC.voltage_uv.get(self.pin_id, 1_900_000))

    def read_u16(self):
        return min(65535, self.read_uv() * 65535 // 3_100_000)

    def read(self):
        return self.read_u16() >> 4

    @classmethod
    def set_voltage(cls, pin_id, volts):
        cls.voltage_uv[pin_id] = int(volts * 1_000_000)


class Timer:
    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, id=-1, **kw):
        self.id = id
        self.callback = None
        if kw:
            self.init(**kw)

    def init(self, mode=PERIODIC, period=-1, freq=-1, callback=None):
        self.mode, self.period, self.callback = mode, period, callback

    def deinit(self):
        self.callback = None

    def fire(self):  # test hook
        if self.callback:
            self.callback(self)


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self.fed = 0

    def feed(self):
        self.fed += 1


_freq = [240_000_000]


def freq(hz=None):
    if hz is None:
        return _freq[0]
    _freq[0] = hz
    _log("freq", hz)


def unique_id():
    return b"\x24\x6f\x28\x7a\xc1\x5e"


def reset():
    _log("reset")
    raise SystemExit("machine.reset")


def soft_reset():
    reset()


def lightsleep(ms=None):
    _log("lightsleep", ms)
    if ms:
        time.sleep_ms(min(ms, 1))


def deepsleep(ms=None):
    _log("deepsleep", ms)
    raise SystemExit("machine.deepsleep")


PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5


def reset_cause():
    return PWRON_RESET


def idle():
    pass


def disable_irq():
    return 0


def enable_irq(state=0):
    pass
