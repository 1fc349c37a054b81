"""Named crash points for the crash-consistency tests (a test-only hook).

Long commands call :func:`crash_point` at their phase boundaries. When the
environment variable ``CURATED_CRASH_AT`` names that point, the process ends there
at once with ``os._exit`` (as ``kill -9`` would: no ``finally``, no ``atexit``, no
flush), so tests can check that every such moment leaves the work resumable and
nothing looking complete that is not. Unset (always, outside tests), it costs one
dictionary lookup.
"""

from __future__ import annotations

import os

ENV = "CURATED_CRASH_AT"
EXIT_CODE = 137
"""What a shell reports for a process killed by SIGKILL."""


def crash_point(name: str) -> None:
    """End the process here if ``CURATED_CRASH_AT`` is ``name`` (tests only)."""
    if os.environ.get(ENV) == name:
        os._exit(EXIT_CODE)
