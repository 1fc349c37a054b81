"""How long-running core functions report progress without printing.

Core functions take ``progress: ProgressReporter | None``. The CLI passes a
rich progress bar (``curated.cli._common.RichProgress``); a lab pipeline may pass
its own object with the same three methods, or nothing.
"""

from __future__ import annotations

from typing import Protocol


class ProgressReporter(Protocol):
    def start(self, description: str, total: float | None, unit: str = "") -> None:
        """A new phase begins; ``total`` in ``unit`` (``bytes``, ``shards``, ``iterations``...)."""

    def advance(self, amount: float = 1, **info: object) -> None:
        """``amount`` more of the current phase is done; ``info`` may carry e.g. ``loss=0.3``."""

    def finish(self) -> None:
        """The current phase is over."""


class NullProgress:
    """Reports nothing."""

    def start(self, description: str, total: float | None, unit: str = "") -> None:
        return None

    def advance(self, amount: float = 1, **info: object) -> None:
        return None

    def finish(self) -> None:
        return None


def ensure_progress(progress: ProgressReporter | None) -> ProgressReporter:
    return progress if progress is not None else NullProgress()
