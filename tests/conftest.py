"""Shared fixtures. Tests run offline, on tiny volumes, within a few minutes on 2 cores."""

from __future__ import annotations

import os

# Keep numerical libraries to one thread per test process (pytest -n 2 on 2 cores).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("CURATED_AGENT_NAME", "Test Curator")
