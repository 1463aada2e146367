from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
ALCANTARA = SHARED_DATA / "alcantara-sacral-running"


@pytest.fixture(scope="session")
def alcantara_dir() -> Path:
    """The real sacral running data (read in place, never copied into the repo)."""
    if not (ALCANTARA / "Accelerometer_one_sub.csv").exists():
        pytest.skip(f"real data folder not present at {ALCANTARA} (it lives in ../shared, outside the repo)")
    return ALCANTARA
