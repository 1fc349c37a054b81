"""The one protocol every repository adapter follows, and the records it passes around.

A deposit is: check access → create a draft (or a new version of a published record)
→ set metadata → upload each file (size + checksum known) → finalize → publish.
Adapters keep whatever they need to find their draft again in a JSON-serialisable
``state`` dict, which the journal stores so a re-run can continue.

Optional, for targets whose acceptance depends on the instance (a DSpace collection's
submission form, a Figshare account's licences and categories, InvenioRDM's vocabularies,
a Dataverse installation's licences):

* ``review(metadata, *, record, publish) -> (metadata, findings)`` fits the crosswalk's
  metadata to what the target accepts and returns it with findings
  (``{"what", "advice", "blocking"}``) saying what it would refuse or drop; a blocking
  finding stops the deposit before anything is created.
* ``remote_name(name) -> str``: the name under which the target lists the bag file
  ``name``, for targets that cannot keep every bag path as it is (Dataverse); re-runs
  compare the bag with the target's files under these names, and two bag files with one
  such name stop the deposit before anything is sent.
* ``inspect()`` reads the target (GET requests; DSpace also logs in) so that a dry run
  reviews against the instance itself; ``can_inspect()`` says whether a credential is at hand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class UploadItem:
    """One file to send: its name in the record, where it is on disk, its size."""

    name: str
    """The bag-relative path (``data/image.ome.zarr.zip``) or archive name."""
    path: Path
    size: int

    @property
    def folder(self) -> str:
        return self.name.rpartition("/")[0]

    @property
    def basename(self) -> str:
        return self.name.rpartition("/")[2]


@dataclass
class RemoteFile:
    """A file as the repository reports it."""

    name: str
    size: int | None = None
    checksum: str | None = None
    """Hex digest the server computed."""
    algorithm: str = "md5"
    id: str | None = None
    url: str | None = None


@dataclass
class Uploaded:
    """What :meth:`Repository.upload` returns: the server's view and, if known, the local hashes."""

    remote: RemoteFile
    local: dict[str, Any] | None = None
    """``{"md5", "sha256", "size"}`` hashed while streaming, or ``None`` when parts were sent earlier."""


@dataclass
class Landing:
    """Where a deposit can be found."""

    record_id: str
    status: str
    """``draft``, ``published`` or ``submitted`` (awaiting a curator's review)."""
    url: str | None = None
    doi: str | None = None
    handle: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PlannedCall:
    """One request a deposit would make (``--dry-run``)."""

    method: str
    url: str
    body: Any = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "url": self.url, "body": self.body, "note": self.note}


Save = Callable[[], None]
"""Persist the journal now (adapters call it after each confirmed part)."""
Advance = Callable[[int], None]
"""Report ``n`` more bytes sent."""


class Repository(Protocol):
    """What an adapter implements (see :mod:`curated.deposit.invenio` for a full example)."""

    kind: str
    keeps_folders: bool
    """Whether file names may carry folders (``data/x.tif``); if not, a bag is sent as one archive."""

    def check_access(self) -> None:
        """Fail early (DepositError) on a bad credential or a missing collection."""

    def create_draft(self, metadata: Any) -> dict[str, Any]:
        """Create an unpublished record; return its state."""

    def new_version(self, previous: dict[str, Any], metadata: Any) -> dict[str, Any]:
        """Open a new version of the published record in ``previous``; return its state."""

    def set_metadata(self, state: dict[str, Any], metadata: Any) -> None:
        """Replace the draft's metadata."""

    def remote_files(self, state: dict[str, Any]) -> dict[str, RemoteFile]:
        """The files the draft holds now, by name."""

    def delete_file(self, state: dict[str, Any], remote: RemoteFile) -> None:
        """Remove a file from the draft (a changed or dropped file in a new version)."""

    def upload(
        self,
        state: dict[str, Any],
        item: UploadItem,
        entry: dict[str, Any],
        save: Save,
        advance: Advance,
    ) -> Uploaded:
        """Send one file; keep resumable progress in ``entry`` and call ``save()`` after each part."""

    def finalize(self, state: dict[str, Any]) -> None:
        """Make the draft complete (licence granted, metadata checked) without publishing."""

    def publish(self, state: dict[str, Any]) -> Landing:
        """Publish (or submit for review); return where it landed."""

    def landing(self, state: dict[str, Any]) -> Landing:
        """Where the (unpublished) draft is."""

    def plan(
        self, metadata: Any, items: list[UploadItem], *, publish: bool, new_version_of: str | None
    ) -> list[PlannedCall]:
        """The requests a deposit would make, for ``--dry-run``."""

    def close(self) -> None:
        """Release connections."""
