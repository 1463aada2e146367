"""Terminal dashboard (rich) and the plain ``--no-ui`` status line, both read a LiveSession."""

from __future__ import annotations

import time

import numpy as np


def _f(v, fmt="{:.1f}", unit=""):
    try:
        if v is None or not np.isfinite(float(v)):
            return "-"
    except (TypeError, ValueError):
        return "-"
    return fmt.format(float(v)) + unit


def _elapsed(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def snapshot(ls) -> dict:
    """The figures the dashboard shows, as plain values."""
    st = ls.stats()
    det = ls.analyzer.detector
    base = (det.baseline or {}).get("tilt_deg")
    stride = ls.last_stride or {}
    tilt = stride.get("tilt_mean_deg")
    if det.baseline is None:
        drift = "baseline: collecting"
    elif det.active.get("anterior_tilt_drift"):
        drift = "DRIFT ALERT active"
    else:
        drift = f"ok (cusum {det.tilt.s:.0f}/{det.tilt.h:.0f} deg*s)"
    bat = None if ls.status is None or ls.status.battery_pct == 255 else ls.status.battery_pct
    if bat is None:
        bat = getattr(ls.t, "battery_pct", None)  # BLE Battery Level characteristic
    return {
        "elapsed": _elapsed(time.monotonic() - ls.started), "stream_time": _elapsed(ls.t_stream_s),
        "tilt_deg": tilt, "baseline_deg": base,
        "excess_deg": None if tilt is None or base is None else float(tilt) - float(base),
        "drift": drift, "cadence_spm": stride.get("cadence_spm"), "gct_ms": ls.last_gct_ms,
        "obliquity_rom_deg": stride.get("obliquity_rom_deg"), "rotation_rom_deg": stride.get("rotation_rom_deg"),
        "strides": len(ls.analyzer.strides) if hasattr(ls.analyzer, "strides") else 0,
        # the last stride shown is provisional (core.provisional) once the analyser has calibrated
        "stride_source": "live" if getattr(ls, "provisional", None) is not None else "final",
        "live_strides": getattr(getattr(ls, "provisional", None), "given", 0),
        "alerts": len(ls.alert_rows), "rssi_dbm": ls.t.rssi_dbm, "mtu": ls.t.mtu,
        "received": st["samples_received"], "lost": st["samples_lost"], "missing": st["samples_abandoned"],
        "backfilled": st["samples_backfilled"],
        "rejected": sum(v for k, v in st.items() if k.startswith("rejected_")),
        "reconnects": st["reconnects"], "battery_pct": bat, "connected": ls.connected,
        "next_seq": ls.decoder.seq.next,
    }


def status_line(ls) -> str:
    s = snapshot(ls)
    return (f"t={s['stream_time']} strides={s['strides']} live={s['live_strides']} tilt={_f(s['tilt_deg'])} "
            f"base={_f(s['baseline_deg'])} "
            f"drift={s['drift']} cadence={_f(s['cadence_spm'], '{:.0f}')} gct={_f(s['gct_ms'], '{:.0f}')}ms "
            f"rx={s['received']} lost={s['lost']} backfilled={s['backfilled']} missing={s['missing']} "
            f"rejected={s['rejected']} alerts={s['alerts']} next_seq={s['next_seq']}")


def render(ls):
    """A rich renderable of the session state."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table

    s = snapshot(ls)
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold")
    t.add_column()
    ex = s["excess_deg"]
    ex_txt = "" if ex is None else f"  ({ex:+.1f} deg vs baseline)"
    t.add_row("Anterior tilt", f"{_f(s['tilt_deg'], unit=' deg')}  baseline {_f(s['baseline_deg'], unit=' deg')}{ex_txt}"
                               f"  [dim]({s['stride_source']} stride)[/]")
    style = "bold red" if "ALERT" in s["drift"] else "green"
    t.add_row("Drift", f"[{style}]{s['drift']}[/]")
    t.add_row("Cadence", _f(s["cadence_spm"], "{:.0f}", " steps/min"))
    t.add_row("Contact time", _f(s["gct_ms"], "{:.0f}", " ms"))
    t.add_row("Obliquity ROM", _f(s["obliquity_rom_deg"], unit=" deg"))
    t.add_row("Rotation ROM", _f(s["rotation_rom_deg"], unit=" deg"))
    link = "[green]connected[/]" if s["connected"] else "[red]down[/]"
    t.add_row("Link", f"{link} {ls.t.description}  RSSI {_f(s['rssi_dbm'], '{:.0f}', ' dBm')}  "
                      f"MTU {s['mtu'] or '-'}  reconnects {s['reconnects']}")
    t.add_row("Samples", f"{s['received']} received, {s['lost']} lost, {s['backfilled']} backfilled, "
                         f"{s['missing']} missing, {s['rejected']} bad frames")
    t.add_row("Battery", _f(s["battery_pct"], "{:.0f}", " %"))
    t.add_row("Elapsed", f"{s['elapsed']} (run time {s['stream_time']}), {s['live_strides']} strides live, "
                         f"{s['strides']} final, {s['alerts']} alerts")
    msgs = "\n".join(ls.messages[-6:]) or "-"
    return Group(Panel(t, title="tiltguard live"), Panel(msgs, title="messages"))
