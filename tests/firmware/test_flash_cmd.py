"""`tiltguard flash --dry-run` prints exactly the mpremote commands that install the firmware."""

import shlex
from pathlib import Path

import pytest

from tiltguard.cli import main

ROOT = Path(__file__).resolve().parents[2]
FW = ROOT / "firmware"


def _modules():
    top = sorted(p.name for p in FW.glob("*.py"))
    imu = sorted("imu/" + p.name for p in (FW / "imu").glob("*.py"))
    return top + imu


def _lines(capsys, *argv):
    assert main(["flash", *argv]) == 0
    return [shlex.split(line) for line in capsys.readouterr().out.splitlines()]


def test_dry_run_copies_every_module_then_sets_board_and_resets(capsys):
    cmds = _lines(capsys, "--dry-run", "--port", "/dev/ttyACM0", "--board", "m5")
    con = ["mpremote", "connect", "/dev/ttyACM0"]
    assert all(c[:3] == con for c in cmds)
    assert cmds[0][3] == "exec" and "os.mkdir" in cmds[0][4] and '["imu"]' in cmds[0][4]
    cps = [c for c in cmds if c[3] == "cp"]
    assert [c[5] for c in cps] == [":" + m for m in _modules()]
    for c in cps:  # copies the real file (the wire.py symlink resolved to the shared module)
        src = Path(c[4])
        assert src.is_file() and src == (FW / c[5][1:]).resolve()
    assert any(Path(c[4]).name == "wire.py" and "protocol" in c[4] for c in cps)
    assert cmds[-2][3] == "exec" and 'Config().set("board", "m5")' in cmds[-2][4]
    assert cmds[-1] == con + ["reset"]
    assert len(cmds) == len(_modules()) + 3


def test_dry_run_mpy_cross_compiles_all_but_main(capsys):
    cmds = _lines(capsys, "--dry-run", "--mpy")
    comp = [c for c in cmds if c[0] == "mpy-cross"]
    names = [m for m in _modules() if m != "main.py"]
    assert [c[1] for c in comp] == ["-march=xtensawin"] * len(names)
    assert [c[3] for c in comp] == [str(Path("build") / Path(m).with_suffix(".mpy")) for m in names]
    cps = [c[5] for c in cmds if c[0] == "mpremote" and c[3] == "cp"]
    assert ":main.py" in cps and ":app.mpy" in cps and ":imu/__init__.mpy" in cps and ":app.py" not in cps
    rm = [c for c in cmds if c[0] == "mpremote" and c[3] == "exec" and "os.remove" in c[4]]
    assert rm and '"/app.py"' in rm[0][4]
    assert cmds[-1] == ["mpremote", "connect", "auto", "reset"]


def test_unknown_board_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["flash", "--dry-run", "--board", "nrf52"])
