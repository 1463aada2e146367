"""``tiltguard analyze RAW.csv|SESSION_DIR -o OUT/``: a recording in, a session folder out."""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import shutil
from pathlib import Path

from tiltguard.errors import InputError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="RAW.csv|SESSION_DIR",
                   help="a raw recording (raw.csv, .csv.gz) or a session folder (raw.csv[.gz] or stream.tgl)")
    p.add_argument("-o", "--out", metavar="OUT", default=None,
                   help="session folder to write (default: the input session folder itself)")
    p.add_argument("--config", metavar="FILE.toml", default=None,
                   help="analysis settings ([drift], [orientation], [activity], [align] tables)")
    p.add_argument("--no-curves", action="store_true", help="skip curves.csv")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")


def _read(path: Path):
    from tiltguard.formats.raw import read_raw

    if path.name.endswith(".tgl"):
        try:
            from tiltguard.formats.sessionlog import read_recording
        except ImportError:
            raise InputError(f"{path.name}: binary session logs cannot be read by this installation") from None
        return read_recording(path)
    return read_raw(path)


def _link_or_copy(src: Path, dst: Path) -> None:
    if dst.exists() and dst.resolve() == src.resolve():
        return
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def run(args) -> int:
    from tiltguard.core.pipeline import AnalysisConfig, analyze, load_config, nominal_rate
    from tiltguard.formats.session import find_raw, read_session_meta, write_outputs, write_session_meta

    src = Path(args.input)
    if not src.exists():
        raise InputError(f"{src}: no such file or folder")
    if src.is_dir():
        raw = find_raw(src)
        meta = read_session_meta(src)
        out = Path(args.out) if args.out else src
    else:
        raw = src
        meta = None
        if not args.out:
            raise InputError("give the session folder to write with -o OUT")
        out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    cfg = load_config(args.config) if args.config else AnalysisConfig()
    if args.no_curves:
        cfg.curves = False
    rec = _read(raw)
    res = analyze(rec, cfg)

    out.mkdir(parents=True, exist_ok=True)
    mtime = _dt.datetime.fromtimestamp(raw.stat().st_mtime, tz=_dt.timezone.utc)
    defaults = {"start_time": (mtime - _dt.timedelta(seconds=rec.duration_s)).isoformat(timespec="seconds"),
                "source": "file", "sample_rate_hz": nominal_rate(rec.t_s),
                "mode": "full" if rec.gyro_dps is not None else "compact", "simulated": False,
                "notes": f"analysed from {raw.name}"}
    # a session folder keeps its own metadata; keys it lacks get the defaults of a plain file
    meta = defaults if meta is None else {**{k: v for k, v in defaults.items() if k != "notes"}, **meta}
    if out.resolve() != raw.parent.resolve() or raw.name not in ("raw.csv", "raw.csv.gz", "stream.tgl"):
        name = raw.name if raw.name in ("raw.csv", "raw.csv.gz", "stream.tgl") else \
            ("raw.csv.gz" if raw.name.endswith(".gz") else "raw.csv")
        _link_or_copy(raw, out / name)
    meta = {k: v for k, v in meta.items() if k != "format"}
    write_session_meta(out, meta)
    write_outputs(out, res.steps, res.strides, res.alerts, res.summary, res.curves)
    if not args.quiet:
        s = res.summary
        cad = f"{s['cadence_spm']:.0f} spm" if s["cadence_spm"] is not None else "-"
        base = f"{s['tilt_baseline_deg']:.1f} deg" if s["tilt_baseline_deg"] is not None else "-"
        print(f"{out}: {s['n_steps']} steps, {s['n_strides']} strides, cadence {cad}, tilt baseline {base}, "
              f"{s['alerts']} alert(s)")
    return 0
