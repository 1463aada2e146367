"""data/ holds small simulated sessions that the README's commands regenerate exactly."""

import gzip
import json
import re
import shlex
from pathlib import Path

import pytest

from tiltguard.cli import main
from tiltguard.formats.raw import read_raw
from tiltguard.formats.session import read_session_meta

DATA = Path(__file__).resolve().parents[2] / "data"
COMMANDS = re.findall(r"^tiltguard simulate .*$", (DATA / "README.md").read_text(), re.M)


def test_data_is_small_labelled_and_complete():
    total = sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file())
    assert total < 20e6
    assert len(COMMANDS) >= 2
    for cmd in COMMANDS:
        folder = DATA.parent / shlex.split(cmd)[3]
        meta = read_session_meta(folder)
        assert meta["simulated"] is True and meta["source"] == "simulated"
        assert "SIMULATED" in meta["notes"] and folder.name in (DATA / "README.md").read_text()
        rec = read_raw(folder / "raw.csv.gz")
        assert len(rec) > 1000
        for name in ("steps.csv", "strides.csv", "samples.csv", "drift.json", "mounting.json"):
            assert (folder / "truth" / name).exists()
    drift = json.loads((DATA / "sim-demo-drift" / "truth" / "drift.json").read_text())
    assert drift["cross3_s"] == pytest.approx(480.0)


def test_readme_command_regenerates_the_smallest_session(tmp_path):
    cmd = min(COMMANDS, key=lambda c: float(shlex.split(c)[shlex.split(c).index("--minutes") + 1]))
    argv = shlex.split(cmd)[1:]
    folder = DATA.parent / argv[2]
    argv[2] = str(tmp_path / "s")
    assert main(argv) == 0
    new = tmp_path / "s"
    assert gzip.decompress((new / "raw.csv.gz").read_bytes()) == gzip.decompress((folder / "raw.csv.gz").read_bytes())
    for name in ("session.json", "truth/steps.csv", "truth/strides.csv", "truth/samples.csv", "truth/drift.json"):
        assert (new / name).read_bytes() == (folder / name).read_bytes(), name
