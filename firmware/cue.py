"""On-device drift cue: buzz when stride-mean tilt drifts above the runner's own baseline.

For runs logged without a phone. Steps are peaks of the vertical specific force (ax above
STEP_G with a refractory time); two steps make a stride; the stride's mean tilt feeds:

  baseline  mean of strides WARM..WARM+BASE (the runner settled, early in the run)
  excess    EMA over ~8 strides of (stride mean - baseline), 0.01 deg
  alert     excess > threshold for HOLD strides in a row -> "alert" buzz + EV_CUE; then
            quiet for COOLDOWN strides (alerts are rare and never nag)
  recovered excess < threshold / 2 for HOLD strides after an alert -> "recovered" buzz

Integer math on the ring's wire units only: no allocation per sample.
"""

from micropython import const

STEP_LSB = const(3686)  # 1.8 g in 1/2048 g: a running footstrike
REFRACT = const(50)  # samples (250 ms at 200 Hz) before another step can start
WARM = const(30)  # strides skipped at the start (getting into the run)
BASE = const(60)  # strides forming the baseline
HOLD = const(10)
COOLDOWN = const(300)  # strides (~4 min) between alerts
_MISSING = const(-32768)


class Cue:
    def __init__(self, threshold_cdeg=400, on_alert=None, on_recovered=None, ring_len=1024, width=9):
        self.threshold_cdeg = threshold_cdeg
        self.on_alert = on_alert  # f(excess_cdeg)
        self.on_recovered = on_recovered
        self.mask = ring_len - 1
        self.w = width
        self.reset()

    def reset(self):
        self.since_step = REFRACT
        self.steps = 0
        self.strides = 0
        self.acc = 0  # tilt sum over the current stride
        self.cnt = 0
        self.base_sum = 0
        self.baseline = None
        self.excess = 0
        self.over = 0
        self.under = 0
        self.alerted = False
        self.quiet = 0
        self.alerts = 0
        self.last_mean = 0

    def feed(self, ring, slot, n):
        """Look at n new ring samples from ``slot`` (wire units: tilt cdeg at 0, ax at 3)."""
        if self.threshold_cdeg <= 0:
            return
        mask = self.mask
        w = self.w
        for i in range(n):
            o = ((slot + i) & mask) * w
            tilt = ring[o]
            if tilt == _MISSING:
                continue  # no calibration, no angles: nothing to compare
            self.acc += tilt
            self.cnt += 1
            self.since_step += 1
            if ring[o + 3] > STEP_LSB and self.since_step >= REFRACT:
                self.since_step = 0
                self.steps += 1
                if not self.steps & 1 and self.cnt:
                    self._stride(self.acc // self.cnt)
                    self.acc = 0
                    self.cnt = 0

    def _stride(self, mean):
        self.strides += 1
        self.last_mean = mean
        k = self.strides - WARM
        if k <= 0:
            return
        if k <= BASE:
            self.base_sum += mean
            if k == BASE:
                self.baseline = self.base_sum // BASE
            return
        self.excess += (mean - self.baseline - self.excess) // 8
        if self.quiet:
            self.quiet -= 1
        th = self.threshold_cdeg
        if self.excess > th:
            self.over += 1
            self.under = 0
            if self.over >= HOLD and not self.alerted and not self.quiet:
                self.alerted = True
                self.alerts += 1
                self.quiet = COOLDOWN
                if self.on_alert:
                    self.on_alert(self.excess)
        elif self.excess < th // 2:
            self.under += 1
            self.over = 0
            if self.alerted and self.under >= HOLD:
                self.alerted = False
                if self.on_recovered:
                    self.on_recovered(self.excess)
        else:
            self.over = self.under = 0
