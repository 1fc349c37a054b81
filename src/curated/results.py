"""One kind of result record, shared by the Python API and the CLI.

Modelled on DataLad's result records: each operation reports what it did
(``action``), to what (``path``), how it went (``status``) and why
(``message``), plus free ``details`` for figures a caller may want.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["ok", "notneeded", "impossible", "error"]
STATUSES: tuple[str, ...] = ("ok", "notneeded", "impossible", "error")


@dataclass(frozen=True)
class Result:
    """The outcome of one public operation."""

    action: str
    """What was done, e.g. ``convert`` or ``bag``."""
    status: Status
    """``ok``, ``notneeded`` (already done), ``impossible`` (cannot be done as asked) or ``error``."""
    path: str | None = None
    """The main thing produced or acted upon."""
    message: str = ""
    """One line for a person."""
    details: dict[str, Any] = field(default_factory=dict)
    """Figures and paths for a program (sizes, scores, counts...)."""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            msg = f"status must be one of {STATUSES}, not {self.status!r}"
            raise ValueError(msg)

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "notneeded")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
