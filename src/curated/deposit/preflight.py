"""Known limits of deposit targets, as data, and the check run before any upload.

Limits come from the repositories' documentation and default configuration
(see ``shared/research/deposit.md`` §3); an institution may have raised them, so
``deposit(limits=...)`` / ``--limits`` picks another profile or ``none``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from curated._text import decimal_size
from curated.deposit.protocol import UploadItem
from curated.deposit.targets import get_target

GB = 10**9
MiB = 2**20


@dataclass(frozen=True)
class Limits:
    """What one target accepts."""

    name: str
    max_files: int | None = None
    """Files per record."""
    max_file_bytes: int | None = None
    """Largest single file."""
    max_record_bytes: int | None = None
    """Sum of a record's files (a quota)."""
    max_request_bytes: int | None = None
    """Largest single HTTP request body (a file sent in one request cannot exceed it)."""
    unpacks_zip: bool = False
    """The server unpacks uploaded ``.zip`` files and the adapter cannot keep them whole
    (no built-in profile: the Dataverse adapter sends a zip direct, or wrapped in a zip
    of its own, which Dataverse unpacks back into the zip)."""
    empty_files: bool = True
    """The server accepts files of 0 bytes (Zenodo does not)."""
    warn_file_bytes: int | None = None
    """Files above this size are known to be fragile (timeouts) without a part-based protocol."""
    source: str = ""
    """Where the figure comes from."""
    notes: tuple[str, ...] = field(default_factory=tuple)


LIMITS: dict[str, Limits] = {
    "zenodo": Limits(
        "zenodo",
        max_files=100,
        max_file_bytes=50 * GB,
        max_record_bytes=50 * GB,
        empty_files=False,
        source="https://help.zenodo.org/docs/deposit/manage-files (50 GB, 100 files; quota increase to 200 GB on request); "
        "zenodo-rdm invenio.cfg RECORDS_RESOURCES_ALLOW_EMPTY_FILES = False",
    ),
    "invenio": Limits(
        "invenio",
        max_files=None,
        max_file_bytes=10 * GB,
        max_record_bytes=10 * GB,
        source="InvenioRDM defaults RDM_FILES_DEFAULT_QUOTA_SIZE / RDM_FILES_DEFAULT_MAX_FILE_SIZE (10 GB); instances raise them",
    ),
    "dataverse": Limits(
        "dataverse",
        warn_file_bytes=2 * GB,
        source="Dataverse native API: >2 GB through the app server times out without direct upload "
        "(.zip files, which its API unpacks, are sent direct or wrapped so they are kept whole)",
    ),
    "dspace": Limits(
        "dspace",
        max_request_bytes=512 * MiB,
        source="DSpace 7 default spring.servlet.multipart.max-request-size = 512MB",
    ),
    "ecommons": Limits(
        "ecommons",
        max_request_bytes=512 * MiB,
        max_file_bytes=2 * GB,
        max_record_bytes=10 * GB,
        source="https://ecommons.cornell.edu/policy.html (files under 2 GB, 10 GB per project per year)",
    ),
    "figshare": Limits(
        "figshare",
        max_file_bytes=20 * GB,
        max_record_bytes=20 * GB,
        source="figshare.com free accounts: 20 GB per file and 20 GB storage",
    ),
    "figshare-institution": Limits(
        "figshare-institution",
        max_file_bytes=5000 * GB,
        source="Figshare for Institutions: files up to 5 TB",
    ),
    "directory": Limits("directory", source="local or mounted folder: free disk space only"),
    "none": Limits("none", source="no limits checked (--limits none)"),
}

_HOSTS = {
    "zenodo.org": "zenodo",
    "sandbox.zenodo.org": "zenodo",
    "ecommons.cornell.edu": "ecommons",
    "api.figshare.com": "figshare",
    "figshare.com": "figshare",
}


def limits_for(kind: str, url: str, name: str | None = None) -> Limits:
    """The limits profile for a target: ``name`` if given, else by host, else by kind."""
    if name:
        if name not in LIMITS:
            from curated.errors import InputError

            msg = f"unknown limits profile {name!r}; choose one of {', '.join(sorted(LIMITS))}"
            raise InputError(msg, field="limits")
        return LIMITS[name]
    host = (urlparse(url).hostname or "").lower()
    if host in _HOSTS:
        return LIMITS[_HOSTS[host]]
    return LIMITS[get_target(kind).limits]


@dataclass(frozen=True)
class Problem:
    """One reason the package cannot go to this target as it is, and what to do."""

    what: str
    advice: str
    blocking: bool = True

    def __str__(self) -> str:
        return f"{self.what} → {self.advice}"


