import io
from datetime import timedelta

import fitdecode
import numpy as np
import pytest
from garmin_fit_sdk import Decoder, Stream

from tiltguard.coach.export import export
from tiltguard.coach.fit import RECORD_FIELDS, align_watch, encode_watch_fit, join_watch, read_fit_records
from tiltguard.coach.session import load_session
from tiltguard.errors import InputError


def test_exported_fit_decodes_with_sdk_and_fitdecode(session_dir, tmp_path):
    s = load_session(session_dir)
    path = export(s, "strides", "fit", tmp_path / "run.fit")
    data = path.read_bytes()
    st = s.strides
    base = s.out.summary["tilt_baseline_deg"]
    expect = {"pelvic_tilt": st["tilt_mean_deg"], "drift_excess": st["tilt_mean_deg"] - base,
              "pelvic_drop_l": st["pelvic_drop_l_deg"], "pelvic_drop_r": st["pelvic_drop_r_deg"],
              "rotation_rom": st["rotation_rom_deg"], "stride_start": st["t_start_s"]}

    # Garmin's decoder, CRC checked.
    assert Decoder(Stream.from_byte_array(bytearray(data))).check_integrity()
    msgs, errors = Decoder(Stream.from_byte_array(bytearray(data))).read()
    assert errors == []
    for kind in ("file_id_mesgs", "developer_data_id_mesgs", "field_description_mesgs", "record_mesgs",
                 "lap_mesgs", "session_mesgs", "activity_mesgs"):
        assert msgs.get(kind), kind
    names = {d["key"]: (d["field_name"], d["units"]) for d in msgs["field_description_mesgs"]}
    assert {n for n, _ in names.values()} >= {name for _, name, *_ in RECORD_FIELDS}
    recs = msgs["record_mesgs"]
    assert len(recs) == len(st)
    for field, col in expect.items():
        key = next(k for k, (n, _) in names.items() if n == field)
        got = np.array([r["developer_fields"][key] for r in recs])
        np.testing.assert_allclose(got, col.to_numpy(float), rtol=1e-6, atol=1e-5, err_msg=field)
    t0 = s.start
    assert recs[5]["timestamp"] == (t0 + timedelta(seconds=int(st["t_start_s"][5]))).replace(microsecond=0)
    assert msgs["session_mesgs"][0]["sport"] == "running"
    assert recs[0]["cadence"] == int(st["cadence_spm"][0] / 2)

    # fitdecode, independent implementation, with developer field names and units.
    rows = []
    with fitdecode.FitReader(io.BytesIO(data), check_crc=fitdecode.CrcCheck.ENABLED) as fr:
        for frame in fr:
            if isinstance(frame, fitdecode.FitDataMessage) and frame.name == "record":
                rows.append({f.name: (f.value, f.units) for f in frame.fields})
    assert len(rows) == len(st)
    np.testing.assert_allclose([r["pelvic_tilt"][0] for r in rows], st["tilt_mean_deg"], rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose([r["pelvic_drop_r"][0] for r in rows], st["pelvic_drop_r_deg"], rtol=1e-6, atol=1e-5)
    assert rows[0]["pelvic_tilt"][1] == "deg" and rows[0]["gct_asymmetry"][1] == "%"


def _watch(s, shift_s=0.0):
    """Watch truth over the session: speed steps 3 -> 4 m/s at 300 s, a 5 % climb 150..250 s, HR ramp."""
    t = np.arange(-30.0, 640.0, 1.0)
    speed = np.where(t < 300, 3.0, 4.0)
    dist = np.concatenate([[0.0], np.cumsum(0.5 * (speed[1:] + speed[:-1]))])
    climb = (t >= 150) & (t < 250)
    alt = 100 + np.concatenate([[0.0], np.cumsum(np.where(climb[1:], 0.05 * np.diff(dist), 0.0))])
    hr = 120 + 0.08 * (t + 30)
    fit = encode_watch_fit(s.start + timedelta(seconds=shift_s), t, speed, alt, hr)
    return fit, t, speed, alt, hr


def test_watch_fit_aligns_within_one_second(session_dir):
    s = load_session(session_dir)
    fit, t, speed, alt, hr = _watch(s)
    joined = join_watch(s, fit)
    mid = 0.5 * (joined["t_start_s"] + joined["t_end_s"]).to_numpy()
    # Speed step: the first stride with the new speed sits within 1 s of the step's true time.
    fast = mid[joined["speed_mps"].to_numpy() > 3.5]
    assert abs(fast.min() - 300.0) < 1.0 and (joined["speed_mps"][mid < 299] < 3.01).all()
    # Heart rate is the watch's, at the stride's time.
    np.testing.assert_allclose(joined["hr_bpm"], np.round(120 + 0.08 * (mid + 30)), atol=1.01)
    # Grade: 5 % in the climb's middle, 0 on the flat.
    g = joined["grade_pct"].to_numpy()
    assert np.allclose(g[(mid > 170) & (mid < 230)], 5.0, atol=0.4)
    assert np.allclose(g[(mid > 270) & (mid < 580)], 0.0, atol=0.3)
    # A watch that started recording 20 s late is still aligned by wall-clock time.
    late, *_ = _watch(s)
    watch = read_fit_records(late)
    aligned = align_watch(s.strides, s.start + timedelta(seconds=20), watch, offset_s=20.0)
    fast2 = mid[aligned["speed_mps"].to_numpy() > 3.5]
    assert abs(fast2.min() - 300.0) < 1.0


def test_watch_outside_the_session_or_corrupt_is_refused(session_dir):
    s = load_session(session_dir)
    fit, *_ = _watch(s, shift_s=-86400)
    with pytest.raises(InputError, match="overlap"):
        join_watch(s, fit)
    bad = bytearray(fit)
    bad[len(bad) // 2] ^= 0xFF
    with pytest.raises(InputError, match="CRC"):
        read_fit_records(bytes(bad))
    with pytest.raises(InputError, match="not a FIT"):
        read_fit_records(b"hello world, not fit at all")
