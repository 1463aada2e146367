"""Button (short press = start/stop, long press = calibrate) and LED states."""

import asyncio
import time

from machine import Pin

LONG_MS = 1500
DEBOUNCE_MS = 30
# LED patterns: (on_ms, off_ms) cycles
LED = {
    "off": ((0, 1000),),
    "idle": ((40, 2960),),  # a blip every 3 s
    "connected": ((40, 960),),
    "streaming": ((1000, 0),),
    "logging": ((40, 160), (40, 2760)),
    "calibrating": ((100, 100),),
    "error": ((500, 500),),
    "low_battery": ((40, 160), (40, 160), (40, 1720)),
}


class Button:
    """Polled every 10 ms (cheap, debounced, no IRQ re-entrancy); active low with pull-up."""

    def __init__(self, pin, on_short, on_long):
        self.pin = Pin(pin, Pin.IN, Pin.PULL_UP)
        self.on_short = on_short
        self.on_long = on_long
        self.presses = 0

    async def run(self):
        down_at = None
        fired_long = False
        while True:
            pressed = self.pin.value() == 0
            now = time.ticks_ms()
            if pressed and down_at is None:
                down_at, fired_long = now, False
            elif pressed and not fired_long and time.ticks_diff(now, down_at) >= LONG_MS:
                fired_long = True  # fire while held, so the runner feels the ack when standing still
                self.presses += 1
                self.on_long()
            elif not pressed and down_at is not None:
                if not fired_long and time.ticks_diff(now, down_at) >= DEBOUNCE_MS:
                    self.presses += 1
                    self.on_short()
                down_at = None
            await asyncio.sleep_ms(10)


class Led:
    def __init__(self, pin, active_low=False):
        self.pin = Pin(pin, Pin.OUT)
        self.active_low = active_low
        self.state = "idle"
        self._set(False)

    def _set(self, on):
        self.pin.value((not on) if self.active_low else on)

    def show(self, state):
        if state in LED:
            self.state = state

    async def run(self):
        while True:
            for on_ms, off_ms in LED[self.state]:
                if on_ms:
                    self._set(True)
                    await asyncio.sleep_ms(on_ms)
                if off_ms:
                    self._set(False)
                    await asyncio.sleep_ms(off_ms)
