"""Framework hygiene for the parity tests: every flag is set in ``reference.hygiene``, once,
before torch or TensorFlow is imported."""

from __future__ import annotations

import pytest

from reference.hygiene import configure_frameworks

SETTINGS = configure_frameworks()


def pytest_report_header(config):
    return [f"frameworks: {name}: {value}" for name, value in SETTINGS.items()]


@pytest.fixture
def repro(request, global_seed) -> str:
    """The one command that reproduces the running test."""
    return f'pytest "{request.node.nodeid}" --seed {global_seed}'
