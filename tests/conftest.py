"""Shared fixtures: a seeded generator. The shared helpers live in tests/helpers.py (make_array and snapshot are
re-exported here for the files that import them from conftest)."""
from __future__ import annotations

import numpy as np
import pytest

from helpers import make_array, snapshot  # noqa: F401


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "golden: the golden-trajectory comparison (deselect with -m 'not golden' "
                                       "while iterating; it must pass before every commit)")
