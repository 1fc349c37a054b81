"""The exceptions `curated` raises, one hierarchy with machine-readable details.

Every error a curator can fix is a :class:`CuratedError`: its message names the
file (and field, where there is one) and says what to do. The CLI maps
:class:`CuratedError` to exit code 1; anything else is a bug.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class CuratedError(Exception):
    """Base of every error that is the input's fault, not the program's.

    Parameters
    ----------
    message
        What is wrong and, where possible, what to do about it.
    path
        The file or folder the problem is in, if any.
    field
        The field path inside that file (``study.authors[1].orcid``), if any.
    details
        Extra machine-readable facts (expected/actual values, seq numbers, ...).
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        field: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.field = field
        self.details = dict(details or {})
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ""
        if self.path and self.field:
            where = f"{self.path}: {self.field}: "
        elif self.path:
            where = f"{self.path}: "
        elif self.field:
            where = f"{self.field}: "
        return f"{where}{self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": type(self).__name__,
            "message": self.message,
            "path": self.path,
            "field": self.field,
            "details": self.details,
        }


class InputError(CuratedError):
    """A file, folder or argument given by the user is unusable as it is."""


class MetadataError(CuratedError):
    """A metadata record is syntactically or semantically invalid."""


class WorkspaceError(CuratedError):
    """A folder is not a curated workspace, or its layout is broken."""


class LogError(CuratedError):
    """The curator log cannot be read or does not verify."""


class IntegrityError(CuratedError):
    """A checksum or digest does not match what was recorded."""


class ConversionError(CuratedError):
    """An image cannot be converted (truncated, inconsistent, unsupported)."""


class SegmentationError(CuratedError):
    """Training, prediction or evaluation cannot proceed with these inputs."""


class PackageError(CuratedError):
    """A bag cannot be built or does not validate."""


class DepositError(CuratedError):
    """A repository refused or broke a deposit."""
