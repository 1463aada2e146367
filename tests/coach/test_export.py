import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as hs

from tiltguard.coach.export import COLUMNS, export, guard_text, sidecar_path
from tiltguard.coach.session import load_session
from tiltguard.errors import InputError
from tiltguard.formats.raw import read_raw
from tiltguard.formats.session import read_outputs, write_outputs


def _source(session_dir, what):
    out = read_outputs(session_dir)
    if what == "samples":
        rec = read_raw(session_dir / "raw.csv")
        return pd.DataFrame({"t_s": rec.t_s, "ax_g": rec.acc_g[:, 0], "ay_g": rec.acc_g[:, 1],
                             "az_g": rec.acc_g[:, 2], "gx_dps": rec.gyro_dps[:, 0]})
    return {"steps": out.steps, "strides": out.strides}[what]


@pytest.mark.parametrize("fmt", ["csv", "parquet", "xlsx"])
@pytest.mark.parametrize("what", ["samples", "steps", "strides"])
def test_round_trip_gives_the_same_numbers(session_dir, tmp_path, what, fmt):
    s = load_session(session_dir)
    path = export(s, what, fmt, tmp_path / f"x.{fmt}")
    back = {"csv": pd.read_csv, "parquet": pd.read_parquet,
            "xlsx": lambda p: pd.read_excel(p, sheet_name=what)}[fmt](path)
    assert list(back.columns) == COLUMNS[what]
    src = _source(session_dir, what)
    assert len(back) == len(src) > 0
    for col in src.columns:
        if not pd.api.types.is_numeric_dtype(src[col]):
            assert (back[col].astype(str) == src[col].astype(str)).all(), col
        else:
            np.testing.assert_array_equal(back[col].to_numpy(float), src[col].to_numpy(float), err_msg=col)
    if what == "steps":  # wall-clock time: session start + t_ic_s
        t0 = pd.Timestamp("2026-11-01T07:00:00+00:00")
        got = pd.to_datetime(back["time_utc"], format="ISO8601")
        expect = t0 + pd.to_timedelta(src["t_ic_s"], unit="s")
        assert (abs(got - expect) < pd.Timedelta(milliseconds=1)).all()
    meta = json.loads(sidecar_path(path).read_text())
    assert meta["session"]["start_time"] == "2026-11-01T07:00:00+00:00"
    assert meta["session"]["athlete"] == '=HYPERLINK("x")'  # JSON holds the real name; only cells are guarded
    assert [c["name"] for c in meta["columns"]] == COLUMNS[what]
    assert all(c["description"] for c in meta["columns"])


def test_summary_export_one_row_with_metadata(session_dir, tmp_path):
    s = load_session(session_dir)
    back = pd.read_csv(export(s, "summary", "csv", tmp_path / "s.csv"))
    assert len(back) == 1
    summ = json.loads((session_dir / "summary.json").read_text())
    for k in ("duration_s", "n_strides", "cadence_spm", "tilt_baseline_deg", "drift_onset_s"):
        assert back.loc[0, k] == pytest.approx(summ[k], rel=0, abs=0)
    assert back.loc[0, "alerts_n"] == summ["alerts"]
    assert back.loc[0, "start_time"] == "2026-11-01T07:00:00+00:00"


