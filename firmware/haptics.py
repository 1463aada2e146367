"""Buzz patterns on the motor pin (PWM into a MOSFET) or a passive buzzer, without blocking.

A pattern is a tuple of (duty_pct, ms) steps; ``buzz(name)`` starts it in its own asyncio task and
returns at once (a new pattern replaces one still playing).
"""

import asyncio

from machine import PWM, Pin

PATTERNS = {
    # long and strong: alerts must be noticed through a waistband, and are rare
    "alert": ((100, 400), (0, 200), (100, 400), (0, 200), (100, 400)),
    "recovered": ((70, 120), (0, 120), (70, 120)),
    "ack": ((60, 80),),
    "error": ((100, 60), (0, 60), (100, 60), (0, 60), (100, 60)),
}
MOTOR_FREQ_HZ = 20_000  # above hearing; the motor sees the mean voltage
BUZZER_FREQ_HZ = 2_700  # a passive buzzer's resonance


class Haptics:
    def __init__(self, pin, kind="motor"):
        self.kind = kind
        self.freq_hz = BUZZER_FREQ_HZ if kind == "buzzer" else MOTOR_FREQ_HZ
        self.pwm = PWM(Pin(pin, Pin.OUT), freq=self.freq_hz, duty_u16=0)
        self._task = None
        self.played = []  # names, newest last (status/tests)

    def _duty(self, pct):
        if self.kind == "buzzer":  # a buzzer is loud at 50 %: scale volume up to that
            pct = pct // 2
        return pct * 65535 // 100

    def buzz(self, name, intensity_pct=0, repeat=0, pulses=None):
        """Start pattern ``name`` (or "custom" with ``pulses`` = ((on_ms, off_ms), ...)).

        ``intensity_pct`` 0 = the pattern's own strength; ``repeat`` extra times. False if unknown.
        """
        if name == "custom":
            if not pulses:
                return False
            pat = []
            for on, off in pulses:
                pat.append((100, on))
                pat.append((0, off))
        else:
            pat = PATTERNS.get(name)
            if pat is None:
                return False
        if intensity_pct:
            pat = [(min(100, p * intensity_pct // 100) if p else 0, ms) for p, ms in pat]
        if repeat:
            pat = list(pat) + [(0, 300)]
            pat = pat * (1 + min(repeat, 5))
        if self._task is not None:
            self._task.cancel()
        self.played.append(name)
        if len(self.played) > 8:
            self.played.pop(0)
        self._task = asyncio.create_task(self._play(pat))
        return True

    async def _play(self, pat):
        try:
            for pct, ms in pat:
                self.pwm.duty_u16(self._duty(pct))
                await asyncio.sleep_ms(ms)
        finally:
            self.pwm.duty_u16(0)

    @property
    def busy(self):
        return self._task is not None and not self._task.done()
