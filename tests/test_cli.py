import subprocess
import sys

from tiltguard import cli


def test_help_lists_every_available_command(capsys):
    assert cli.main([]) == 2
    out = capsys.readouterr().out
    for name in cli._available():
        assert name in out


def test_tiltguard_error_becomes_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("t_s,ax_g\n0,1\n")
    proc = subprocess.run([sys.executable, "-m", "tiltguard", "analyze", str(bad), "-o", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert proc.stderr.startswith("tiltguard: error:") and "missing required column" in proc.stderr
    assert "Traceback" not in proc.stderr