def test_guard_text_neutralises_formulas_and_keeps_numbers():
    s = pd.Series(["=1+2", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx", "\ry", "L", "-3.5", "1e-3", None, "ok=1"],
                  dtype=object)
    out = guard_text(s)
    assert list(out[:6]) == ["'=1+2", "'+cmd|' /C calc'!A0", "'-2+3", "'@SUM(A1)", "'\tx", "'\ry"]
    assert list(out[6:9]) == ["L", "-3.5", "1e-3"] and out[9] is None and out[10] == "ok=1"
    nums = pd.Series([-1.5, 2.0])
    assert guard_text(nums).equals(nums)


def test_exported_cells_are_guarded_and_numbers_stay_numbers(session_dir, tmp_path):
    s = load_session(session_dir)
    text = export(s, "summary", "csv", tmp_path / "s.csv").read_text()
    assert "'=HYPERLINK" in text and '\n=HYPERLINK' not in text and ',=HYPERLINK' not in text
    strides = pd.read_csv(export(s, "strides", "csv", tmp_path / "st.csv"))
    assert strides["gct_asymmetry_pct"].dtype == float and (strides["gct_asymmetry_pct"] < 0).any()
    assert "'-" not in (tmp_path / "st.csv").read_text()


def test_xlsx_is_safe_and_opens_with_pandas(session_dir, tmp_path):
    import openpyxl

    s = load_session(session_dir)
    path = export(s, "summary", "xlsx", tmp_path / "s.xlsx")
    sheets = pd.read_excel(path, sheet_name=None)
    assert set(sheets) == {"summary", "metadata"}
    assert sheets["summary"].loc[0, "athlete"] == "'=HYPERLINK(\"x\")"
    assert sheets["summary"].loc[0, "n_strides"] == s.out.summary["n_strides"]
    wb = openpyxl.load_workbook(path)
    kinds = {c.data_type for ws in wb.worksheets for row in ws.iter_rows() for c in row}
    assert "f" not in kinds  # no formula cell anywhere
    meta = dict(zip(sheets["metadata"]["key"], sheets["metadata"]["value"]))
    assert meta["session.start_time"] == "2026-11-01T07:00:00+00:00"


def test_export_keeps_documented_columns_only(tmp_path, session_dir):
    out = read_outputs(session_dir)
    out.strides["debug_internal"] = 1.0
    write_outputs(tmp_path / "x", out.steps, out.strides, out.alerts, out.summary)
    (tmp_path / "x" / "session.json").write_text((session_dir / "session.json").read_text())
    back = pd.read_csv(export(load_session(tmp_path / "x"), "strides", "csv", tmp_path / "o.csv"))
    assert list(back.columns) == COLUMNS["strides"]
    assert back[["speed_mps", "grade_pct", "hr_bpm"]].isna().all().all()


def test_bad_input_is_one_line(tmp_path, session_dir):
    with pytest.raises(InputError):
        load_session(tmp_path / "missing")
    with pytest.raises(InputError, match="--what strides"):
        export(load_session(session_dir), "steps", "fit", tmp_path / "x.fit")
    r = subprocess.run([sys.executable, "-m", "tiltguard", "export", str(tmp_path / "nope")], capture_output=True,
                       text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_every_exported_column_is_documented():
    from pathlib import Path

    from tiltguard.coach.trends import TRENDS_COLUMNS

    doc = (Path(__file__).resolve().parents[2] / "docs" / "formats.md").read_text()
    section = doc[doc.index("## Exports"):]
    for what, cols in COLUMNS.items():
        for c in cols:
            assert f"| `{c}` |" in section, (what, c)
    for c in TRENDS_COLUMNS:
        assert f"| `{c}` |" in section, c


def test_samples_export_from_the_binary_log(tmp_path, session_dir):
    """A session holding only stream.tgl (live/download) exports its samples in physical units."""
    import shutil

    from tiltguard.formats.sessionlog import SessionLogWriter
    from tiltguard.protocol import frames as fr
    from tiltguard.protocol import wire as w

    d = tmp_path / "live"
    d.mkdir()
    for name in ("session.json", "steps.csv", "strides.csv", "alerts.csv", "summary.json"):
        shutil.copy(session_dir / name, d / name)
    n = 400
    rng = np.random.default_rng(1)
    vals = rng.integers(-3000, 3000, (n, 9)).astype(np.int16)
    t_us = (np.arange(n) * 5000).astype(np.int64)                      # 200 Hz
    with SessionLogWriter(d / "stream.tgl", start_unix_ms=1_790_000_000_000) as log:
        for i, f in enumerate(fr.encode_data_frames(vals, 0, t_us, w.period_q(200), w.MODE_FULL)):
            log.append(f, 1_790_000_000_000 + 10 * i)
    back = pd.read_csv(export(load_session(d), "samples", "csv", tmp_path / "s.csv"))
    assert len(back) == n
    np.testing.assert_allclose(back["t_s"], t_us / 1e6, atol=1e-9)
    np.testing.assert_allclose(back[["tilt_deg", "obliquity_deg", "rotation_deg"]], vals[:, :3] * 0.01, atol=1e-9)
    np.testing.assert_allclose(back[["ax_g", "ay_g", "az_g"]], vals[:, 3:6] / 2048.0, atol=1e-12)
    np.testing.assert_allclose(back[["gx_dps", "gy_dps", "gz_dps"]], vals[:, 6:9] / 16.0, atol=1e-12)


@given(hs.lists(hs.text(max_size=12), min_size=1, max_size=20))
def test_guard_never_leaves_a_formula_and_loses_nothing(cells):
    import re

    from tiltguard.coach.export import _NUMBER

    danger = ("=", "+", "-", "@", "\t", "\r")
    out = guard_text(pd.Series(cells, dtype=object))
    for before, after in zip(cells, out):
        if after != before:
            assert after == "'" + before and before.startswith(danger)
        else:  # unchanged: harmless, or a plain number such as "-3.5"
            assert not before.startswith(danger) or re.match(_NUMBER, before)


def test_session_without_start_time(tmp_path, session_dir):
    import shutil

    d = tmp_path / "nostart"
    shutil.copytree(session_dir, d)
    meta = json.loads((d / "session.json").read_text())
    del meta["start_time"]
    (d / "session.json").write_text(json.dumps(meta))
    s = load_session(d)
    back = pd.read_csv(export(s, "strides", "csv", tmp_path / "x.csv"), keep_default_na=False)
    assert (back["time_utc"] == "").all()
    with pytest.raises(InputError, match="start_time"):
        export(s, "strides", "fit", tmp_path / "x.fit")
