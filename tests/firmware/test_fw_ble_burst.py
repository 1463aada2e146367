"""BLE data notifications leave in bursts NOTIFY_BURST_MS apart (PROTOCOL.md 1.1), nothing lost, commands not held up.

firmware/main.py's tasks run under the unix port with the fake bluetooth module; a simulated central connects,
streams 200 Hz compact at MTU 247 and sends a buzz. Every notification carries the fake's ``time.ticks_ms()``:
the clock asyncio sleeps on, so the run (and the fake IMU) goes at real speed, about 4 s.
"""

import numpy as np
import pytest

from tiltguard.protocol import frames as fr
from tiltguard.protocol import wire

from tests.firmware._mpyapp import data_seqs, decode_notifications, replies, run_check

BURST = wire.NOTIFY_BURST_MS
SAME_BURST_MS = 5  # notifications of one flush leave back to back


@pytest.fixture(scope="module")
def burst_run(tmp_path_factory):
    r = run_check("ble_burst", tmp_path_factory.mktemp("burst"))
    assert r["mtu"] == 247  # one frame per notification: a notification's time is its frame's
    r["frames"] = [(t, decode_notifications([h])[0]) for t, h in r["notes"]]
    r["data_t"] = np.array([t for t, f in r["frames"] if isinstance(f, fr.DataFrame) and not f.is_log])
    return r


def _bursts(t):
    """Data notification times split where more than SAME_BURST_MS passes: [(first ms, frames)]."""
    starts = np.flatnonzero(np.diff(t, prepend=-1e9) > SAME_BURST_MS)
    return t[starts], np.diff(np.append(starts, len(t)))


def test_data_notifications_arrive_in_bursts_notify_burst_ms_apart(burst_run):
    t = burst_run["data_t"]
    assert len(t) >= 30
    gaps = np.diff(t)
    apart = gaps[gaps > SAME_BURST_MS]
    # any two data notifications are in one burst or a burst apart (a late tick may shift one burst a little)
    assert np.all((apart >= 0.6 * BURST) & (apart <= 1.5 * BURST)), gaps.tolist()
    assert abs(np.median(apart) - BURST) <= 10, apart.tolist()
    first, n = _bursts(t)
    per_s = (len(first) - 1) / ((first[-1] - first[0]) / 1000)
    print(f"{per_s:.2f} bursts/s, {n.mean():.2f} data frames per burst ({n.tolist()})")
    assert 4.0 <= per_s <= 6.5  # 1000 / 190 = 5.3 (10.5 with a frame per wake-up)
    assert n.mean() >= 1.7  # two 95 ms compact frames per burst


def test_no_sample_lost_while_bursting(burst_run):
    seqs = data_seqs([f for _, f in burst_run["frames"]])
    assert len(seqs) >= 600  # ~3.2 s streamed at 200 Hz
    assert np.array_equal(seqs, np.arange(seqs[0], seqs[0] + len(seqs)))  # in order, no gap, no dup
    assert burst_run["enomem"] == 0


def test_commands_are_taken_between_bursts(burst_run):
    r = burst_run
    got = [f for _, f in r["frames"]]
    assert replies(got) == [(5, wire.CMD_START_STREAM, 0), (6, wire.CMD_BUZZ, 0)]
    # the buzz acts at once (the motor is on before the next burst could be due)...
    on = [t for t, duty in r["pwm"] if duty > 0 and t >= r["t_buzz"]]
    assert on and on[0] - r["t_buzz"] <= 25, r["pwm"]
    # ...its reply rides the next burst, within NOTIFY_BURST_MS of the write
    t_reply = next(t for t, f in r["frames"] if isinstance(f, fr.Reply) and f.token == 6)
    assert 0 <= t_reply - r["t_buzz"] <= BURST + 30
    first, _ = _bursts(r["data_t"])
    assert np.min(np.abs(first - t_reply)) <= SAME_BURST_MS
