"""Fixtures of the pack tests."""

import pytest

from .sample import region


@pytest.fixture
def manifest(tmp_path):
    return region(tmp_path / "tiles")
