import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
ALCANTARA = SHARED_DATA / "alcantara-sacral-running"


@pytest.fixture(scope="session")
def alcantara_dir() -> Path:
    """The real sacral running data (read in place, never copied into the repo)."""
    if not (ALCANTARA / "Accelerometer_one_sub.csv").exists():
        if os.environ.get("CI"):  # CI always has ../shared beside the clone: a skip there would hide a break
            pytest.fail(f"real data folder missing in CI at {ALCANTARA}")
        pytest.skip(f"real data folder not present at {ALCANTARA} (it lives in ../shared, outside the repo)")
    return ALCANTARA
