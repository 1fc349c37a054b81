"""Shared fixtures. Tests run offline, on tiny volumes, within a few minutes on 2 cores."""

from __future__ import annotations

import os

import pytest

# Keep numerical libraries to one thread per test process (pytest -n 2 on 2 cores).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("CURATED_AGENT_NAME", "Test Curator")


@pytest.fixture
def forgotten_secrets():
    """Forget the secrets a test's deposit registered (process-wide: every later error
    message would scrub them) once it is done; modules use it with
    ``pytestmark = pytest.mark.usefixtures("forgotten_secrets")``."""
    yield
    from curated._secrets import forget_secrets

    forget_secrets()
