import json
from pathlib import Path

import pytest

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def load(name: str) -> dict:
    return json.loads((VECTORS / name).read_text())


@pytest.fixture(scope="session")
def data_vectors() -> list[dict]:
    return load("data_frames.json")["vectors"]


@pytest.fixture(scope="session")
def control_vectors() -> dict:
    return load("control.json")
