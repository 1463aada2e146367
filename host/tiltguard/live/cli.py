"""``tiltguard live --ble [NAME|ADDRESS] | --serial [PORT] | --replay FILE [--speed N|max] [--session DIR]``."""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import signal
import sys
from pathlib import Path

from tiltguard.errors import InputError


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--ble", nargs="?", const="", metavar="NAME|ADDRESS",
                     help="record from a clip over Bluetooth (default: the first clip found)")
    src.add_argument("--serial", nargs="?", const="", metavar="PORT",
                     help="record from a clip on USB serial (default: detect its port)")
    src.add_argument("--replay", metavar="FILE", help="replay a stream.tgl, raw CSV or session folder")
    p.add_argument("--speed", default="1", metavar="N|max",
                   help="replay speed: a factor of real time, or max for as fast as possible (default 1)")
    p.add_argument("--session", type=Path, metavar="DIR",
                   help="session folder (default: a new dated folder under your data directory); "
                        "an existing one is resumed")
    p.add_argument("--config", metavar="FILE.toml", help="alert and analysis settings (docs/live.md)")
    p.add_argument("--no-ui", action="store_true", help="plain log lines instead of the dashboard")
    p.add_argument("--sound", action="store_true", help="also play host sounds / spoken cues for alerts")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds of wall time")
    p.add_argument("--idle-exit", type=float, metavar="S",
                   help="stop when no sample has arrived for S seconds (scripts)")
    p.add_argument("--mode", choices=("compact", "full"),
                   help="ask the clip for compact (angles + acc) or full (+ gyro) samples (default: as set)")
    p.add_argument("--calibrate", action="store_true",
                   help="calibrate the clip at connect (stand still for 3 s); it keeps the calibration")
    p.add_argument("--baud", type=int, default=921600, help="serial baud rate (default 921600)")


def default_session_dir(now: _dt.datetime | None = None) -> Path:
    import platformdirs

    now = now or _dt.datetime.now()
    return Path(platformdirs.user_data_dir("tiltguard")) / "sessions" / now.strftime("%Y-%m-%d_%H%M%S")


def parse_speed(text: str) -> float | None:
    if str(text).lower() == "max":
        return None
    try:
        v = float(text)
    except ValueError:
        raise InputError(f"--speed must be a number or max (got {text!r})") from None
    if not v > 0:
        raise InputError(f"--speed must be > 0 (got {text})")
    return v


def log_end_seq(session_dir: Path) -> int | None:
    """One past the highest sample index already in a session's log (None when there is none)."""
    from tiltguard.formats.sessionlog import read_sessionlog
    from tiltguard.protocol import frames as fr

    p = session_dir / "stream.tgl"
    if not p.exists() or p.stat().st_size == 0:
        return None
    b = read_sessionlog(p).samples()
    return int(fr.unwrap_seq(b.seq).max()) + 1 if len(b) else None


def make_transport(args, session_dir: Path):
    from tiltguard.transport import open_transport

    if args.replay is not None:
        return open_transport("replay", args.replay, speed=parse_speed(args.speed),
                              skip_to_seq=log_end_seq(session_dir)), "replay"
    if args.serial is not None:
        return open_transport("serial", args.serial or None, baud=args.baud), "serial"
    return open_transport("ble", args.ble or None), "ble"


async def run_session(session, ui: bool) -> dict:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, session.stop)
        except (NotImplementedError, RuntimeError):
            pass
    if not ui:
        async def status():
            from tiltguard.live.dashboard import status_line

            while True:
                await asyncio.sleep(1.0)
                session.printer(status_line(session))

        task = asyncio.create_task(status())
        try:
            return await session.run()
        finally:
            task.cancel()
    from rich.live import Live

    from tiltguard.live.dashboard import render

    with Live(render(session), refresh_per_second=4, transient=False) as live:
        async def refresh():
            while True:
                await asyncio.sleep(0.25)
                live.update(render(session))

        task = asyncio.create_task(refresh())
        try:
            return await session.run()
        finally:
            task.cancel()
            live.update(render(session))


def live_main(args, session_dir: Path | None = None, ui: bool | None = None) -> tuple[Path, dict]:
    from tiltguard.live.config import load_live_config
    from tiltguard.live.pipeline import LiveSession

    cfg = load_live_config(args.config)
    if getattr(args, "sound", False):
        cfg.alerts.sound = True
    sdir = Path(session_dir or args.session or default_session_dir())
    if sdir.exists() and not sdir.is_dir():
        raise InputError(f"{sdir}: exists and is not a folder")
    transport, source = make_transport(args, sdir)
    ui = (not args.no_ui) if ui is None else ui
    printer = None if ui else (lambda line: print(line, flush=True))
    session = LiveSession(sdir, transport, cfg, source=source, duration_s=args.duration, printer=printer,
                          idle_exit_s=getattr(args, "idle_exit", None), mode=getattr(args, "mode", None),
                          calibrate=getattr(args, "calibrate", False))
    summary = asyncio.run(run_session(session, ui))
    return sdir, summary


def run(args) -> int:
    from tiltguard.commands.demo import describe
    from tiltguard.formats.session import read_outputs

    sdir, summary = live_main(args)
    out = read_outputs(sdir) if (sdir / "strides.csv").exists() else None
    if out is not None and "duration_s" in summary:
        print(describe(summary, out.alerts))
    link = summary.get("link", {})
    print(f"Samples          {link.get('samples_received', 0)} received, {link.get('samples_backfilled', 0)} "
          f"backfilled, {summary.get('missing_samples', 0)} missing")
    print(f"Session folder   {sdir}")
    sys.stdout.flush()
    return 0
