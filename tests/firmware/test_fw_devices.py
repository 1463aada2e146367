"""Haptics PWM timelines, battery curve and the atomic config file, under the MicroPython unix port."""

import numpy as np
import pytest

from tests.firmware._mpyapp import run_check

TOL_MS = 25  # asyncio timing on a busy CI machine


@pytest.fixture(scope="module")
def hap(tmp_path_factory):
    return run_check("haptics", tmp_path_factory.mktemp("hap"))


def _expected(pattern, scale=1.0, freq=20000):
    """(t_ms, freq, duty_u16) steps a pattern should produce, ending with the motor off."""
    out, t = [], 0
    for pct, ms in pattern:
        out.append((t, freq, int(pct * scale) * 65535 // 100))
        t += ms
    out.append((t, freq, 0))
    return out


@pytest.mark.parametrize("name", ["alert", "recovered", "ack"])
def test_haptic_patterns_make_the_right_pwm_timeline(hap, name):
    r = hap[name]
    assert r["ok"] and r["busy_early"]  # buzz() returned at once, the pattern played in the background
    want = _expected(hap["patterns"][name])
    got = r["timeline"]
    # the final "off" in the finally clause may repeat the last off step
    if len(got) == len(want) + 1 and got[-1][2] == 0 and got[-2][2] == 0:
        got = got[:-1]
    assert [list(g[1:]) for g in got] == [list(w[1:]) for w in want]
    assert np.allclose([g[0] for g in got], [w[0] for w in want], atol=TOL_MS)
    assert got[-1][2] == 0


def test_custom_buzzer_and_intensity(hap):
    assert [s[2] for s in hap["custom"]["timeline"]][:4] == [65535, 0, 65535, 0]
    assert np.allclose([s[0] for s in hap["custom"]["timeline"]][:4], [0, 50, 80, 100], atol=TOL_MS)
    assert hap["buzzer_ack"]["freq"] == 2700  # a passive buzzer is driven at its tone
    assert hap["buzzer_ack"]["timeline"][0][2] == 60 // 2 * 65535 // 100
    assert hap["weak"]["timeline"][0][2] == 30 * 65535 // 100
    assert hap["unknown"] is False
    assert hap["replaced_last_duty"] == 0


def test_battery_curve(tmp_path):
    r = run_check("power", tmp_path)
    mv, pct = np.array(r["curve"]).T
    assert np.all(np.diff(pct) >= 0)  # monotonic
    assert pct[mv <= 3270].max() == 0 and pct[mv >= 4200].min() == 100
    for v, p in r["table"]:  # passes through every table point
        assert pct[mv == v][0] == p
    assert r["readings"] == [[4200, 100], [3840, 50], [3300, 0]]  # ADC x divider -> mV -> %
    assert r["never"] is False


def test_config_write_is_atomic(tmp_path):
    r = run_check("config", tmp_path)
    assert r["default_rate"] == 200
    assert r["after_crash"] == 100 and r["after_crash2"] == 100  # temp file never wins
    assert r["mount"] == {"mount_q": [1, 0, 0, 0], "gyro_bias_dps": [0, 0, 0]}
    assert r["tmp_gone"]
    assert r["torn"] == 200  # unreadable file: defaults, no crash


def test_button_short_and_long_press_and_led(tmp_path):
    r = run_check("ui", tmp_path)
    assert r["calls"] == ["short", "long"]  # the 10 ms bounce was ignored, the long press fired once
    assert r["on_stream"][-1] == 0  # streaming = LED steadily on (active low pin)
