"""BagIt profiles shipped as data (``curated/data/bagit-profiles/*.json``) and checked offline.

Profiles are BagIt Profile 1.3.0 documents. A profile is never fetched from its
identifier URL: :func:`load_profile` reads the packaged copy (or a local file),
and :func:`check_profile` runs ``bagit_profile`` against it offline, plus the
checks that validator lacks (the v2.0-proposal ``Tags`` list for other tag
files such as ``aptrust-info.txt``, and ``Deserialization-Match-Required``).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from curated.errors import PackageError

DEFAULT_ALGORITHMS = ("sha512", "sha256")
"""What we write when a profile allows it: SHA-512 (RFC 8493's SHOULD) and SHA-256 (RO-Crate's ``sha256``)."""


@dataclass(frozen=True)
class Profile:
    name: str
    document: dict[str, Any]

    @property
    def identifier(self) -> str:
        return str(self.document["BagIt-Profile-Info"]["BagIt-Profile-Identifier"])

    @property
    def bag_info(self) -> dict[str, dict[str, Any]]:
        return self.document.get("Bag-Info", {})

    def _algorithms(self, required_key: str, allowed_key: str) -> tuple[str, ...]:
        required = list(self.document.get(required_key, []))
        allowed = self.document.get(allowed_key)
        out = [a for a in DEFAULT_ALGORITHMS if allowed is None or a in allowed]
        out += [a for a in required if a not in out]
        if not out:
            msg = f"profile {self.name} allows none of {', '.join(DEFAULT_ALGORITHMS)} and requires nothing"
            raise PackageError(msg)
        return tuple(out)

    @property
    def manifest_algorithms(self) -> tuple[str, ...]:
        return self._algorithms("Manifests-Required", "Manifests-Allowed")

    @property
    def tag_manifest_algorithms(self) -> tuple[str, ...]:
        return self._algorithms("Tag-Manifests-Required", "Tag-Manifests-Allowed")

    @property
    def allows_fetch(self) -> bool:
        return bool(self.document.get("Allow-Fetch.txt", True))

    @property
    def serialization(self) -> str:
        return str(self.document.get("Serialization", "optional"))

    @property
    def accepted_serializations(self) -> list[str]:
        return list(self.document.get("Accept-Serialization", []))

    def tags(self, tag_file: str) -> list[dict[str, Any]]:
        """Entries of the ``Tags`` list (v2.0 proposal) for one tag file."""
        return [t for t in self.document.get("Tags", []) if t.get("tagFile") == tag_file]


def _profiles_dir() -> Any:
    return resources.files("curated") / "data" / "bagit-profiles"


def list_profiles() -> list[str]:
    """Names of the packaged profiles (``curated``, ``btr``, ``aptrust``, ``chronopolis-like``)."""
    return sorted(
        p.name.removesuffix(".json") for p in _profiles_dir().iterdir() if p.name.endswith(".json")
    )


def load_profile(name_or_path: str | os.PathLike[str]) -> Profile:
    """A packaged profile by name, or a profile JSON file by path."""
    text: str
    name = os.fspath(name_or_path)
    candidate = _profiles_dir() / f"{name}.json"
    if candidate.is_file():
        text = candidate.read_text(encoding="utf-8")
    elif Path(name).is_file():
        text = Path(name).read_text(encoding="utf-8")
        name = Path(name).stem
    else:
        msg = f"unknown BagIt profile {name!r}; use one of {', '.join(list_profiles())} or a path to a profile JSON file"
        raise PackageError(msg)
    try:
        doc = json.loads(text)
        info = doc["BagIt-Profile-Info"]
        info["BagIt-Profile-Identifier"]
    except (ValueError, KeyError, TypeError) as exc:
        msg = f"not a BagIt profile document ({exc}); see https://bagit-profiles.github.io/bagit-profiles-specification/"
        raise PackageError(msg, path=name) from exc
    return Profile(name=name, document=doc)


def profile_for_identifier(identifier: str) -> Profile | None:
    """The packaged profile whose ``BagIt-Profile-Identifier`` is ``identifier``, if any."""
    for name in list_profiles():
        prof = load_profile(name)
        if prof.identifier == identifier:
            return prof
    return None


MAX_TAG_LINE = 1 << 20
"""The longest line (bytes) read from a bag's tag file: a longer one is refused, so a hostile
``bag-info.txt`` or manifest cannot make a reader hold (or echo) a line of any size."""


def _shown(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def tag_lines(
    path: str | os.PathLike[str], *, universal: bool = False
) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of a UTF-8 tag file, each line without its end.

    Lines end with LF (``universal``: LF, CR or CRLF, as RFC 8493 allows in tag
    files that are not manifests). A line that is not UTF-8, or longer than
    :data:`MAX_TAG_LINE` bytes, is a :class:`PackageError` naming the file and line;
    memory stays bounded by that length whatever the file holds.
    """
    lineno = 0
    with open(path, "rb") as fh:
        while True:
            raw = fh.readline(MAX_TAG_LINE + 1)
            if not raw:
                return
            if len(raw) > MAX_TAG_LINE:
                msg = f"line {lineno + 1} is longer than {MAX_TAG_LINE} bytes; this is no BagIt tag file"
                raise PackageError(msg, path=path)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                msg = (
                    f"line {lineno + 1} is not UTF-8 (byte {exc.start}); "
                    "BagIt tag files and manifests must be UTF-8 (RFC 8493)"
                )
                raise PackageError(msg, path=path) from None
            text = text.removesuffix("\n").removesuffix("\r")
            for part in re.split(r"\r\n|\r", text) if universal else (text,):
                lineno += 1
                yield lineno, part


