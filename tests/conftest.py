"""Shared fixtures.

The reference data (``shared/reference``) sits beside the checkout on developer
machines and CI; tests that need it skip with a clear reason when it is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = Path(__file__).resolve().parents[2] / "shared" / "reference"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """``../shared/reference`` next to the checkout; skips the test when it is absent."""
    if not REFERENCE_DIR.is_dir():
        pytest.skip(f"reference data not found at {REFERENCE_DIR} (shared/ is not beside the checkout)")
    return REFERENCE_DIR
