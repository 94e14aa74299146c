from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

DATA = Path(__file__).parent / "data"
H200 = DATA / "h200x4-nccl2.28.9"


@pytest.fixture
def h200_capture() -> Path:
    """Real captures from a 4×H200 NVSwitch host (see data/h200x4-nccl2.28.9/README.md)."""
    return H200
