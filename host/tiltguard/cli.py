"""Command line: argument parsing only.

Each sub-command lives in its own module, which provides
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported
lazily, so ``tiltguard --help`` stays fast and one broken extra never takes
the others down.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from tiltguard.errors import TiltguardError

# name -> (module, one-line help). Order is the order shown in --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("tiltguard.commands.demo", "simulate or load a bundled run, analyse it and summarise it"),
    "simulate": ("tiltguard.sim.cli", "simulate a run of a sacrum-worn IMU with exact ground truth"),
    "analyze": ("tiltguard.core.cli", "turn a raw recording into steps, strides, alerts and a summary"),
    "score": ("tiltguard.sim.score_cli", "score analysis outputs against simulator truth"),
    "live": ("tiltguard.live.cli", "record and analyse a run live over BLE, serial or replay"),
    "devices": ("tiltguard.transport.devices_cli", "list tiltguard clips in Bluetooth range"),
    "download": ("tiltguard.coach.download_cli", "download logged runs from the clip's flash"),
    "export": ("tiltguard.coach.export_cli", "export a session as CSV, parquet, xlsx or FIT"),
    "report": ("tiltguard.coach.report_cli", "write a self-contained HTML report of a session"),
    "trends": ("tiltguard.coach.trends_cli", "summarise trends across many sessions"),
    "flash": ("tiltguard.commands.flash", "install the firmware on a board with mpremote"),
}


def _available() -> dict[str, tuple[str, str]]:
    out = {}
    for name, (mod, help_) in COMMANDS.items():
        if importlib.util.find_spec(mod.rsplit(".", 1)[0]) is None:
            continue
        try:
            if importlib.util.find_spec(mod) is None:
                continue
        except ModuleNotFoundError:
            continue
        out[name] = (mod, help_)
    return out


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The parser; only the selected command's module is imported (to add its arguments)."""
    parser = argparse.ArgumentParser(
        prog="tiltguard",
        description="Pelvic tilt, obliquity and rotation for runners from a waist-worn IMU clip.",
    )
    from tiltguard import __version__

    parser.add_argument("--version", action="version", version=f"tiltguard {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (mod, help_) in _available().items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_module=mod)
        if name == selected:
            importlib.import_module(mod).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    selected = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(selected)
    args = parser.parse_args(argv)
    if not getattr(args, "_module", None):
        parser.print_help()
        return 2
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except TiltguardError as exc:
        print(f"tiltguard: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tiltguard: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
