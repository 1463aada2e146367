"""Live settings from one TOML file (``tiltguard live --config FILE``; documented in docs/live.md).

Tables: ``[drift]``, ``[orientation]``, ``[activity]``, ``[align]`` (the analysis settings, exactly as for
``tiltguard analyze --config``), ``[alerts]`` (what the runner feels/hears) and ``[alerts.KIND]`` per alert kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from tiltguard.core.pipeline import AnalysisConfig, config_tables, read_toml
from tiltguard.errors import InputError
from tiltguard.protocol import wire as w


@dataclass
class AlertAction:
    """What the host does for one alert kind."""

    buzz: str = "alert"          # clip haptic pattern: alert, recovered, ack, or "" for none
    intensity_pct: int = 0       # 0 = the clip's default
    repeat: int = 0              # 0 = the pattern's default
    say: str = ""                # spoken / sound cue on the host (only when [alerts] sound = true)


DEFAULT_ACTIONS = {
    "anterior_tilt_drift": AlertAction("alert", say="Pelvis tipping forward. Tall posture."),
    "recovered": AlertAction("recovered", say="Posture back to baseline."),
    "pelvic_drop": AlertAction("alert", repeat=1, say="Hips dropping. Squeeze your glutes."),
    "rotation_rom": AlertAction("", say=""),
}


@dataclass
class AlertPolicy:
    """Host-side rate limit on top of the detector's own hysteresis and cool-down (``[drift]``)."""

    min_interval_s: float = 60.0     # no two cues closer than this (stream time), whatever their kind
    sound: bool = False              # also play a sound / spoken cue on the host (never required)
    actions: dict[str, AlertAction] = field(default_factory=lambda: {k: AlertAction(**vars(v))
                                                                       for k, v in DEFAULT_ACTIONS.items()})


@dataclass
class LiveConfig:
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    alerts: AlertPolicy = field(default_factory=AlertPolicy)
    margin_s: float = 45.0           # core.stream: a stride is final this long after it ended
    hop_s: float = 5.0               # core.stream: re-analyse after this much new data (cues wait for it)
    flush_s: float = 0.25            # session log flush interval (<= 1 s)
    backfill_timeout_s: float = 30.0  # give up on a hole the clip has not resent after this long
    provisional: bool = True         # core.provisional strides for the dashboard (off: less CPU, final only)


def _assign(obj, values: dict, where: str, name: str) -> None:
    known = {f.name: f for f in fields(obj)}
    for k, v in values.items():
        if k not in known:
            raise InputError(f"{name}: [{where}] has no setting {k!r}")
        cur = getattr(obj, k)
        if isinstance(cur, bool):
            if not isinstance(v, bool):
                raise InputError(f"{name}: [{where}] {k} must be true or false")
        elif isinstance(cur, (int, float)):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise InputError(f"{name}: [{where}] {k} must be a number")
            v = type(cur)(v)
        elif isinstance(cur, str) and not isinstance(v, str):
            raise InputError(f"{name}: [{where}] {k} must be a string")
        setattr(obj, k, v)


def load_live_config(path: str | Path | None) -> LiveConfig:
    """Read a LiveConfig; unknown tables/keys or wrong types raise a one-line InputError."""
    cfg = LiveConfig()
    if path is None:
        return cfg
    p = Path(path)
    data = read_toml(p)
    targets = config_tables(cfg.analysis)
    for section, values in data.items():
        if not isinstance(values, dict):
            raise InputError(f"{p.name}: {section} must be a table")
        if section in targets:
            _assign(targets[section], values, section, p.name)
        elif section == "live":
            known = ("margin_s", "hop_s", "flush_s", "backfill_timeout_s", "provisional")
            bad = [k for k in values if k not in known]
            if bad:
                raise InputError(f"{p.name}: [live] has no setting {bad[0]!r} ({', '.join(known)})")
            _assign(cfg, values, "live", p.name)
        elif section == "alerts":
            plain = {k: v for k, v in values.items() if not isinstance(v, dict)}
            _assign_policy(cfg.alerts, plain, p.name)
            for kind, sub in values.items():
                if not isinstance(sub, dict):
                    continue
                if kind not in cfg.alerts.actions:
                    raise InputError(f"{p.name}: [alerts.{kind}] is not an alert kind "
                                     f"({', '.join(cfg.alerts.actions)})")
                _assign(cfg.alerts.actions[kind], sub, f"alerts.{kind}", p.name)
                b = cfg.alerts.actions[kind].buzz
                if b and b not in w.BUZZ_NAMES:
                    raise InputError(f"{p.name}: [alerts.{kind}] buzz must be one of "
                                     f"{', '.join(w.BUZZ_NAMES[:3])} or \"\"")
        else:
            raise InputError(f"{p.name}: unknown table [{section}] (use drift, orientation, activity, align, "
                             "alerts, live)")
    if not 0 < cfg.flush_s <= 1.0:
        raise InputError(f"{p.name}: [live] flush_s must be in (0, 1] s")
    return cfg


def _assign_policy(pol: AlertPolicy, values: dict, name: str) -> None:
    for k, v in values.items():
        if k == "min_interval_s" and isinstance(v, (int, float)) and not isinstance(v, bool):
            pol.min_interval_s = float(v)
        elif k == "sound" and isinstance(v, bool):
            pol.sound = v
        else:
            raise InputError(f"{name}: [alerts] {k} is unknown or has the wrong type "
                             "(min_interval_s = number, sound = true/false)")
