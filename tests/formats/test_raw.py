import gzip

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tiltguard.errors import InputError
from tiltguard.formats.raw import read_raw, write_raw


def _arrays(n=400, fs=200.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fs
    return t, rng.normal(0, 1, (n, 3)), rng.normal(0, 100, (n, 3))


@pytest.mark.parametrize("name", ["raw.csv", "raw.csv.gz"])
def test_round_trip_with_gyro_and_angles(tmp_path, name):
    t, acc, gyro = _arrays()
    ang = np.cumsum(gyro, axis=0) * 1e-3
    write_raw(tmp_path / name, t_s=t, acc_g=acc, gyro_dps=gyro, angles_deg=ang)
    rec = read_raw(tmp_path / name)
    assert rec.fs_hz == pytest.approx(200.0)
    np.testing.assert_allclose(rec.t_s, t, atol=1e-6)
    np.testing.assert_allclose(rec.acc_g, acc, atol=1e-6)
    np.testing.assert_allclose(rec.gyro_dps, gyro, atol=1e-6)
    np.testing.assert_allclose(rec.angles_deg, ang, atol=1e-6)
    if name.endswith(".gz"):
        assert gzip.open(tmp_path / name).read(4) == b"t_s,"


def test_accelerometer_only_and_extra_columns(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("t_s,ax_g,ay_g,az_g,temp_c,label\n0,1,0,0,30.5,a\n0.01,1,0,0,30.6,b\n0.02,1.1,0,0,30.7,c\n")
    rec = read_raw(p)
    assert rec.gyro_dps is None and rec.angles_deg is None
    assert rec.fs_hz == pytest.approx(100.0)
    np.testing.assert_allclose(rec.extra["temp_c"], [30.5, 30.6, 30.7])
    assert list(rec.extra["label"]) == ["a", "b", "c"]


def test_gaps_are_kept(tmp_path):
    t = np.r_[np.arange(100) / 100, 5 + np.arange(100) / 100]
    write_raw(tmp_path / "r.csv", t_s=t, acc_g=np.ones((200, 3)))
    rec = read_raw(tmp_path / "r.csv")
    assert rec.fs_hz == pytest.approx(100.0)
    assert np.diff(rec.t_s).max() == pytest.approx(4.01)


BAD = {
    "empty": ("", "empty file"),
    "header only": ("t_s,ax_g,ay_g,az_g\n", "at least 2 samples"),
    "missing column": ("t_s,ax_g,ay_g\n0,1,0\n0.01,1,0\n", "missing required column(s): az_g"),
    "text in numbers": ("t_s,ax_g,ay_g,az_g\n0,1,0,0\n0.01,abc,0,0\n", "non-numeric value 'abc'"),
    "decreasing time": ("t_s,ax_g,ay_g,az_g\n0,1,0,0\n0.01,1,0,0\n0.005,1,0,0\n", "does not increase"),
    "repeated time": ("t_s,ax_g,ay_g,az_g\n0,1,0,0\n0,1,0,0\n", "does not increase"),
    "rate too low": ("t_s,ax_g,ay_g,az_g\n0,1,0,0\n1,1,0,0\n2,1,0,0\n", "outside 50-1000 Hz"),
    "half a gyro": ("t_s,ax_g,ay_g,az_g,gx_dps\n0,1,0,0,1\n0.01,1,0,0,1\n", "incomplete column group"),
    "not csv": ("\x00\x01\x02garbage", ""),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_raw_is_refused_in_one_line(tmp_path, case):
    text, expected = BAD[case]
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(InputError) as info:
        read_raw(p)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("bad.csv")
    assert expected in msg


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_raw(tmp_path / "nope.csv")


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_are_read_or_refused_cleanly(tmp_path_factory, blob):
    p = tmp_path_factory.mktemp("fuzz") / "x.csv"
    p.write_bytes(blob)
    try:
        rec = read_raw(p)
    except InputError as exc:
        assert "\n" not in str(exc)
    else:
        assert len(rec) >= 2 and np.all(np.diff(rec.t_s) > 0)
