import shutil
from pathlib import Path

import pytest

from tiltguard.coach.synthetic import make_session

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "coach"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory) -> Path:
    """A synthetic session with drift, growing pelvic drop, raw samples and an athlete name a spreadsheet would run."""
    return make_session(tmp_path_factory.mktemp("s") / "run-2026-11-01", athlete="=HYPERLINK(\"x\")", raw=True,
                        seed=7)


@pytest.fixture(scope="session")
def chromium(tmp_path_factory):
    from tests.coach.chromium import CHROMIUM, Chromium

    assert shutil.which(CHROMIUM) or Path(CHROMIUM).exists(), "chromium is needed (tests/run.sh installs it)"
    browser = Chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield browser
    browser.close()


# Every inline SVG figure: how many drawn paths it holds and its rendered size.
FIGURES_PROBE = ("({csp: document.querySelector('meta[http-equiv=\"Content-Security-Policy\"]')?.content,"
                 " viewport: !!document.querySelector('meta[name=viewport]'),"
                 " scrollWidth: document.documentElement.scrollWidth,"
                 " figures: Array.from(document.querySelectorAll('figure svg')).map(s => {"
                 "   const r = s.getBoundingClientRect();"
                 "   const drawn = Array.from(s.querySelectorAll('path')).filter(p => (p.getAttribute('d') || '').length > 20);"
                 "   return {label: s.getAttribute('aria-label'), paths: drawn.length, w: r.width, h: r.height}; })})")