def read_tag_file(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Parse a ``label: value`` tag file (continuation lines start with whitespace)."""
    tags: dict[str, list[str]] = {}
    last: str | None = None
    for _lineno, line in tag_lines(path, universal=True):
        if not line.strip():
            continue
        if line[0] in " \t" and last is not None:
            tags[last][-1] += " " + line.strip()
            continue
        label, sep, value = line.partition(":")
        if not sep:
            msg = f"line {_shown(line)} is not 'Label: value'"
            raise PackageError(msg, path=path)
        last = label.strip()
        tags.setdefault(last, []).append(value.strip())
    return tags


class _BagView:
    """The few attributes ``bagit_profile`` reads from a ``bagit.Bag``, without loading manifests.

    ``bagit.Bag(path)`` parses every manifest into memory, which we avoid for
    bags of millions of files.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.tags = {k: v[-1] for k, v in read_tag_file(os.path.join(path, "bagit.txt")).items()}
        info_path = os.path.join(path, "bag-info.txt")
        raw = read_tag_file(info_path) if os.path.isfile(info_path) else {}
        self.info = {k: v[0] if len(v) == 1 else v for k, v in raw.items()}

    def manifest_files(self) -> list[str]:
        return sorted(str(p) for p in Path(self.path).glob("manifest-*.txt"))

    def tagmanifest_files(self) -> list[str]:
        return sorted(str(p) for p in Path(self.path).glob("tagmanifest-*.txt"))

    def __str__(self) -> str:
        return self.path


def check_profile(
    bag_dir: str | os.PathLike[str], profile: Profile, *, serialized: str | None = None
) -> list[str]:
    """Check an (unpacked) bag against ``profile`` offline; return the problems.

    ``serialized`` is the tar/zip file the bag came from, if any, for the
    profile's serialization rules.
    """
    import bagit_profile

    problems: list[str] = []
    doc = copy.deepcopy(profile.document)
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(
        logging.CRITICAL
    )  # bagit_profile logs every failure at ERROR level as well as returning it
    try:
        checker = bagit_profile.Profile(profile.identifier, profile=doc)
        target = serialized if serialized is not None else os.fspath(bag_dir)
        try:
            checker.validate_serialization(target)
        except bagit_profile.ProfileValidationError as exc:
            problems.append(f"serialization: {exc.value}")
        except OSError as exc:
            problems.append(f"serialization: {exc}")
        view = _BagView(os.fspath(bag_dir))
        try:
            if not checker.validate(view):
                problems.extend(str(e.value) for e in checker.report.errors)
        except KeyError as exc:  # bagit_profile indexes bagit.txt tags by their exact names
            problems.append(f"bagit.txt has no {exc} tag, so the profile cannot be checked")
    finally:
        logger.setLevel(level)
    for tag_file in sorted({t.get("tagFile") for t in profile.document.get("Tags", [])}):
        if tag_file in ("bagit.txt", "bag-info.txt") or not tag_file:
            continue
        path = os.path.join(os.fspath(bag_dir), tag_file)
        values = read_tag_file(path) if os.path.isfile(path) else {}
        for t in profile.tags(tag_file):
            name = t["tagName"]
            if t.get("required") and not any(v for v in values.get(name, [])):
                problems.append(f"{tag_file}: required tag {name!r} is missing or empty")
            allowed = t.get("values") or []
            for v in values.get(name, []):
                if allowed and v not in allowed:
                    problems.append(f"{tag_file}: {name} is {v!r}, not one of {allowed}")
    if serialized is not None and profile.document.get("Deserialization-Match-Required"):
        stem = Path(serialized).name
        for suffix in (".tar", ".zip", ".tgz", ".tar.gz"):
            stem = stem.removesuffix(suffix)
        if Path(bag_dir).name != stem:
            problems.append(
                f"the archive {Path(serialized).name} must unpack to a folder named {stem!r}"
            )
    return problems