def check(
    items: list[UploadItem],
    limits: Limits,
    *,
    single_request: bool,
    zarr_stores: list[str] = (),  # type: ignore[assignment]
    dest_dir: Path | None = None,
    missing_metadata: list[str] = (),  # type: ignore[assignment]
    already_sent: int = 0,
) -> list[Problem]:
    """Problems with sending ``items`` to a target with ``limits``.

    ``single_request``: the adapter sends each file in one request (no parts), so
    ``max_request_bytes`` applies per file. ``zarr_stores``: unarchived ``.zarr``
    folders in the payload (each is thousands of files to a repository).
    ``already_sent``: bytes an interrupted deposit already delivered (a folder target
    needs free space only for the rest).
    """
    problems: list[Problem] = []
    if missing_metadata:
        problems.append(
            Problem(
                f"the bag's metadata lacks what {limits.name} requires: {', '.join(missing_metadata)}",
                "fill them in curated.yaml (`curated metadata set ...`) and rebuild the bag",
            )
        )
    problems += _count_problems(items, limits, list(zarr_stores))
    problems += _size_problems(items, limits, single_request=single_request)
    if limits.unpacks_zip:
        zips = [i.name for i in items if i.name.lower().endswith(".zip")]
        if zips:
            inside = any("/" in z for z in zips)  # files of a folder bag (archived Zarr stores)
            advice = (
                "bag the workspace with `curated bag --zarr directory` (Zarr stores as folders), "
                "or serialize the bag as .tar and deposit that"
                if inside
                else "deposit the bag folder (not a zipped bag) or serialize it as .tar"
            )
            problems.append(
                Problem(
                    f"{limits.name} unpacks uploaded .zip files ({', '.join(zips[:3])}), which breaks the bag",
                    advice,
                )
            )
    problems += _fragile_problems(items, limits)
    empty = [i.name for i in items if i.size == 0]
    if empty and not limits.empty_files:
        problems.append(
            Problem(
                f"{limits.name} refuses empty files ({len(empty)}: {', '.join(empty[:3])})",
                "remove them from the workspace (or give them content) and rebuild the bag, "
                "or serialize the bag (zip)",
            )
        )
    if dest_dir is not None:
        problems += _space_problems(items, dest_dir, already_sent)
    return problems


def _count_problems(
    items: list[UploadItem], limits: Limits, zarr_stores: list[str]
) -> list[Problem]:
    """Too many files for the target (unarchived Zarr stores named)."""
    if limits.max_files is not None and len(items) > limits.max_files:
        advice = (
            "archive Zarr stores (`curated bag --zarr archive`)"
            if zarr_stores
            else "serialize the bag (zip)"
        )
        stores = (
            f" ({len(zarr_stores)} unarchived Zarr store(s): {', '.join(zarr_stores[:3])})"
            if zarr_stores
            else ""
        )
        return [
            Problem(
                f"{len(items)} files, but {limits.name} takes at most {limits.max_files} per record{stores}",
                f"{advice}, or split the bag into several deposits",
            )
        ]
    if zarr_stores and limits.name not in ("directory", "none"):
        return [
            Problem(
                f"{len(zarr_stores)} unarchived Zarr store(s) in the payload ({', '.join(zarr_stores[:3])})",
                "repositories list every chunk as a file: archive them with `curated bag --zarr archive`",
                blocking=False,
            )
        ]
    return []


def _size_problems(
    items: list[UploadItem], limits: Limits, *, single_request: bool
) -> list[Problem]:
    """Files or a record too large for the target."""
    problems: list[Problem] = []
    total = sum(i.size for i in items)
    biggest = max(items, key=lambda i: i.size, default=None)
    biggest_size = 0 if biggest is None else biggest.size
    largest = f"(largest: {biggest.name}, {decimal_size(biggest_size)})" if biggest else ""
    if limits.max_file_bytes is not None and biggest_size > limits.max_file_bytes:
        over = [i for i in items if i.size > limits.max_file_bytes]
        problems.append(
            Problem(
                f"{len(over)} file(s) larger than {limits.name}'s {decimal_size(limits.max_file_bytes)} per file "
                f"{largest}",
                "split the bag so no file exceeds the limit, or make a holey bag (fetch.txt pointing at "
                "institutional storage) and deposit that",
            )
        )
    if (
        single_request
        and limits.max_request_bytes is not None
        and biggest_size > limits.max_request_bytes
    ):
        over = [i for i in items if i.size > limits.max_request_bytes]
        problems.append(
            Problem(
                f"{len(over)} file(s) larger than the {decimal_size(limits.max_request_bytes)} request cap of {limits.name} "
                f"{largest}; this repository takes each file in one request",
                "ask the repository to raise its upload limit, split the bag into smaller parts, or deposit a holey "
                "bag whose large files stay in institutional storage",
            )
        )
    if limits.max_record_bytes is not None and total > limits.max_record_bytes:
        problems.append(
            Problem(
                f"the package is {decimal_size(total)}, over {limits.name}'s {decimal_size(limits.max_record_bytes)} per record",
                "split the bag into several deposits (Bag-Group-Identifier / Bag-Count), request a larger quota, "
                "or deposit a holey bag",
            )
        )
    return problems


def _fragile_problems(items: list[UploadItem], limits: Limits) -> list[Problem]:
    """A file of a size known to time out on this target (a warning)."""
    biggest = max(items, key=lambda i: i.size, default=None)
    if biggest is None or limits.warn_file_bytes is None or biggest.size <= limits.warn_file_bytes:
        return []
    return [
        Problem(
            f"{biggest.name} is {decimal_size(biggest.size)}; uploads this large through {limits.name}'s web server often time out",
            "ask the repository to enable direct (S3) upload, or split the file",
            blocking=False,
        )
    ]


def _space_problems(items: list[UploadItem], dest_dir: Path, already_sent: int) -> list[Problem]:
    """Not enough free space in the destination folder for what is left to copy."""
    total = sum(i.size for i in items)
    free = shutil.disk_usage(_existing(dest_dir)).free
    needed = max(total - already_sent, 0)  # a resume needs room only for what is left
    if needed <= free:
        return []
    left = f" ({decimal_size(needed)} still to copy)" if already_sent else ""
    return [
        Problem(
            f"the package is {decimal_size(total)}{left} but only {decimal_size(free)} is free at {dest_dir}",
            "free space or choose another folder",
        )
    ]


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def summary(limits: Limits) -> dict[str, Any]:
    return {
        "profile": limits.name,
        "max_files": limits.max_files,
        "max_file_bytes": limits.max_file_bytes,
        "max_record_bytes": limits.max_record_bytes,
        "max_request_bytes": limits.max_request_bytes,
        "source": limits.source,
    }
