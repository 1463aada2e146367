"""`tiltguard demo` runs the live pipeline on a replayed session and prints the summary (no hardware)."""

from __future__ import annotations

from tiltguard.cli import main
from tiltguard.formats.session import read_outputs, read_session_meta


def test_demo_replays_through_the_live_pipeline(tmp_path, capsys):
    from tiltguard.sim import simulate_session

    src = simulate_session(tmp_path / "run", minutes=1.5, seed=2, scenario="steady")
    out = tmp_path / "demo"
    assert main(["demo", "--session", str(src), "-o", str(out), "--no-ui"]) == 0
    text = capsys.readouterr().out
    assert "replaying" in text and "Cadence" in text and f"Session folder   {out}" in text
    res = read_outputs(out)
    assert res.summary["n_strides"] == len(res.strides) > 20
    assert read_session_meta(out)["source"] == "replay"
    assert (out / "stream.tgl").stat().st_size > 100_000
    # a second demo into the same folder is refused with one line, not mixed into it
    assert main(["demo", "--session", str(src), "-o", str(out), "--no-ui"]) == 2
    assert "already holds a session" in capsys.readouterr().err
