"""Small JSON config file, written atomically (temp file + os.rename).

A crash between the write and the rename leaves the old file intact; the stray temp file is
ignored and removed at the next load. Unknown keys in the file are kept; missing keys get defaults.
"""

import json
import os

DEFAULTS = {
    # keys named as wire.CFG_NAMES where a control command sets them
    "board": "ref",
    "rate_hz": 200,  # IMU output data rate (Hz)
    "mode": 0,  # wire.MODE_COMPACT
    "link": 0,  # wire.LINK_BLE / LINK_SERIAL / LINK_BOTH at boot
    "always_log": 0,  # 1: log to flash even while a host streams
    "bonded_only": 0,  # 1: only a bonded host may send control commands
    "cue_threshold": 400,  # on-device drift cue: 0.01 deg above the stride baseline; 0 = off
    "idle_sleep_s": 600,  # deep sleep after this long idle; 0 = never
    "mount": None,  # calibration (fusion.calibration_to_dict): mounting rotation + gyro bias
}


class Config:
    def __init__(self, path="/config.json"):
        self.path = path
        self.data = dict(DEFAULTS)
        self.load()

    def load(self):
        try:
            os.remove(self.path + ".tmp")  # a crash before the rename: the old file still stands
        except OSError:
            pass
        try:
            with open(self.path) as f:
                d = json.load(f)
            if isinstance(d, dict):
                self.data.update(d)
        except (OSError, ValueError):
            pass  # missing or unreadable: defaults
        return self.data

    def save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f)
            f.flush()
        os.rename(tmp, self.path)

    def __getitem__(self, k):
        return self.data[k]

    def get(self, k, default=None):
        return self.data.get(k, default)

    def set(self, k, v, save=True):
        self.data[k] = v
        if save:
            self.save()
