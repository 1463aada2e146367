"""Runner cues: turn the detector's alerts into a haptic command for the clip and an optional host sound."""

from __future__ import annotations

import shutil
import subprocess
import sys

from tiltguard.live.config import AlertPolicy
from tiltguard.protocol import commands


class Cues:
    """Decides per alert what to send (policy: per-kind action + a minimum interval between cues)."""

    def __init__(self, policy: AlertPolicy):
        self.policy = policy
        self.last_cue_t = -float("inf")
        self._tts = next((shutil.which(x) for x in ("espeak-ng", "espeak", "spd-say") if shutil.which(x)), None)

    def plan(self, alert: dict) -> dict | None:
        """Buzz arguments for an alert (None: nothing to send); updates the rate limit."""
        act = self.policy.actions.get(alert["kind"])
        if act is None or not act.buzz:
            return None
        if alert["t_s"] - self.last_cue_t < self.policy.min_interval_s and alert["kind"] != "recovered":
            return None
        self.last_cue_t = alert["t_s"]
        return {"pattern": act.buzz, "intensity_pct": act.intensity_pct, "repeat": act.repeat}

    def command(self, token: int, args: dict) -> bytes:
        return commands.encode("buzz", token, **args)

    def sound(self, alert: dict) -> str:
        """Play the host cue if enabled; returns what was played ("" when nothing). Never raises."""
        act = self.policy.actions.get(alert["kind"])
        if not self.policy.sound or act is None or not act.say:
            return ""
        try:
            if self._tts:
                subprocess.Popen([self._tts, act.say], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                return "say"
            sys.stderr.write("\a")  # terminal bell: the one sound every host has
            sys.stderr.flush()
            return "bell"
        except OSError:
            return ""
