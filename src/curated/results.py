"""One kind of result record, shared by the Python API and the CLI.

Modelled on DataLad's result records: each operation reports what it did
(``action``), to what (``path``), how it went (``status``) and why
(``message``), plus free ``details`` for figures a caller may want.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, NotRequired, TypeVar, cast

# typing_extensions' TypedDict, not typing's: pydantic can check it on Python 3.11 (the tests do)
from typing_extensions import TypedDict

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


# ------------------------------------------------------------------ details
# What each operation puts in ``Result.details``, for callers that read it (the CLI
# first). ``details`` stays a plain dict (it is JSON in ``--json`` output and in the
# log); these types name its keys so that a reader and the producer agree, and
# ``tests/test_result_details.py`` checks real results against them.

D = TypeVar("D")


def with_warnings(message: str, details: dict[str, Any], warnings: list[str]) -> str:
    """``message`` with each warning appended; ``details["warnings"]`` holds them, if any."""
    if warnings:
        details["warnings"] = list(warnings)
    return message + "".join(f". Warning: {w}" for w in warnings)


def details_as(result: Result, kind: type[D]) -> D:
    """``result.details`` typed as ``kind`` (one of the ``*Details`` below); no copy, no check."""
    return cast(D, result.details)


class ConvertDecision(TypedDict):
    """What ``convert`` decided, and why (also recorded in the log entry)."""

    lossless: bool
    lossless_note: str
    originals_retained: bool
    originals_note: str
    voxel_size_from: Any
    voxel_size_disagrees: NotRequired[str]
    """Set when ``--voxel-size`` differs from what the file's metadata state (a unit slip?)."""
    source_warnings: NotRequired[list[str]]
    """What may be wrong with the source but did not stop it being read (a gap in the
    numbers of a folder's slices)."""
    not_carried_over: list[str]
    """Parts of the source that are not in the image (e.g. a vendor data bar)."""
    store_digest_method: str


class ConvertLevel(TypedDict):
    """One resolution level of a converted image."""

    path: str
    shape: list[int]
    scale: list[float]
    translation: list[float]


class ConvertDetails(TypedDict):
    """``curated convert`` / :func:`curated.images.convert_to_ome_zarr`."""

    ngff_version: str
    axes: str
    shape: list[int]
    dtype: str
    chunks: list[int]
    shard: list[int] | None
    codec: Any
    pyramid_codec: Any
    levels: list[ConvertLevel]
    voxel_size: list[float]
    unit: str | None
    source: str
    source_kind: str
    source_files: int
    source_key: str | None
    store_digest: str | None
    """``None`` when a re-run found the store finished outside a workspace (nothing re-read)."""
    bytes: int | None
    files: int | None
    decision: ConvertDecision
    resumed: NotRequired[bool]
    shards_written: NotRequired[int]
    seconds: NotRequired[float]
    """Time spent writing the levels."""
    bytes_in: NotRequired[int]
    """Bytes read from the source."""
    bytes_stored: NotRequired[int]


class Ask(TypedDict):
    """One question for the depositor (:class:`curated.curation.request.Ask` as a dict)."""

    priority: str
    question: str
    answer: str
    why: str
    field: str | None
    example: str | None
    rank: int


class RequestDetails(TypedDict):
    """``curated request`` / :func:`curated.curation.request`."""

    asks: list[Ask]
    """The questions in the e-mail, most important first."""
    deferred: list[Ask]
    """Questions held for a later round."""
    validator: Any


class FieldChange(TypedDict):
    """A field an import set (``changes``) or did not overwrite (``kept``)."""

    field: str
    old: Any
    new: Any


class ImportOmeDetails(TypedDict):
    """``curated metadata import-ome`` / :func:`curated.metadata.import_ome`."""

    kind: str
    changes: list[FieldChange]
    kept: list[FieldChange]
    """Curator values the header disagrees with, left as they were (no ``--force``)."""
    warnings: list[str]
    personal_data: Any


class SetFieldDetails(TypedDict):
    """``curated metadata set`` / :func:`curated.metadata.set_field`."""

    field: str
    old: Any
    new: Any
    still_missing: NotRequired[list[str]]
    """Required fields the record still lacks (when the value was written)."""


class ReadmeDetails(TypedDict):
    """``curated readme`` / :func:`curated.document.write_readme`."""

    todo_count: int
    todo_fields: list[str]
    figures: list[str]


class ArchiveExportDetails(TypedDict, total=False):
    """``curated export empiar`` / ``export bia``: what a person must still supply."""

    checklist: list[str]
