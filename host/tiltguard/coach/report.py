"""One self-contained HTML report of a session (inline CSS and SVG, no scripts, nothing fetched)."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from tiltguard.coach import html as H
from tiltguard.coach.reading import NOT_A_DIAGNOSIS, Reading, read
from tiltguard.coach.session import Session

plt = H.plt
SMOOTH = 15       # strides in the rolling median drawn over the stride dots
C_L, C_R, C_EARLY, C_LATE = "#1f77b4", "#d62728", "#1f77b4", "#d62728"


def _roll(y: pd.Series, n: int = SMOOTH) -> np.ndarray:
    return pd.Series(np.asarray(y, float)).rolling(n, center=True, min_periods=max(1, n // 3)).median().to_numpy()


def _robust_ylim(ax, *series, pad: float = 0.15) -> None:
    """Y range from the 0.5-99.5 % of the values: one odd stride must not flatten the plot."""
    v = np.concatenate([np.asarray(x, float) for x in series])
    v = v[np.isfinite(v)]
    if len(v) < 10:
        return
    lo, hi = np.percentile(v, [0.5, 99.5])
    span = max(hi - lo, 0.5)
    ax.set_ylim(lo - pad * span, hi + pad * span)


def _minutes(t) -> np.ndarray:
    return np.asarray(t, float) / 60.0


def drift_episodes(summary: dict, alerts: pd.DataFrame, t_end_s: float) -> list[tuple[float, float]]:
    """(start, end) in s of each tilt drift episode: drift alert (or summary onset) until 'recovered' or the end."""
    eps = []
    if len(alerts):
        a = alerts.sort_values("t_s")
        start = None
        for t, kind in zip(a["t_s"].astype(float), a["kind"].astype(str)):
            if kind == "anterior_tilt_drift" and start is None:
                start = t
            elif kind == "recovered" and start is not None:
                eps.append((start, t))
                start = None
        if start is not None:
            eps.append((start, t_end_s))
    onset = summary.get("drift_onset_s")
    if onset is not None:
        onset = float(onset)
        if eps and eps[0][0] >= onset:
            eps[0] = (onset, eps[0][1])
        elif not eps:
            eps.append((onset, t_end_s))
    return eps


SMALL = (5.2, 3.0)   # inches: one panel, readable at phone width


def _dots_and_trend(ax, t, y, dot_color: str, line_color: str) -> None:
    """Every stride as a dot, the rolling median as a line, y range robust to odd strides."""
    ax.plot(t, y, ".", ms=2, color=dot_color)
    ax.plot(t, _roll(y), color=line_color)
    _robust_ylim(ax, y)


def _panel(title: str, ylabel: str = "", xlabel: str = "time (min)"):
    fig, ax = plt.subplots(figsize=SMALL)
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    return fig, ax


def _legend(ax, ncol: int = 2) -> None:
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=9, ncol=ncol, frameon=False)


def fig_tilt(s: Session) -> str:
    st, summ, al = s.strides, s.out.summary, s.out.alerts
    t = _minutes(st["t_start_s"])
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    ax.plot(t, st["tilt_mean_deg"], ".", ms=2.5, color="#9aa5b1", label="stride mean")
    ax.plot(t, _roll(st["tilt_mean_deg"]), color="#1d2430", lw=1.8, label=f"median of {SMOOTH} strides")
    base = summ.get("tilt_baseline_deg")
    _robust_ylim(ax, st["tilt_mean_deg"], [] if base is None else [float(base)])
    if base is not None:
        ax.axhline(float(base), color="#067647", ls="--", lw=1.4, label=f"your baseline {float(base):.1f}°")
    for i, (a, b) in enumerate(drift_episodes(summ, al, float(st["t_end_s"].max()))):
        ax.axvspan(a / 60, b / 60, color="#f79009", alpha=0.18, label="drift episode" if i == 0 else None)
    if len(al):
        lo, hi = ax.get_ylim()
        y = hi + 0.04 * (hi - lo)
        marks = {"anterior_tilt_drift": ("v", "#b54708", "tilt alert"), "recovered": ("^", "#067647", "recovered"),
                 "pelvic_drop": ("D", "#7a2e0e", "pelvic drop alert"), "rotation_rom": ("s", "#6941c6", "rotation alert")}
        for kind, grp in al.groupby("kind"):
            m, c, lab = marks.get(str(kind), ("o", "#444", str(kind)))
            ax.plot(_minutes(grp["t_s"]), np.full(len(grp), y), m, color=c, ms=9, label=lab, clip_on=False)
        ax.set_ylim(lo, hi)
    ax.set_xlabel("time (min)")
    ax.set_ylabel("anterior tilt (deg)")
    _legend(ax, ncol=3)
    return H.figure(fig, "anterior tilt over time", "Stride-by-stride anterior pelvic tilt, your early-run baseline, "
                    "the drift episode (shaded) and the alerts (markers above the plot).")


def fig_frontal(s: Session) -> list[str]:
    st = s.strides
    t = _minutes(st["t_start_s"])
    f1, a1 = _panel("pelvic drop in stance", "deg")
    a1.plot(t, _roll(st["pelvic_drop_l_deg"]), color=C_L, label="left stance")
    a1.plot(t, _roll(st["pelvic_drop_r_deg"]), color=C_R, label="right stance")
    _legend(a1)
    f2, a2 = _panel("obliquity range", "deg")
    _dots_and_trend(a2, t, st["obliquity_rom_deg"], "#b0b8c1", "#1d2430")
    f3, a3 = _panel("rotation range", "deg")
    _dots_and_trend(a3, t, st["rotation_rom_deg"], "#c3b5fd", "#6941c6")
    return [H.figure(f1, "pelvic drop"), H.figure(f2, "obliquity range"), H.figure(f3, "rotation range")]


def fig_gait(s: Session) -> list[str]:
    st, sp = s.strides, s.steps
    t = _minutes(st["t_start_s"])
    f1, a1 = _panel("cadence", "steps/min")
    _dots_and_trend(a1, t, st["cadence_spm"], "#b0b8c1", "#1d2430")
    f2, a2 = _panel("contact time", "ms")
    f3, a3 = _panel("vertical oscillation", "cm")
    if len(sp):
        for side, c in (("L", C_L), ("R", C_R)):
            g = sp[sp["side"].astype(str) == side]
            a2.plot(_minutes(g["t_ic_s"]), _roll(g["gct_ms"]), color=c, label=f"{side} stance")
            a3.plot(_minutes(g["t_ic_s"]), _roll(g["vertical_oscillation_cm"]), color=c, label=f"{side} stance")
        _legend(a3)
    else:
        a2.plot(t, _roll(st["gct_l_ms"]), color=C_L, label="L stance")
        a2.plot(t, _roll(st["gct_r_ms"]), color=C_R, label="R stance")
        a3.text(0.5, 0.5, "no step data", ha="center", transform=a3.transAxes)
    _legend(a2)
    return [H.figure(f1, "cadence"), H.figure(f2, "contact time"), H.figure(f3, "vertical oscillation")]


def fig_curves(s: Session) -> list[str]:
    cv = s.out.curves
    if cv is None or cv.empty:
        return []
    out = []
    for name in ("tilt", "obliquity", "rotation"):
        f, a = _panel(f"{name}, early vs late", "deg", "% of stride (from left contact)")
        a.plot(cv["pct"], cv[f"{name}_early_deg"], color=C_EARLY, label="early")
        a.plot(cv["pct"], cv[f"{name}_late_deg"], color=C_LATE, label="late")
        _legend(a)
        out.append(H.figure(f, f"{name} curve early vs late"))
    return out


def fig_watch(s: Session) -> list[str]:
    st = s.strides
    t = _minutes(st["t_start_s"])
    names = {"speed_mps": ("speed", "m/s"), "grade_pct": ("grade", "%"), "hr_bpm": ("heart rate", "beats/min")}
    out = []
    for c, (title, unit) in names.items():
        if c in st and np.isfinite(st[c].astype(float)).any():
            f, a = _panel(title, unit)
            a.plot(t, st[c].astype(float), color="#1d2430")
            out.append(H.figure(f, title))
    return out


def lr_table(s: Session) -> str:
    st, sp = s.strides, s.steps
    rows = []

    def row(name, l, r, spec=".1f"):
        l, r = float(l), float(r)
        asym = 200 * (l - r) / (r + l) if np.isfinite(l + r) and (r + l) else float("nan")  # as gct_asymmetry_pct
        rows.append([name, H.fmt(l, spec), H.fmt(r, spec), H.fmt(asym, "+.1f", " %")])

    if len(sp):
        by = {k: g for k, g in sp.groupby(sp["side"].astype(str))}
        L, R = by.get("L", sp.iloc[:0]), by.get("R", sp.iloc[:0])
        row("contact time (ms)", L["gct_ms"].mean(), R["gct_ms"].mean(), ".0f")
        row("flight time (ms)", L["flight_ms"].mean(), R["flight_ms"].mean(), ".0f")
        row("vertical oscillation (cm)", L["vertical_oscillation_cm"].mean(), R["vertical_oscillation_cm"].mean())
        row("braking peak (g)", L["braking_peak_g"].mean(), R["braking_peak_g"].mean(), ".2f")
        row("steps", len(L), len(R), ".0f")
    else:
        row("contact time (ms)", st["gct_l_ms"].mean(), st["gct_r_ms"].mean(), ".0f")
    row("pelvic drop in stance (deg)", st["pelvic_drop_l_deg"].mean(), st["pelvic_drop_r_deg"].mean())
    return H.table(["", "left", "right", "L vs R"], rows)


def changes_table(r: Reading) -> str:
    rows = [[c.name + f" ({c.unit})", H.fmt(c.early, ".1f" if c.unit != "g" else ".2f"),
             H.fmt(c.late, ".1f" if c.unit != "g" else ".2f"), H.fmt(c.delta, "+.1f" if c.unit != "g" else "+.2f")]
            for c in r.changes.values()]
    return H.table(["metric", "early", "late", "change"], rows)


def summary_cards(s: Session) -> str:
    m = s.out.summary
    st = s.strides
    return H.cards([
        ("running time", H.mmss(m.get("running_s"))),
        ("strides", H.fmt(m.get("n_strides", len(st)), ".0f")),
        ("cadence", H.fmt(m.get("cadence_spm"), ".0f", " spm")),
        ("contact time", H.fmt(m.get("gct_ms"), ".0f", " ms")),
        ("baseline tilt", H.fmt(m.get("tilt_baseline_deg"), ".1f", "°")),
        ("drift onset", H.mmss(m["drift_onset_s"]) if m.get("drift_onset_s") is not None else "none"),
        ("alerts", H.fmt(m.get("alerts", len(s.out.alerts)), ".0f")),
        ("data gaps", H.fmt(len(m.get("gaps") or []), ".0f")),
    ])


def build(s: Session) -> str:
    """The report page of a session as HTML text."""
    start = s.start
    when = start.strftime("%Y-%m-%d %H:%M %Z").strip() if start else "unknown start time"
    title = f"tiltguard report – {s.athlete if s.meta.get('athlete') else s.name} – {when}"
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p class='sub'>Session {html.escape(s.name)} · source {html.escape(str(s.meta.get('source', '?')))}"
             f" · duration {H.mmss(s.out.summary.get('duration_s'))}</p>",
             "<h2>Summary</h2>", summary_cards(s)]
    if len(s.strides) == 0:
        parts.append("<p class='flag'>No running strides were found in this session: nothing to plot.</p>")
        return H.page(title, "".join(parts))
    r = read(s.strides, s.steps, s.out.summary, s.out.alerts)
    reading = "".join(f"<p class='{lvl}'>{html.escape(txt)}</p>" for lvl, txt in r.findings)
    span = ""
    if r.early_span_s:
        span = (f" Early = {H.mmss(r.early_span_s[0])}–{H.mmss(r.early_span_s[1])}, late = "
                f"{H.mmss(r.late_span_s[0])}–{H.mmss(r.late_span_s[1])}.")
    parts += [
        "<h2>What changed as you tired</h2>", f"<div class='reading'>{reading}</div>",
        f"<p class='note'><b>Not a diagnosis.</b> {html.escape(NOT_A_DIAGNOSIS)}</p>",
        changes_table(r), f"<p class='sub'>Means over the first and last 20 % of running strides.{span}</p>",
        "<h2>Anterior tilt</h2>", fig_tilt(s),
        "<h2>Obliquity, pelvic drop and rotation</h2>",
        H.grid(fig_frontal(s), f"Per stride; lines are medians of {SMOOTH} strides."),
        "<h2>Cadence, contact time, vertical oscillation</h2>",
        H.grid(fig_gait(s), "Cadence per stride; contact time and vertical oscillation per step by stance side."),
        "<h2>Stride curves, early vs late</h2>",
    ]
    curves = fig_curves(s)
    parts.append(H.grid(curves, "Mean stride-normalised angles over the first (early) and last (late) part of "
                        "the run.") if curves else "<p class='sub'>No stride curves in this session (no curves.csv).</p>")
    watch = fig_watch(s)
    if watch:
        parts += ["<h2>Speed, grade and heart rate</h2>", H.grid(watch, "From the watch, aligned by time.")]
    parts += ["<h2>Left and right</h2>", lr_table(s)]
    return H.page(title, "".join(parts))


def write_report(s: Session, out: str | Path) -> Path:
    from tiltguard.formats.session import atomic_write_text

    return atomic_write_text(out, build(s))
