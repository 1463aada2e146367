"""One session folder as the coach commands see it: metadata, outputs, wall-clock start."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from tiltguard.errors import InputError
from tiltguard.formats.session import Outputs, read_outputs, read_session_meta


def parse_time(value: str | None, where: str = "session.json") -> datetime | None:
    """ISO-8601 text -> aware datetime (UTC assumed when the text has no offset); None stays None."""
    if value in (None, ""):
        return None
    try:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{where}: start_time {value!r} is not an ISO-8601 time") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


@dataclass
class Session:
    path: Path
    meta: dict
    out: Outputs

    @property
    def start(self) -> datetime | None:
        return parse_time(self.meta.get("start_time"), str(self.path / "session.json"))

    @property
    def athlete(self) -> str:
        return str(self.meta.get("athlete") or "unknown")

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def strides(self) -> pd.DataFrame:
        return self.out.strides

    @property
    def steps(self) -> pd.DataFrame:
        return self.out.steps


def with_watch(session: Session, fit: str | Path | None, offset_s: float = 0.0) -> Session:
    """Join a watch FIT's speed, grade and heart rate to the strides (in memory; the folder is not changed)."""
    if fit:
        from tiltguard.coach.fit import join_watch

        session.out.strides = join_watch(session, fit, offset_s)
    return session


def add_watch_arguments(p) -> None:
    p.add_argument("--watch", metavar="FIT", help="a watch's FIT file of the same run: joins speed_mps, grade_pct "
                   "and hr_bpm to the strides by wall-clock time")
    p.add_argument("--watch-offset-s", type=float, default=0.0, metavar="S",
                   help="seconds to add to the watch's clock if it is known to be off (default 0)")


def load_session(path: str | Path) -> Session:
    """Read a session folder; a folder with no analysis outputs is refused in one line."""
    p = Path(path)
    if not p.is_dir():
        raise InputError(f"{p}: not a session folder")
    meta = read_session_meta(p)
    out = read_outputs(p)
    if not (p / "strides.csv").exists() and not (p / "summary.json").exists():
        raise InputError(f"{p}: no analysis outputs (run `tiltguard analyze` first)")
    return Session(path=p, meta=meta, out=out)
